"""Training throughput per Keras backend: seconds per epoch for the nano and small recipes on this machine, the
same frames and options on each backend, each run being `edgeseg train` itself in a fresh process.

    python benchmarks/train_throughput.py [--models nano,small] [--backends tensorflow,jax,torch] [--frames 64]
        [--epochs 3] [--python-jax PATH] [--python-torch PATH] [--shared ../shared]

TensorFlow runs in this interpreter's environment; jax and torch each in a Python whose environment has that
backend and no TensorFlow (default: ~/.cache/edgeseg-venvs/{jax,torch}/bin/python, or .venv-jax / .venv-torch).
The frames are the first --frames of CamVid's train list (../shared), packed once with `edgeseg pack` (the file a
remote GPU trains from); without ../shared, synthetic scenes at CamVid's size. The recipe is the shipped one
(benchmarks/camvid.py: MobileNetV2-1.0, batch 8, median-frequency class weights, the default augmentation), from
random weights and without a teacher. history.csv's epoch_seconds is the optimizer steps alone (no validation);
epoch 0 includes compiling the step and is not counted: the rate is the median of the later epochs, and the
seconds per CamVid epoch are the recipe's 468 train+val frames at that rate.

Beside each rate: the training GMACs per image (3x the forward pass: the backward pass costs about twice the
forward) and the rate as a share of this CPU's float32 roof: the fastest of a 2048x2048 matrix product timed with
numpy and with each backend's own matmul. Results: benchmarks/results/train_throughput.{json,md}.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

# name -> (input WxH, decoder): benchmarks/camvid.py's PRESETS
RECIPES = {"nano": ("256x192", "nano"), "small": ("384x288", "dense")}
CAMVID_EPOCH_FRAMES = 468  # train + val, what the recipe trains on
BACKENDS = ("tensorflow", "jax", "torch")

ROOF = r"""
import json, os, sys, time
import numpy as np
import keras
n = 2048
a = keras.ops.convert_to_tensor(np.random.default_rng(0).standard_normal((n, n), dtype=np.float32))
times = []
for _ in range(7):
    t0 = time.perf_counter()
    keras.ops.convert_to_numpy(keras.ops.matmul(a, a))
    times.append(time.perf_counter() - t0)
print(json.dumps({"backend": keras.backend.backend(), "gmac_s": n**3 / sorted(times[2:])[2] / 1e9}))
"""

COST = r"""
import json, sys
from edgeseg.training.model import build_unet
from edgeseg.predictors.keras import keras_cost
w, h = (int(v) for v in sys.argv[1].split("x"))
model = build_unet(int(sys.argv[3]), (h, w), "mobilenet_v2", alpha=1.0, decoder=sys.argv[2])
macs, params = keras_cost(model)
print(json.dumps({"forward_gmacs": macs / 1e9, "params": params}))
"""


def find_python(backend: str, given: str | None) -> str | None:
    if backend == "tensorflow":
        return sys.executable
    home = Path.home() / ".cache" / "edgeseg-venvs"
    for cand in (given, ROOT / f".venv-{backend}/bin/python", home / backend / "bin" / "python"):
        if cand and Path(cand).is_file():
            return str(cand)
    return None


def _portable(path: str) -> str:
    """A Python's path as the results record it: relative to the repository or the home folder, not this machine's."""
    p = Path(path)
    for base, shown in ((ROOT, "."), (Path.home(), "~")):
        try:
            return str(Path(shown) / p.relative_to(base))
        except ValueError:
            continue
    return p.name


def numpy_roof() -> float:
    import numpy as np

    n = 2048
    a = np.random.default_rng(0).standard_normal((n, n), dtype=np.float32)
    times = []
    for _ in range(7):
        t0 = time.perf_counter()
        a @ a
        times.append(time.perf_counter() - t0)
    return n**3 / sorted(times[2:])[2] / 1e9


def frames(shared: Path, n: int, tmp: Path) -> tuple[Path, str]:
    """A pack of the first n CamVid train frames (plus 8 val frames to validate on), or of synthetic scenes."""
    from edgeseg.packing import pack_dataset

    camvid = shared / "data" / "camvid"
    if (camvid / "train.txt").is_file():
        src = tmp / "camvid_subset"
        src.mkdir()
        for split, count in (("train", n), ("val", 8)):
            lines = (camvid / f"{split}.txt").read_text().splitlines()[:count]
            fixed = []
            for line in lines:
                img, mask = line.split()
                fixed.append(" ".join(str((camvid / p.removeprefix("/SegNet/CamVid/")).resolve()) for p in (img, mask)))
            (src / f"{split}.txt").write_text("\n".join(fixed) + "\n")
        what = f"the first {n} frames of CamVid's train list, 480x360"
    else:
        from edgeseg import synthetic

        src = synthetic.write_dataset(tmp / "synthetic", count=n + 8, hw=(360, 480), seed=0)
        what = f"{n} synthetic scenes at 480x360 (no ../shared)"
    return pack_dataset(src, tmp / "frames.segpack").path, what


def train(python: str, backend: str, pack: Path, model: str, epochs: int, out: Path) -> dict:
    size, decoder = RECIPES[model]
    cmd = [
        python, "-m", "edgeseg", "train", "--backend", backend, "--data", str(pack), "--out", str(out),
        "--size", size, "--backbone", "mobilenet_v2", "--alpha", "1.0", "--decoder", decoder,
        "--epochs", str(epochs), "--batch-size", "8", "--lr", "1e-3", "--class-weights", "median", "--keep", "last",
    ]  # fmt: skip
    env = {**os.environ, "KERAS_BACKEND": backend, "TF_CPP_MIN_LOG_LEVEL": "2"}
    t0 = time.time()
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, env=env)
    if proc.returncode != 0:
        return {"error": (proc.stdout + proc.stderr).strip().splitlines()[-1][:300]}
    import csv

    with (out / "history.csv").open() as f:
        rows = list(csv.DictReader(f))
    secs = [float(r["epoch_seconds"]) for r in rows]
    rate = statistics.median(float(r["images_per_second"]) for r in rows[1:])
    return {
        "epoch_seconds": secs,
        "images_per_second": rate,
        "camvid_epoch_seconds": CAMVID_EPOCH_FRAMES / rate,
        "first_epoch_extra_s": secs[0] - statistics.median(secs[1:]),
        "peak_memory_mib": max(float(r["peak_memory_mib"]) for r in rows),
        "wall_s": time.time() - t0,
    }


def child_json(python: str, backend: str, code: str, *args) -> dict:
    env = {**os.environ, "KERAS_BACKEND": backend, "TF_CPP_MIN_LOG_LEVEL": "2"}
    proc = subprocess.run([python, "-c", code, *map(str, args)], cwd=ROOT, capture_output=True, text=True, env=env)
    if proc.returncode != 0:
        raise SystemExit(f"{backend}: {proc.stderr.strip().splitlines()[-1:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default="nano,small")
    ap.add_argument("--backends", default=",".join(BACKENDS))
    ap.add_argument("--frames", type=int, default=64, help="CamVid train frames per epoch (batch 8)")
    ap.add_argument("--epochs", type=int, default=3, help="the first is not counted (compiling)")
    ap.add_argument("--python-jax")
    ap.add_argument("--python-torch")
    ap.add_argument("--shared", type=Path, default=ROOT.parent / "shared")
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "train_throughput")
    args = ap.parse_args()
    if args.epochs < 2:
        sys.exit("--epochs must be at least 2 (the first compiles)")
    from edgeseg.host import environment
    from edgeseg.io import atomic_write_text

    models = args.models.split(",")
    pythons = {b: find_python(b, getattr(args, f"python_{b}", None)) for b in args.backends.split(",")}
    report = {
        "environment": environment(),
        "command": "python benchmarks/train_throughput.py " + " ".join(sys.argv[1:]),
        "numpy_float32_roof_gmac_s": numpy_roof(),
        "backends": {},
        "models": {},
        "results": [],
    }
    print(f"numpy float32 roof: {report['numpy_float32_roof_gmac_s']:.0f} GMAC/s", flush=True)
    for b, py in pythons.items():
        if py is None:
            report["backends"][b] = {"skipped": f"no Python with {b} (give --python-{b}, or make .venv-{b})"}
            print(f"{b}: skipped, no Python with it", flush=True)
            continue
        roof = child_json(py, b, ROOF)
        report["backends"][b] = {"python": _portable(py), "matmul_roof_gmac_s": roof["gmac_s"]}
        print(f"{b}: matmul {roof['gmac_s']:.0f} GMAC/s", flush=True)
    measured = [v["matmul_roof_gmac_s"] for v in report["backends"].values() if "matmul_roof_gmac_s" in v]
    report["float32_roof_gmac_s"] = max([report["numpy_float32_roof_gmac_s"], *measured])
    with tempfile.TemporaryDirectory() as tmp:
        pack, report["frames"] = frames(args.shared, args.frames, Path(tmp))
        for model in models:
            size, decoder = RECIPES[model]
            cost = child_json(sys.executable, "tensorflow", COST, size, decoder, 11)
            report["models"][model] = {"size": size, "decoder": decoder, **cost,
                                       "train_gmacs_per_image": 3 * cost["forward_gmacs"]}  # fmt: skip
            for b, py in pythons.items():
                if py is None:
                    continue
                print(f"{model} on {b}: {args.epochs} epochs of {args.frames} frames", flush=True)
                res = train(py, b, pack, model, args.epochs, Path(tmp) / f"{model}-{b}")
                if "error" not in res:
                    gmac_s = res["images_per_second"] * report["models"][model]["train_gmacs_per_image"]
                    res["train_gmac_s"] = gmac_s
                    res["share_of_roof"] = gmac_s / report["float32_roof_gmac_s"]
                    print(
                        f"  {res['images_per_second']:.2f} images/s, {res['camvid_epoch_seconds']:.0f} s per CamVid "
                        f"epoch, {100 * res['share_of_roof']:.0f}% of the float roof",
                        flush=True,
                    )
                else:
                    print(f"  failed: {res['error']}", flush=True)
                report["results"].append({"model": model, "backend": b, **res})
    args.out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(args.out.with_suffix(".json"), json.dumps(report, indent=2) + "\n")
    atomic_write_text(args.out.with_suffix(".md"), markdown(report, args))
    print(f"wrote {args.out.with_suffix('.json')} and {args.out.with_suffix('.md')}")


def markdown(report: dict, args) -> str:
    env = report["environment"]
    roof = report["float32_roof_gmac_s"]
    lines = [
        f"# Training throughput per backend, {env['cpu']} ({env['cores']} cores)",
        "",
        f"`{report['command'].strip()}`",
        "",
        f"Frames: {report['frames']}, packed; batch 8; epochs {args.epochs} (the first, compiling, not counted).",
        f"Float32 roof {roof:.0f} GMAC/s, the fastest of numpy ({report['numpy_float32_roof_gmac_s']:.0f}) and each "
        "backend's own matmul: "
        + ", ".join(
            f"{b} {v['matmul_roof_gmac_s']:.0f}" for b, v in report["backends"].items() if "matmul_roof_gmac_s" in v
        )
        + " GMAC/s (2048x2048).",
        "",
        "| model | GMACs fwd / train per image | backend | images/s | s per CamVid epoch (468) | first epoch extra s | "
        "train GMAC/s | share of roof | peak MiB |",
        "| --- | ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in report["results"]:
        m = report["models"][r["model"]]
        cost = f"{m['forward_gmacs']:.3f} / {m['train_gmacs_per_image']:.2f}"
        if "error" in r:
            lines.append(f"| {r['model']} | {cost} | {r['backend']} | failed: {r['error']} | | | | | |")
            continue
        lines.append(
            f"| {r['model']} | {cost} | {r['backend']} | {r['images_per_second']:.2f} | "
            f"{r['camvid_epoch_seconds']:.0f} | {r['first_epoch_extra_s']:.0f} | {r['train_gmac_s']:.1f} | "
            f"{100 * r['share_of_roof']:.1f}% | {r['peak_memory_mib']:.0f} |"
        )
    for b, v in report["backends"].items():
        if "skipped" in v:
            lines.append(f"\n{b}: {v['skipped']}")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
