"""Latency summaries: percentiles, not only a mean (bench, the camera loop, the benchmarks)."""

from __future__ import annotations

import collections

import numpy as np


def summarise(ms) -> dict:
    """Latency samples (ms) -> runs, p50, p90, p99, mean, min, max and FPS at the median ({} when there are none)."""
    a = np.asarray(ms, dtype=np.float64)
    if a.size == 0:
        return {}
    p50 = float(np.percentile(a, 50))
    return {
        "runs": int(a.size),
        "p50_ms": p50,
        "p90_ms": float(np.percentile(a, 90)),
        "p99_ms": float(np.percentile(a, 99)),
        "mean_ms": float(a.mean()),
        "min_ms": float(a.min()),
        "max_ms": float(a.max()),
        "fps": 1000.0 / p50 if p50 > 0 else None,
    }


class RateMeter:
    """Events per second over a sliding window (the live FPS): tick() at each frame; None until two frames."""

    def __init__(self, window_s: float = 2.0):
        self.window_ns = int(window_s * 1e9)
        self.times: collections.deque = collections.deque()

    def tick(self, t_ns: int) -> float | None:
        """Count a frame finished at `t_ns` (perf_counter_ns); the rate over the window so far."""
        self.times.append(t_ns)
        while len(self.times) > 2 and t_ns - self.times[0] > self.window_ns:
            self.times.popleft()
        return self.rate()

    def rate(self) -> float | None:
        """Frames per second over the window, or None until there are two frames."""
        t = self.times
        if len(t) < 2 or t[-1] == t[0]:
            return None
        return (len(t) - 1) / ((t[-1] - t[0]) / 1e9)
