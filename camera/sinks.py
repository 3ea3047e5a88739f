"""Where a run's results go besides pictures: MQTT (edgeseg.camera.mqtt), JSON lines (edgeseg.camera.jsonl) and
webhooks (edgeseg.camera.webhook), each a Sink behind one interface, found by its URL's scheme in one table.

Every sink runs on a thread of its own behind a bounded queue (SinkThread): the loop offers a message and goes on;
a message the queue has no room for is dropped and counted, so a broker that is down, slow or refusing costs the
loop nothing. A sink takes frame results ("frame"), zone events ("event"), or both (`kinds`).
"""

from __future__ import annotations

import contextlib
import queue
import threading
import time
from urllib.parse import urlsplit

from edgeseg.camera.sink import Sink, SinkOptions, redact
from edgeseg.errors import EdgesegError

QUEUE_SIZE = 256  # messages waiting for a sink's thread; at 30 FPS about 8 s of frame results
BATCH_S = 0.02  # a sink's thread sends what has come, then naps this long

# scheme -> (module, class): the one table the --publish and --webhook URLs are looked up in
SCHEMES = {
    "mqtt": ("edgeseg.camera.mqtt", "MqttSink"),
    "mqtts": ("edgeseg.camera.mqtt", "MqttSink"),
    "http": ("edgeseg.camera.webhook", "WebhookSink"),
    "https": ("edgeseg.camera.webhook", "WebhookSink"),
}


def sink_class(url: str, allowed: tuple[str, ...], what: str) -> type[Sink]:
    """The Sink class for `url`'s scheme, which must be one of `allowed` (EdgesegError naming `what` otherwise)."""
    import importlib

    scheme = urlsplit(url).scheme.lower() if "://" in url else ""
    if scheme not in allowed:
        raise EdgesegError(f"{what} {redact(url)}: expected a URL starting {' or '.join(s + '://' for s in allowed)}")
    module, cls = SCHEMES[scheme]
    return getattr(importlib.import_module(module), cls)


class Every:
    """A rate cap: "N" lets every Nth frame through, "Ns" (or "0.5s") at most one every N seconds.

    Args:
        text: the cap as given (--publish-every).
        what: the option's name, for the error.
    """

    def __init__(self, text: str = "1", what: str = "--publish-every"):
        self.text = text.strip()
        try:
            if self.text.endswith("s"):
                self.seconds, self.frames = float(self.text[:-1]), None
                ok = 0 < self.seconds <= 86400
            else:
                self.frames, self.seconds = int(self.text), None
                ok = 1 <= self.frames <= 10**6
        except ValueError:
            ok = False
        if not ok:
            raise EdgesegError(f"{what}: expected N frames (1..1000000) or N seconds like 2s or 0.5s, got {text!r}")
        self.count, self.last = 0, None

    def due(self, t: float | None = None) -> bool:
        """Whether this frame goes out (call once a frame; `t` in seconds, monotonic)."""
        if self.frames is not None:
            self.count += 1
            return (self.count - 1) % self.frames == 0
        t = time.monotonic() if t is None else t
        if self.last is None or t - self.last >= self.seconds:
            self.last = t
            return True
        return False


class SinkThread:
    """A sink on its own thread behind a bounded queue: offer() never waits.

    Args:
        sink: the sink.
        size: messages the queue holds; more are dropped and counted.
    """

    def __init__(self, sink: Sink, size: int = QUEUE_SIZE):
        self.sink = sink
        self.q: queue.Queue = queue.Queue(maxsize=size)
        self.dropped = 0  # offered while the queue was full
        self.errors = 0
        self.thread = threading.Thread(target=self._run, name=f"edgeseg-sink-{sink.name}", daemon=True)
        self.thread.start()

    def offer(self, kind: str, message: dict) -> None:
        """Queue a message for the sink if it takes this kind; drop and count it when the queue is full."""
        if kind not in self.sink.kinds:
            return
        try:
            self.q.put_nowait((kind, message))
        except queue.Full:
            self.dropped += 1

    def _run(self) -> None:
        while True:
            batch = [self.q.get()]  # wait for the first, then take what else is there
            with contextlib.suppress(queue.Empty):
                while len(batch) < self.q.maxsize:
                    batch.append(self.q.get_nowait())
            for item in batch:
                if item is None:
                    return
                try:
                    self.sink.send(*item)
                except Exception:  # a sink's failure must not end its thread; counted as a drop
                    self.errors += 1
                    self.sink.dropped += 1
            # Woken for every message, this thread cost the flat-out loop about 4% of its FPS on 2 cores (GIL
            # hand-overs); a short nap between batches wakes it some 50 times a second instead, for 20 ms of latency.
            time.sleep(BATCH_S)

    def status(self) -> dict:
        """The sink's status, its drops including the queue's."""
        s = self.sink.status()
        return {**s, "dropped": s.get("dropped", 0) + self.dropped, "queued": self.q.qsize()}

    @property
    def total_dropped(self) -> int:
        """Messages lost in the queue and in the sink."""
        return self.dropped + self.sink.dropped

    def close(self, timeout: float = 5.0) -> None:
        """Send what is queued (within `timeout` seconds), then close the sink."""
        deadline = time.monotonic() + timeout
        with contextlib.suppress(queue.Full):
            self.q.put(None, timeout=timeout)
        self.thread.join(max(0.0, deadline - time.monotonic()))
        if self.thread.is_alive():  # what the sink could not send in time is lost, and said to be
            self.dropped += self.q.qsize()
        self.sink.close()


def open_sinks(
    publish: str | None = None, jsonl: str | None = None, webhook: str | None = None, opts: SinkOptions | None = None
) -> list[SinkThread]:
    """The sinks a run was asked for, opened (an MQTT broker connected), each on its thread. EdgesegError (one line)
    for a bad URL, a broker that cannot be reached or refuses us, an unreadable CA or password file.

    Args:
        publish: an mqtt:// or mqtts:// URL: frame results and events.
        jsonl: a file to append JSON lines to, or "-" for stdout: frame results and events.
        webhook: an http:// or https:// URL that events are POSTed to.
        opts: QoS, CA file, password file, log.
    """
    opts = opts or SinkOptions()
    made: list[Sink] = []
    try:
        if publish:
            made.append(sink_class(publish, ("mqtt", "mqtts"), "--publish")(publish, opts))
        if jsonl:
            from edgeseg.camera.jsonl import JsonlSink

            made.append(JsonlSink(jsonl, opts))
        if webhook:
            made.append(sink_class(webhook, ("http", "https"), "--webhook")(webhook, opts))
    except BaseException:
        for s in made:
            s.close()
        raise
    return [SinkThread(s) for s in made]
