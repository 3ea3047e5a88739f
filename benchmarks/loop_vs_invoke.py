"""How close the camera loop comes to the model's own speed.

For each model: invoke-only throughput (the interpreter's invoke on one prepared tensor, nothing else) and
the loop's throughput on a video file (decode, preprocess, invoke, postprocess, overlay, and optionally
mp4 writing), at the same thread count, in one run. Ratio = loop FPS / invoke-only FPS (both from the mean
time per frame, i.e. frames per second of wall time).

    python benchmarks/loop_vs_invoke.py MODEL.tflite [MODEL...] [--threads 1] [--frames 600]

Writes benchmarks/results/loop_vs_invoke.json and prints a table.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from edgeseg.bench import bench_model  # noqa: E402
from edgeseg.camera.loop import LoopOptions, run_loop  # noqa: E402
from edgeseg.camera.sources import open_source  # noqa: E402
from edgeseg.io import atomic_write_text  # noqa: E402
from edgeseg.predictors.tflite import Segmenter  # noqa: E402
from edgeseg.synthetic import write_video  # noqa: E402


def measure(model_path: Path, video: Path, threads: int, frames: int, record_dir: Path) -> dict:
    seg = Segmenter(model_path, threads=threads)
    b = bench_model(seg, runs=max(200, frames // 2), warmup=20, frame_hw=(480, 640))
    invoke_fps = 1000.0 / b["invoke"]["mean_ms"]
    out = {
        "model": str(model_path),
        "threads": threads,
        "input_hw": list(seg.input_hw),
        "invoke_mean_ms": b["invoke"]["mean_ms"],
        "invoke_p50_ms": b["invoke"]["p50_ms"],
        "invoke_fps": invoke_fps,
        "end_to_end_p50_ms": b["end_to_end"]["p50_ms"],
    }
    for label, record in (("loop", None), ("loop_recording", record_dir / "o.mp4")):
        with open_source(source=str(video)) as src:
            opts = LoopOptions(record=record, log=lambda *_: None)
            # one full pass, timed from the first frame; the bench above has already warmed the interpreter
            t0 = time.perf_counter()
            stats = run_loop(seg, src, opts)
            wall = time.perf_counter() - t0
        d = stats.to_dict()
        out[label] = {
            "frames": d["frames"],
            "fps": d["frames"] / wall,
            "stages_p50_ms": {k: v["p50_ms"] for k, v in d["stages"].items()},
            "frame_age_p50_ms": d["frame_age"]["p50_ms"],
        }
        out[f"{label}_ratio"] = out[label]["fps"] / invoke_fps
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("models", nargs="+", type=Path)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--frames", type=int, default=600)
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "loop_vs_invoke.json")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        video = write_video(Path(tmp) / "in.mp4", frames=args.frames, hw=(480, 640))
        rows = [measure(m, video, args.threads, args.frames, Path(tmp)) for m in args.models]
    result = {
        "machine": platform.processor() or platform.machine(),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "video": f"synthetic 640x480, {args.frames} frames (mp4v)",
        "rows": rows,
    }
    atomic_write_text(args.out, json.dumps(result, indent=2) + "\n")
    print(f"{'model':<34}{'thr':>4}{'invoke FPS':>12}{'loop FPS':>10}{'ratio':>7}{'+rec FPS':>10}{'ratio':>7}")
    for r in rows:
        print(
            f"{Path(r['model']).name:<34}{r['threads']:>4}{r['invoke_fps']:12.1f}{r['loop']['fps']:10.1f}"
            f"{r['loop_ratio']:7.2f}{r['loop_recording']['fps']:10.1f}{r['loop_recording_ratio']:7.2f}"
        )
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
