"""bench: how fast a model runs here. Warm-up first, then timed runs with time.perf_counter_ns.

Two figures, reported apart: invoke-only (the interpreter's invoke on a prepared tensor, nothing else) and
end-to-end (a BGR frame of a given size -> preprocess -> invoke -> postprocess -> mask at frame size).
Percentiles, not only a mean.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np

from edgeseg.preprocess import preprocess


def summarise(ms: list[float] | np.ndarray) -> dict:
    a = np.asarray(ms, dtype=np.float64)
    if a.size == 0:
        return {}
    p50 = float(np.percentile(a, 50))
    return {
        "runs": int(a.size), "p50_ms": p50, "p90_ms": float(np.percentile(a, 90)),
        "p99_ms": float(np.percentile(a, 99)), "mean_ms": float(a.mean()), "min_ms": float(a.min()),
        "max_ms": float(a.max()), "fps": 1000.0 / p50 if p50 > 0 else None,
    }


def test_frame(frame_hw: tuple[int, int], seed: int = 0) -> np.ndarray:
    """A synthetic BGR frame: real image statistics matter little for timing, but not all-zero either."""
    from edgeseg.synthetic import scene

    return scene(seed, frame_hw)[0]


def bench_model(model, runs: int = 100, warmup: int = 10, frame_hw: tuple[int, int] = (480, 640),
                progress: Callable[[int, int], None] | None = None) -> dict:
    frame = test_frame(frame_hw)
    tensor, _ = preprocess(frame, model.spec, model.input_detail)
    total = 2 * (warmup + runs)
    done = 0

    def tick():
        nonlocal done
        done += 1
        if progress:
            progress(done, total)

    for _ in range(warmup):
        model.invoke(tensor)
        tick()
    invoke_ms = []
    for _ in range(runs):
        t0 = time.perf_counter_ns()
        model.invoke(tensor)
        invoke_ms.append((time.perf_counter_ns() - t0) / 1e6)
        tick()
    for _ in range(warmup):
        model.predict(frame)
        tick()
    e2e_ms, stages = [], {"preprocess": [], "invoke": [], "postprocess": []}
    for _ in range(runs):
        t0 = time.perf_counter_ns()
        model.predict(frame)
        e2e_ms.append((time.perf_counter_ns() - t0) / 1e6)
        for k in stages:
            stages[k].append(model.timings.get(k, float("nan")))
        tick()
    return {
        **model.describe(),
        "frame_hw": list(frame_hw),
        "warmup": warmup,
        "invoke": summarise(invoke_ms),
        "end_to_end": summarise(e2e_ms),
        "stages_p50_ms": {k: float(np.nanmedian(v)) for k, v in stages.items()},
    }
