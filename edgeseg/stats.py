"""Latency summaries: percentiles, not only a mean (bench, the camera loop, the benchmarks)."""

from __future__ import annotations

import collections
import threading

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
    """Events per second over a sliding window (the live FPS): tick() at each frame; None until two frames.
    Thread-safe: the render thread ticks while the browser view's thread asks for the rate."""

    def __init__(self, window_s: float = 2.0):
        self.window_ns = int(window_s * 1e9)
        self.times: collections.deque = collections.deque()
        self.lock = threading.Lock()

    def tick(self, t_ns: int) -> float | None:
        """Count a frame finished at `t_ns` (perf_counter_ns); the rate over the window so far."""
        with self.lock:
            self.times.append(t_ns)
            while len(self.times) > 2 and t_ns - self.times[0] > self.window_ns:
                self.times.popleft()
        return self.rate()

    def rate(self, now_ns: int | None = None) -> float | None:
        """Frames per second over the window, or None until there are two frames. With `now_ns`
        (perf_counter_ns) the window ends now, not at the last frame: the rate falls while no frame comes, and
        is 0 once the window holds fewer than two (a source outage reads 0 within the window, not the last FPS)."""
        with self.lock:
            t = list(self.times)
        if now_ns is not None:  # before the first frame too: 0, not None
            t = [x for x in t if now_ns - x <= self.window_ns]
            if len(t) < 2:
                return 0.0
            return (len(t) - 1) / (max(now_ns - t[0], 1) / 1e9)
        if len(t) < 2 or t[-1] == t[0]:
            return None
        return (len(t) - 1) / ((t[-1] - t[0]) / 1e9)


class RingStat:
    """The last `size` samples of a timing, in a preallocated array (constant memory)."""

    def __init__(self, size: int = 65536):
        self.buf = np.zeros(size, np.float32)
        self.n = 0

    def add(self, v: float) -> None:
        """Record one sample (the oldest is overwritten when the ring is full)."""
        self.buf[self.n % len(self.buf)] = v
        self.n += 1

    def values(self) -> np.ndarray:
        """The samples held, oldest first when the ring has not wrapped."""
        return self.buf[: min(self.n, len(self.buf))]

    def p50(self, recent: int = 256) -> float | None:
        """Median of the newest `recent` samples (cheap enough to call every frame)."""
        if not self.n:
            return None
        k = min(recent, self.n, len(self.buf))
        return float(np.median(self.buf[(self.n - k + np.arange(k)) % len(self.buf)]))
