"""ONNX Runtime int8 recipes on the shipped models: per-tensor against per-channel weights (and reduce_range), on
this CPU and, under qemu-user, on an AVX2 CPU without int8 dot products.

    python benchmarks/onnx_int8.py [--models nano,small] [--recipes per_tensor,per_channel]
                                   [--emulate Haswell] [--emulated-frames 16]

Each recipe is `edgeseg convert MODEL --to onnx --int8` (200 calibration images of CamVid train) with
converters.onnx.QUANTISATION set to it, scored by `edgeseg eval` on CamVid val at 480x360 beside the float export.
The shipped models trained on val: the scores compare the conversions, they do not measure the models. With
--emulate CPU, each model is also scored on the first --emulated-frames val frames under `qemu-x86_64-static -cpu
CPU`, native and emulated side by side on the same frames: ONNX Runtime picks its int8 kernels by CPUID, so an
emulated Haswell takes the AVX2 path (uint8 x int8 by VPMADDUBSW, 16-bit sums that can saturate) that a VNNI
machine never runs. Emulated figures are accuracy only, never speed. Results: benchmarks/results/onnx_int8/.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from edgeseg.io import atomic_write_text  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results" / "onnx_int8"
RECIPES = {
    "per_tensor": {"per_channel": False},
    "per_channel": {"per_channel": True},
    "per_channel_reduce_range": {"per_channel": True, "reduce_range": True},
}


def cpu_name() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def evaluate(model: Path, data: Path, limit: int | None, emulate: str | None) -> float:
    out = Path(str(model) + (f".{emulate}" if emulate else "") + f".{limit or 'all'}.json")
    cmd = [sys.executable, "-m", "edgeseg", "eval", str(model), "--data", str(data), "--threads", "1"]
    cmd += ["--json", str(out)] + (["--limit", str(limit)] if limit else [])
    if emulate:
        cmd = ["qemu-x86_64-static", "-cpu", emulate, *cmd]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    if proc.returncode != 0:
        sys.exit(f"eval failed: {' '.join(cmd)}\n{proc.stderr[-2000:]}")
    return json.loads(out.read_text())["miou"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default="nano,small")
    ap.add_argument("--recipes", default="per_tensor,per_channel")
    ap.add_argument("--shared", type=Path, default=ROOT.parent / "shared")
    ap.add_argument("--emulate", default=None, help="a qemu x86-64 CPU model to score on too, e.g. Haswell (AVX2)")
    ap.add_argument("--emulated-frames", type=int, default=16)
    args = ap.parse_args()
    data = args.shared / "data" / "camvid"
    if not data.is_dir():
        sys.exit(f"needs {data} (../shared)")
    if args.emulate and not shutil.which("qemu-x86_64-static"):
        sys.exit("--emulate needs qemu-x86_64-static (apt-get install qemu-user-static)")
    from typer.testing import CliRunner

    from edgeseg.assets import shipped_keras
    from edgeseg.cli import app
    from edgeseg.converters import onnx as onnx_target

    default = dict(onnx_target.QUANTISATION)
    runner = CliRunner()
    rows = []
    for name in args.models.split(","):
        keras = shipped_keras(name)
        folder = ROOT / "runs" / "onnx_int8" / name
        folder.mkdir(parents=True, exist_ok=True)
        models = {"float32": folder / "float32.onnx"}
        r = runner.invoke(app, ["convert", str(keras), "--to", "onnx", "--out", str(models["float32"])])
        if r.exit_code != 0:
            sys.exit(r.output)
        for recipe in args.recipes.split(","):
            onnx_target.QUANTISATION.clear()
            onnx_target.QUANTISATION.update(default, **RECIPES[recipe])
            models[recipe] = folder / f"int8_{recipe}.onnx"
            cal = ["--calibration", str(data), "--num-calibration", "200"]
            r = runner.invoke(
                app, ["convert", str(keras), "--to", "onnx", "--int8", *cal, "--out", str(models[recipe])]
            )
            if r.exit_code != 0:
                sys.exit(r.output)
        onnx_target.QUANTISATION.clear()
        onnx_target.QUANTISATION.update(default)
        for recipe, path in models.items():
            row = {"model": name, "recipe": recipe, "val_miou": evaluate(path, data, None, None)}
            if args.emulate:
                row["frames"] = args.emulated_frames
                row["native_first_frames"] = evaluate(path, data, args.emulated_frames, None)
                row["emulated_first_frames"] = evaluate(path, data, args.emulated_frames, args.emulate)
            print(row, flush=True)
            rows.append(row)
    import onnxruntime

    meta = {
        "cpu": cpu_name(),
        "onnxruntime": onnxruntime.__version__,
        "emulated_cpu": args.emulate,
        "command": "python benchmarks/onnx_int8.py " + " ".join(sys.argv[1:]),
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    atomic_write_text(RESULTS / "onnx_int8.json", json.dumps({**meta, "rows": rows}, indent=2) + "\n")
    emu = args.emulate
    head = "| model | recipe | val mIoU (%), this CPU |"
    head += f" first {args.emulated_frames} frames, this CPU | same frames, emulated {emu} |" if emu else ""
    lines = [head, "|" + " --- |" * 2 + " ---: |" * (3 if emu else 1)]
    for r in rows:
        cells = [r["model"], r["recipe"], f"{100 * r['val_miou']:.2f}"]
        if emu:
            cells += [f"{100 * r['native_first_frames']:.2f}", f"{100 * r['emulated_first_frames']:.2f}"]
        lines.append("| " + " | ".join(cells) + " |")
    text = f"{meta['command']}: CPU {meta['cpu']}, onnxruntime {meta['onnxruntime']}\n\n" + "\n".join(lines) + "\n"
    atomic_write_text(RESULTS / "onnx_int8.md", text)
    print(text)
    print(f"wrote {os.path.relpath(RESULTS, ROOT)}/onnx_int8.md and .json")


if __name__ == "__main__":
    main()
