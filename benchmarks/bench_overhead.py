"""Does `edgeseg bench` measure the model, or itself? Its invoke-only p50 against a bare loop of
interpreter.invoke() timed with perf_counter_ns, same interpreter, alternating blocks in one process.

    python benchmarks/bench_overhead.py MODEL.tflite [--threads 1] [--blocks 10] [--runs 50]

Target: within 5%. Writes benchmarks/results/bench_overhead.json.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from edgeseg.bench import bench_model  # noqa: E402
from edgeseg.io import atomic_write_text  # noqa: E402
from edgeseg.predictors.tflite import Segmenter  # noqa: E402


def bare(it, n: int) -> list[float]:
    out = []
    for _ in range(n):
        t0 = time.perf_counter_ns()
        it.invoke()
        out.append((time.perf_counter_ns() - t0) / 1e6)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("model", type=Path)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--blocks", type=int, default=10)
    ap.add_argument("--runs", type=int, default=50)
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "bench_overhead.json")
    args = ap.parse_args()
    seg = Segmenter(args.model, threads=args.threads)
    it = seg.interpreter
    it.set_tensor(it.get_input_details()[0]["index"], np.zeros(seg.input.shape, seg.input.dtype))
    bare(it, 20)
    bare_ms, bench_ms = [], []
    for _ in range(args.blocks):
        bare_ms += bare(it, args.runs)
        bench_ms.append(bench_model(seg, runs=args.runs, warmup=2)["invoke"]["p50_ms"])
    bare_p50 = float(np.median(bare_ms))
    bench_p50 = float(np.median(bench_ms))
    ratio = bench_p50 / bare_p50
    result = {
        "model": str(args.model),
        "threads": args.threads,
        "bare_invoke_p50_ms": bare_p50,
        "edgeseg_bench_invoke_p50_ms": bench_p50,
        "ratio": ratio,
        "within_5_percent": abs(ratio - 1) <= 0.05,
        "blocks": args.blocks,
        "runs_per_block": args.runs,
    }
    atomic_write_text(args.out, json.dumps(result, indent=2) + "\n")
    print(
        f"bare invoke() p50 {bare_p50:.3f} ms, edgeseg bench invoke-only p50 {bench_p50:.3f} ms: "
        f"ratio {ratio:.3f} ({'within' if abs(ratio - 1) <= 0.05 else 'NOT within'} 5%)"
    )
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
