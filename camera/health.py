"""Live health for the browser view's /stats.json and /healthz: FPS over the last seconds (0 during a source
outage, not the last rate seen), the source's state (starting, live, reconnecting, ended), reconnects, frames and
messages dropped, the sinks' states, uptime; healthy while frames flow, unhealthy after `stale_s` without one."""

from __future__ import annotations

import time

from edgeseg.stats import RateMeter

FPS_WINDOW_S = 2.0  # the HUD's frame rate: frames finished in the last 2 s
HEALTH_STALE_S = 10.0  # /healthz answers 503 after this long without a frame


class Health:
    """What a watchdog and the browser view read while the loop runs.

    Args:
        capture: the capture thread (source state, drops, reconnects).
        stats: the loop's statistics (frames, stage timings).
        results: the results and sinks (edgeseg.camera.results.Results), or None.
        stale_s: seconds without a frame before the run is unhealthy.
    """

    def __init__(self, capture, stats, results=None, stale_s: float = HEALTH_STALE_S):
        self.capture, self.stats, self.results, self.stale_s = capture, stats, results, stale_s
        self.rate = RateMeter(FPS_WINDOW_S)
        self.started = time.monotonic()
        self.last_frame: float | None = None

    def tick(self, t_ns: int) -> float | None:
        """A frame was finished at `t_ns` (perf_counter_ns): the FPS over the window, for the HUD."""
        self.last_frame = time.monotonic()
        return self.rate.tick(t_ns)

    def since_frame(self) -> float | None:
        """Seconds since the last frame (None before the first)."""
        return None if self.last_frame is None else time.monotonic() - self.last_frame

    def healthy(self) -> bool:
        """Frames flow: one came within stale_s (or the run started less than stale_s ago)."""
        age = self.since_frame()
        if age is None:
            return time.monotonic() - self.started < self.stale_s
        return age < self.stale_s

    def snapshot(self) -> dict:
        """The live statistics as JSON values."""
        s, cap = self.stats, self.capture
        age = self.since_frame()
        d = {
            "frames": s.frames,
            "fps": self.rate.rate(time.perf_counter_ns()),
            "source_state": cap.state,
            "reconnects": cap.reconnects,
            "dropped": cap.dropped,
            "corrupt": cap.corrupt,
            "invoke_p50_ms": s.stages["invoke"].p50(),
            "age_p50_ms": s.age.p50(),
            "uptime_s": round(time.monotonic() - self.started, 3),
            "since_frame_s": None if age is None else round(age, 3),
            "healthy": self.healthy(),
        }
        if self.results is not None:
            d.update(self.results.status())
        return d
