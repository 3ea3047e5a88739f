"""Latency summaries: percentiles, not only a mean (bench, the camera loop, the benchmarks)."""

from __future__ import annotations

import numpy as np


def summarise(ms) -> dict:
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
