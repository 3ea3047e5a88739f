"""The realtime loop, pipelined on three threads so capture, inference and drawing overlap:

  capture thread   read a frame, prepare the input tensor        (camera.reader.CaptureThread)
  main thread      invoke the model; show the window; Ctrl-C       (this module)
  render thread    postprocess, draw, record, save masks, serve   (this module)

Live sources hand over only their newest frame (stale frames are dropped and counted); files go through in
order. Statistics are kept in fixed-size ring buffers, so a run of days does not grow in memory. A recording
is written to a temp file and renamed at the end, Ctrl-C included, so it is always a complete, playable file;
an error discards it.
"""

from __future__ import annotations

import contextlib
import queue
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from edgeseg import signals
from edgeseg.camera.frames import FrameSource
from edgeseg.camera.health import HEALTH_STALE_S, Health
from edgeseg.camera.reader import Captured, CaptureThread
from edgeseg.camera.record import DISK_CHECK_EVERY, check_disk, check_recording, recording_path
from edgeseg.camera.recorder import Recorder
from edgeseg.camera.render import Renderer
from edgeseg.camera.results import Results, wall_time
from edgeseg.camera.sinks import Every, SinkThread
from edgeseg.camera.sources import Paced
from edgeseg.errors import SourceError
from edgeseg.io import write_image
from edgeseg.pixels import class_counts
from edgeseg.predictors import Predictor
from edgeseg.signals import Terminated
from edgeseg.stats import RingStat, summarise
from edgeseg.zones import Zones

STAGES = ("capture", "preprocess", "invoke", "postprocess", "render")
STALL_WARN_S = 3.0


@dataclass
class LoopOptions:
    """What the loop does with each result (show, record, save, serve) and when it stops."""

    show: bool = False
    record: Path | None = None
    save_masks: Path | None = None
    save_frames: Path | None = None  # each rendered frame (what the window shows) as a PNG
    max_frames: int | None = None
    duration: float | None = None
    alpha: float = 0.5
    view: str = "overlay"
    legend: bool = True
    hud: bool = True
    realtime: bool = False
    reconnect: bool = True
    serve: tuple[str, int] | None = None
    log: Callable[[str], None] = print
    zones: Zones | None = None  # drawn, their class shares in each result, their events
    sinks: list[SinkThread] = field(default_factory=list)  # opened (open_sinks); the loop closes them
    publish_every: Every | None = None  # the rate cap on frame results (events always go)
    mask_every: Every | None = None  # how often a frame result carries its mask (None: never)
    health_stale_s: float = HEALTH_STALE_S  # /healthz is 503 after this long without a frame


@dataclass
class LoopStats:
    """What a run of the loop did: frames, drops, corrupt frames, reconnects, per-stage timings and frame age."""

    frames: int = 0
    dropped: int = 0
    corrupt: int = 0
    reconnects: int = 0
    seconds: float = 0.0
    interrupted: bool = False
    stopped_by: str | None = None  # SIGINT, SIGTERM or SIGHUP when interrupted
    ended_early: str | None = None  # a file source that stopped before its declared frame count
    record_dropped: int = 0  # frames left out of the recording because its encoder fell behind
    events: list = field(default_factory=list)  # the zone events (the newest EVENTS_KEPT), and their count
    events_total: int = 0
    sinks: list = field(default_factory=list)  # each sink's status at the end
    messages_dropped: int = 0
    stages: dict = field(default_factory=lambda: {k: RingStat() for k in STAGES})
    age: RingStat = field(default_factory=RingStat)

    @property
    def fps(self) -> float | None:
        """Frames finished per second over the run."""
        return self.frames / self.seconds if self.seconds > 0 else None

    def to_dict(self) -> dict:
        """The statistics as JSON values (run --stats), each stage summarised by percentiles."""
        return {
            "frames": self.frames,
            "dropped": self.dropped,
            "corrupt": self.corrupt,
            "reconnects": self.reconnects,
            "seconds": round(self.seconds, 3),
            "fps": self.fps,
            "interrupted": self.interrupted,
            "stopped_by": self.stopped_by,
            "ended_early": self.ended_early,
            "record_dropped": self.record_dropped,
            "events_total": self.events_total,
            "events": self.events,
            "sinks": self.sinks,
            "messages_dropped": self.messages_dropped,
            "stages": {k: summarise(v.values()) for k, v in self.stages.items() if v.n},
            "frame_age": summarise(self.age.values()),
        }


class _Output:
    """The render thread: postprocess, draw, write, serve. Errors are kept and raised on the main thread."""

    def __init__(
        self,
        model: Predictor,
        opts: LoopOptions,
        stats: LoopStats,
        capture: CaptureThread,
        record_tmp: Path | None,
        fps: float | None,
        server,
        results: Results | None,
        health: Health,
    ):
        self.model, self.opts, self.stats, self.capture = model, opts, stats, capture
        self.renderer = Renderer(model.spec, opts.view, opts.alpha, opts.legend, opts.hud, opts.zones)
        self.results = results
        self.record_tmp, self.fps, self.server = record_tmp, fps or 30.0, server
        # a headless run that only publishes or counts draws nothing: the overlay is most of this thread's work
        # (0.7 ms a 640x480 frame on a Zen 5 core, a third of nano's invoke) and would only take a core from it
        self.draws = opts.show or record_tmp is not None or opts.save_frames is not None or server is not None
        self.writer = None
        self.q: queue.Queue = queue.Queue(maxsize=2)
        self.latest: np.ndarray | None = None
        self.latest_lock = threading.Lock()
        self.window_shown = False  # the main thread has shown a frame (so a vanished window was closed)
        self.error: BaseException | None = None
        # frames finished per second (the HUD's and /stats.json's FPS), the source's state, the sinks'
        self.health = health
        self.thread = threading.Thread(target=self._run, name="edgeseg-render", daemon=True)
        self.thread.start()

    def put(self, item) -> None:
        while True:
            if self.error is not None:
                raise self.error
            try:
                self.q.put(item, timeout=0.2)
                return
            except queue.Full:
                continue

    def _run(self) -> None:
        try:
            while True:
                item = self.q.get()
                if item is None:
                    return
                self._one(*item)
        except BaseException as e:
            self.error = e

    def _one(self, cap: Captured, out: np.ndarray, invoke_ms: float) -> None:
        t0 = time.perf_counter_ns()
        mask = self.model.finish(out, cap.prepared[1])
        t1 = time.perf_counter_ns()
        counts = None  # pixels per class, counted once for the legend and the result
        if self.results is not None or (self.opts.legend and self.draws):
            counts = class_counts(mask, self.model.spec.num_classes)
        if self.results is not None:
            self.results.frame(cap.index, mask, wall_time(cap.t_capture), (t1 - cap.t_capture) / 1e6, counts)
        fps = self.health.tick(t1)
        image = self.renderer(cap.frame, mask, self._hud(fps, invoke_ms), counts) if self.draws else None
        if self.record_tmp is not None:
            size = (image.shape[1], image.shape[0])
            if self.writer is None:
                self.record_size = size
                self.writer = Recorder(
                    self.opts.record, self.record_tmp, self.fps, size, self.opts.log, live=self.capture.live
                )
            # a camera that reconnects at another resolution must not break the recording
            frame = image if size == self.record_size else cv2.resize(image, self.record_size)
            self.writer.write(frame, cap.t_capture)  # encoded on the recorder's thread: the loop never waits
            if self.stats.frames % DISK_CHECK_EVERY == 0:
                check_disk(self.record_tmp, self.opts.record)
        if self.opts.save_masks is not None:
            path = self.opts.save_masks / f"{cap.index:06d}.png"
            write_image(path, mask)
        if self.opts.save_frames is not None:
            write_image(self.opts.save_frames / f"{cap.index:06d}.png", image)
        t2 = time.perf_counter_ns()
        s = self.stats
        s.stages["capture"].add(cap.capture_ms)
        s.stages["preprocess"].add(cap.prepare_ms)
        s.stages["invoke"].add(invoke_ms)
        s.stages["postprocess"].add((t1 - t0) / 1e6)
        s.stages["render"].add((t2 - t1) / 1e6)
        s.age.add((t2 - cap.t_capture) / 1e6)
        s.frames += 1
        if self.server is not None:
            self.server.publish(image)
        if self.opts.show:
            with self.latest_lock:
                self.latest = image

    def _hud(self, fps: float | None, invoke_ms: float) -> list[str]:
        hud = [f"{fps:.1f} FPS" if fps is not None else "-- FPS", f"inference {invoke_ms:.1f} ms"]
        if self.capture.dropped:
            hud.append(f"dropped {self.capture.dropped}")
        return hud

    def take_latest(self) -> np.ndarray | None:
        with self.latest_lock:
            img, self.latest = self.latest, None
        return img

    def close(self, timeout: float = 30.0) -> None:
        """Finish what is queued, then stop. The stop mark is offered again until the thread has ended: a signal
        that cut an earlier put() between the item and its wake-up left the thread asleep on a queue holding the
        mark (a SIGTERM'd run hung here, once in a few dozen)."""
        deadline = time.monotonic() + timeout
        while self.thread.is_alive() and time.monotonic() < deadline:
            with contextlib.suppress(queue.Full):
                self.q.put_nowait(None)  # behind what is queued; a second mark is never read
            self.thread.join(0.2)
        if self.writer is not None:
            writer, self.writer = self.writer, None
            writer.close()
            self.stats.record_dropped = writer.dropped
            if writer.dropped:
                self.opts.log(
                    f"recording: {writer.dropped} of {writer.dropped + writer.written} frames left out "
                    "(the encoder could not keep up; the recording still plays at the scene's speed)"
                )
            check_recording(self.record_tmp, self.opts.record)


def run_loop(model: Predictor, source: FrameSource, opts: LoopOptions) -> LoopStats:
    """Segment frames until the source ends, max_frames, duration, a q/Esc key or Ctrl-C (stats.interrupted)."""
    if opts.realtime and not source.live:
        source = Paced(source)
    stats = LoopStats()
    window = "edgeseg" if opts.show else None
    stack = contextlib.ExitStack()
    capture = output = None
    t_start = time.perf_counter()
    try:
        results = _start_results(opts, model, source, stats, stack)  # first: the sinks are closed whatever fails
        record_tmp = stack.enter_context(recording_path(opts.record)) if opts.record else None
        for folder in (opts.save_masks, opts.save_frames):
            if folder is not None:
                Path(folder).mkdir(parents=True, exist_ok=True)
        # the health is built before the server, so that its first answer already has every field; the capture
        # counts as started (and is stopped in _finish) only once the server is up
        reader = CaptureThread(source, model.prepare, opts.reconnect, log=opts.log)
        health = Health(reader, stats, results, opts.health_stale_s)
        server = _start_server(opts, model, stack, health) if opts.serve else None
        capture = reader.start()
        output = _Output(model, opts, stats, capture, record_tmp, source.fps, server, results, health)
        t_start = time.perf_counter()
        try:
            _feed(model, source, capture, output, opts, window, t_start)
        except KeyboardInterrupt as e:  # Ctrl-C, or SIGTERM or SIGHUP (edgeseg.signals raises Terminated for them)
            stats.interrupted = True
            got = signals.received()
            stats.stopped_by = signals.signal.Signals(got).name if isinstance(e, Terminated) and got else "SIGINT"
    finally:
        # A second Ctrl-C while the recording is closed and renamed is noted, not obeyed: it used to lose it.
        with signals.finishing(say=opts.log):
            _finish(stack, capture, output, stats, window, t_start)
    if source.ended_early and not stats.interrupted:
        stats.ended_early = source.ended_early
        opts.log(f"warning: {source.ended_early}")
    if output.error is not None:
        raise output.error
    if stats.frames == 0 and not stats.interrupted:  # stopped before the first frame: a stop, not a fault
        raise SourceError(f"{source.name}: no frame could be read")
    return stats


def _finish(stack: contextlib.ExitStack, capture, output, stats: LoopStats, window, t_start: float) -> None:
    """Stop the threads, close the outputs, and close the stack: the recording is renamed whole, or (on an
    error, which the stack sees) removed."""
    exc = sys.exc_info()
    try:
        if capture is not None:
            capture.stop()
        if output is not None:
            output.close()
        stats.seconds = time.perf_counter() - t_start
        if capture is not None:
            stats.dropped, stats.corrupt, stats.reconnects = capture.dropped, capture.corrupt, capture.reconnects
        if window:
            with contextlib.suppress(cv2.error):
                cv2.destroyAllWindows()
    except BaseException:
        if not stack.__exit__(*sys.exc_info()):
            raise
        return
    stack.__exit__(*exc)


def _start_results(opts: LoopOptions, model: Predictor, source: FrameSource, stats: LoopStats, stack):
    """The results and sinks when there are any (closed with the stack: what they hold is sent first, and their
    final states go into the stats)."""
    if opts.zones is None and not opts.sinks:
        return None
    results = Results(
        model.spec, Path(model.path).name, source.name, opts.zones, opts.sinks, opts.publish_every, opts.mask_every
    )

    def close() -> None:
        results.close()
        stats.sinks, stats.messages_dropped = [s.status() for s in results.sinks], results.messages_dropped
        stats.events, stats.events_total = list(results.recent), results.event_count

    stack.callback(close)
    return results


def _start_server(opts: LoopOptions, model: Predictor, stack: contextlib.ExitStack, health: Health):
    from edgeseg.camera.serve import FrameServer

    server = FrameServer(*opts.serve, title=Path(model.path).name, stats_fn=health.snapshot, healthy_fn=health.healthy)
    stack.callback(server.close)
    opts.log(server.describe())
    return server


def _feed(
    model: Predictor,
    source: FrameSource,
    capture: CaptureThread,
    output: _Output,
    opts: LoopOptions,
    window: str | None,
    t_start: float,
) -> None:
    """The inference thread's loop: take the newest prepared frame, invoke, hand the result to the output
    thread; stop on max_frames, duration, the end of the source, or q/Esc in the window."""
    last_frame_t = time.monotonic()
    warned_stall = False
    submitted = 0
    while opts.max_frames is None or submitted < opts.max_frames:
        if opts.duration is not None and time.perf_counter() - t_start >= opts.duration:
            return
        item = capture.get(timeout=0.25)
        if item is None:
            if capture.finished:
                return
            if source.live and not warned_stall and time.monotonic() - last_frame_t > STALL_WARN_S:
                opts.log(f"no frame from {source.name} for {STALL_WARN_S:.0f} s; waiting")
                warned_stall = True
            if window and _poll_window(window, output):
                return
            continue
        last_frame_t, warned_stall = time.monotonic(), False
        t0 = time.perf_counter_ns()
        out = model.invoke(item.prepared[0])
        output.put((item, out, (time.perf_counter_ns() - t0) / 1e6))
        submitted += 1
        if window and _poll_window(window, output):
            return


def _poll_window(window: str, output: _Output) -> bool:
    """Show the newest rendered frame; True when the user pressed q or Esc (or closed the window)."""
    image = output.take_latest()
    if image is not None:
        cv2.imshow(window, image)
        output.window_shown = True
    if cv2.waitKey(1) & 0xFF in (ord("q"), 27):
        return True
    if not output.window_shown:  # the window does not exist before the first frame
        return False
    try:
        return cv2.getWindowProperty(window, cv2.WND_PROP_VISIBLE) < 1  # closed with the window's own button
    except cv2.error:
        return True
