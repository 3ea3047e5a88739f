"""Every backbone and head edgeseg builds, at one input size: GMACs and parameters per frame, whether the int8 model
is fully int8 and Edge TPU ready, and what int8 costs against float on this CPU (invoke p50, interleaved).

    python benchmarks/architectures.py [--size 384x288] [--classes 11] [--runs 30] [--threads 1] [--pause PID]
        -> benchmarks/results/architectures.json and .md

Weights are random (the figures are of the graph, not of what it learnt), calibration is random images; the
classic U-Net is measured at alpha 1.0 (its paper's widths) and 0.25 (edge-sized). No TensorFlow model is
trained; nothing is downloaded.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from edgeseg.io import atomic_write_text  # noqa: E402

# (name, backbone, alpha, decoder)
ARCHITECTURES = (
    ("MobileNetV2 + U-Net (base)", "mobilenet_v2", 1.0, "base"),
    ("MobileNetV2 + U-Net (dense, small's)", "mobilenet_v2", 1.0, "dense"),
    ("MobileNetV2 + U-Net (nano)", "mobilenet_v2", 1.0, "nano"),
    ("MobileNetV2 + FCN-8s", "mobilenet_v2", 1.0, "fcn"),
    ("MobileNetV3-Large + U-Net (base)", "mobilenet_v3_large", 1.0, "base"),
    ("MobileNetV3-Small + U-Net (tiny)", "mobilenet_v3_small", 1.0, "tiny"),
    ("ResNet50 + U-Net (dense)", "resnet50", 1.0, "dense"),
    ("ResNet50 + FCN-8s", "resnet50", 1.0, "fcn"),
    ("classic U-Net, alpha 1.0", "none", 1.0, "base"),
    ("classic U-Net, alpha 0.25", "none", 0.25, "base"),
)


def convert(model, int8: bool, hw: tuple[int, int]) -> bytes:
    from edgeseg.converters.tflite import int8_settings, keras_converter

    conv = keras_converter(model)
    if int8:
        rng = np.random.default_rng(0)

        def representative():
            for _ in range(8):
                yield [rng.uniform(0, 255, (1, *hw, 3)).astype(np.float32)]

        int8_settings(conv, representative, "int8")
    return conv.convert()


def invoke_p50(bufs: dict, threads: int, runs: int) -> dict:
    """Invoke p50 (ms) of each model, interleaved in rounds so that the machine's drift hits all alike."""
    from edgeseg.predictors.tflite import Segmenter

    segs = {k: Segmenter(b, threads=threads, name=f"{k}.tflite") for k, b in bufs.items()}
    for s in segs.values():
        s.set_input(np.zeros(s.input.shape, s.input.dtype))
        for _ in range(3):
            s.invoke_only()
    times: dict[str, list[float]] = {k: [] for k in segs}
    for _ in range(runs):
        for k, s in segs.items():
            t0 = time.perf_counter_ns()
            s.invoke_only()
            times[k].append((time.perf_counter_ns() - t0) / 1e6)
    return {k: float(np.median(v)) for k, v in times.items()}


@contextmanager
def paused(pid: int | None):
    """SIGSTOP `pid` for the block (the timed part), SIGCONT after, whatever happens."""
    if pid is None:
        yield
        return
    os.kill(pid, signal.SIGSTOP)
    try:
        yield
    finally:
        os.kill(pid, signal.SIGCONT)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", default="384x288")
    ap.add_argument("--classes", type=int, default=11)
    ap.add_argument("--runs", type=int, default=30)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "architectures.json")
    ap.add_argument(
        "--pause",
        type=int,
        default=None,
        metavar="PID",
        help="stop this process (a training run sharing the machine) while timing, and continue it after",
    )
    args = ap.parse_args()
    w, h = (int(v) for v in args.size.split("x"))
    from edgeseg.cost import graph_cost
    from edgeseg.edgetpu import lint
    from edgeseg.host import environment
    from edgeseg.tflite_file import read_model_graph
    from edgeseg.training.model import build_unet

    rows = []
    for name, backbone, alpha, decoder in ARCHITECTURES:
        model = build_unet(args.classes, (h, w), backbone, alpha, decoder)
        f32, i8 = convert(model, False, (h, w)), convert(model, True, (h, w))
        cost = graph_cost(read_model_graph(i8))
        tmp = args.out.with_name("_arch_int8.tflite")
        tmp.write_bytes(i8)
        rep = lint(tmp)
        tmp.unlink()
        with paused(args.pause):
            p50 = invoke_p50({"float32": f32, "int8": i8}, args.threads, args.runs)
        row = {
            "name": name,
            "backbone": backbone,
            "alpha": alpha,
            "decoder": decoder if backbone != "none" else "classic",
            "gmacs": round(cost.gmacs, 3),
            "params_m": round(cost.params / 1e6, 2),
            "int8_integer_ops": f"{cost.integer_ops}/{cost.op_count}",
            "edgetpu_ready": rep.ready,
            "edgetpu_cpu_ops": rep.cpu_ops,
            "float32_p50_ms": round(p50["float32"], 2),
            "int8_p50_ms": round(p50["int8"], 2),
            "int8_over_float": round(p50["int8"] / p50["float32"], 2),
        }
        rows.append(row)
        print(json.dumps(row), flush=True)
    env = environment()
    result = {"size": args.size, "classes": args.classes, "threads": args.threads, "runs": args.runs}
    result.update(environment={k: env.get(k) for k in ("cpu", "cores", "cpu_int8_dot", "os")}, rows=rows)
    atomic_write_text(args.out, json.dumps(result, indent=2) + "\n")
    lines = [
        f"Input {args.size} (WxH), {args.classes} classes, random weights; invoke p50 at {args.threads} thread(s), "
        f"{args.runs} interleaved runs, on {env.get('cpu')} ({env.get('cores')} cores, int8 dot product: "
        f"{', '.join(env.get('cpu_int8_dot') or []) or 'none'}).",
        "",
        "| architecture | GMACs | params (M) | int8 ops | Edge TPU | float32 ms | int8 ms | int8 / float |",
        "| --- | ---: | ---: | ---: | --- | ---: | ---: | ---: |",
    ]
    for r in rows:
        tpu = "ready" if r["edgetpu_ready"] else f"CPU: {', '.join(r['edgetpu_cpu_ops'][:3])}"
        lines.append(
            f"| {r['name']} | {r['gmacs']} | {r['params_m']} | {r['int8_integer_ops']} | {tpu} | "
            f"{r['float32_p50_ms']} | {r['int8_p50_ms']} | {r['int8_over_float']} |"
        )
    atomic_write_text(args.out.with_suffix(".md"), "\n".join(lines) + "\n")
    print(f"wrote {args.out} and {args.out.with_suffix('.md')}")


if __name__ == "__main__":
    main()
