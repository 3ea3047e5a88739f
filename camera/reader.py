"""The capture thread: reads frames (and prepares the model's input tensor) ahead of inference.

Live sources: the thread overwrites one slot under a Condition; the consumer takes the newest frame and the
frames it never took are counted as dropped (Coral's camera pattern), so latency cannot grow behind a full
buffer. Files: every frame in order through a short bounded queue (the reader waits when it is ahead).
A live source that stops delivering is reopened with exponential backoff, or ends the run (reconnect=False).
"""

from __future__ import annotations

import collections
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from edgeseg.camera.frames import CorruptFrame, EndOfStream, FrameSource
from edgeseg.errors import SourceError

BACKOFF_START_S, BACKOFF_MAX_S = 0.5, 8.0


@dataclass
class Captured:
    """One frame as the capture thread delivers it: its number, arrival time, and the prepared input."""

    index: int  # frame number from the source, 0-based (dropped frames leave gaps)
    frame: np.ndarray
    t_capture: int  # perf_counter_ns when the frame arrived (read() returned it)
    capture_ms: float
    prepared: Any = None  # (tensor, geometry) when a prepare function was given
    prepare_ms: float = 0.0


class CaptureThread:
    """Reads frames (and prepares the model's input tensor) on a thread of its own, ahead of inference.

    Args:
        source: the frame source.
        prepare: frame -> (tensor, geometry), run on this thread (None: frames only).
        reconnect: reopen a live source that stops delivering.
        queue_size: a file source's frames read ahead.
        log: where reconnect and corrupt-frame notes go.
    """

    def __init__(
        self,
        source: FrameSource,
        prepare: Callable | None = None,
        reconnect: bool = True,
        queue_size: int = 3,
        log: Callable[[str], None] = print,
    ):
        self.source, self.prepare, self.reconnect, self.log = source, prepare, reconnect, log
        self.live = source.live
        self.cond = threading.Condition()
        self.slot: Captured | None = None  # live: newest frame not yet taken
        self.queue: collections.deque = collections.deque()  # files: in order
        self.queue_size = queue_size
        self.ended = False
        self.error: BaseException | None = None
        self.stop_event = threading.Event()
        self.read_count = 0
        self.dropped = 0
        self.corrupt = 0
        self.reconnects = 0
        self.reconnecting = False
        self.backoff = BACKOFF_START_S
        self.thread = threading.Thread(target=self._run, name="edgeseg-capture", daemon=True)

    def start(self) -> CaptureThread:
        """Start reading; returns self."""
        self.thread.start()
        return self

    # ------------------------------------------------------------------ producer
    def _run(self) -> None:
        try:
            while not self.stop_event.is_set():
                t0 = time.perf_counter_ns()
                try:
                    frame = self.source.read()
                except EndOfStream:
                    break
                except CorruptFrame as e:
                    self.corrupt += 1
                    if self.corrupt <= 3:
                        self.log(f"skipped a corrupt frame ({e})")
                    continue
                t1 = time.perf_counter_ns()
                if frame is None:
                    if self.source.can_reconnect and self.reconnect and self._reconnect():
                        continue
                    if self.source.can_reconnect and not self.reconnect:
                        self.log(f"{self.source.name} stopped delivering frames (--no-reconnect): ending")
                    break
                self.backoff = BACKOFF_START_S  # a frame came: the next drop-out starts its backoff afresh
                item = Captured(self.read_count, frame, t1, (t1 - t0) / 1e6)
                self.read_count += 1
                if self.prepare is not None:
                    item.prepared = self.prepare(frame)
                    item.prepare_ms = (time.perf_counter_ns() - t1) / 1e6
                self._put(item)
        except BaseException as e:  # handed to the consumer, which raises it on its own thread
            self.error = e
        finally:
            with self.cond:
                self.ended = True
                self.cond.notify_all()

    def _put(self, item: Captured) -> None:
        with self.cond:
            if self.live:
                if self.slot is not None:
                    self.dropped += 1
                self.slot = item
            else:
                while len(self.queue) >= self.queue_size and not self.stop_event.is_set():
                    self.cond.wait(0.1)
                self.queue.append(item)
            self.cond.notify_all()

    def _reconnect(self) -> bool:
        """Reopen with exponential backoff (0.5 s doubling to 8 s). The backoff carries over when a reopened
        source fails again before delivering a frame, so a dead camera is not hammered."""
        started = time.monotonic()
        self.log(f"{self.source.name} stopped delivering frames: reconnecting in {self.backoff:.1f} s")
        self.reconnecting = True
        try:
            return self._reopen_with_backoff(started)
        finally:
            self.reconnecting = False

    def _reopen_with_backoff(self, started: float) -> bool:
        while not self.stop_event.wait(self.backoff):
            self.backoff = min(self.backoff * 2, BACKOFF_MAX_S)
            try:
                self.source.reopen()
            except SourceError as e:
                self.log(f"reconnect failed ({e}); next try in {self.backoff:.1f} s")
                continue
            self.reconnects += 1
            self.log(f"reconnected to {self.source.name} after {time.monotonic() - started:.1f} s")
            return True
        return False

    # ------------------------------------------------------------------ consumer
    def get(self, timeout: float | None = None) -> Captured | None:
        """The next frame (files) or the newest one (live); None at the end of the stream or on timeout
        (check .finished to tell them apart). Raises what the capture thread raised."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self.cond:
            while True:
                if self.live and self.slot is not None:
                    item, self.slot = self.slot, None
                    return item
                if not self.live and self.queue:
                    item = self.queue.popleft()
                    self.cond.notify_all()
                    return item
                if self.ended:
                    if self.error is not None:
                        raise self.error
                    return None
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return None
                self.cond.wait(remaining if remaining is not None else 0.5)

    @property
    def state(self) -> str:
        """The source's state for the live health: "starting" (no frame read yet), "live", "reconnecting" or
        "ended"."""
        if self.ended:
            return "ended"
        if self.reconnecting:
            return "reconnecting"
        return "live" if self.read_count else "starting"

    @property
    def finished(self) -> bool:
        """The source has ended (or failed) and every frame has been taken."""
        with self.cond:
            return self.ended and self.slot is None and not self.queue

    def stop(self, timeout: float = 5.0) -> None:
        """Ask the thread to stop and wait for it (up to `timeout` seconds)."""
        self.stop_event.set()
        with self.cond:
            self.cond.notify_all()
        self.thread.join(timeout)
