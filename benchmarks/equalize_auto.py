"""Can `convert --equalize auto` tell which int8 build is better without labels? Measured on the proxy models.

    python benchmarks/equalize_auto.py [--rows small_baseline,nano_baseline_60ep,nano_distil,nano_distil_60ep]

`--equalize auto` builds the int8 model with and without activation equalisation and keeps the one whose argmax
agrees more often with the float model's on held-out images (no labels needed). This checks that rule on the
ablation's proxy models (benchmarks/camvid_ablation.py, sequence 0006R0 held out; run `--int8` and `--int8
--equalize` on each row first), where the better build is known from labels: each build's mIoU on 0006R0. For
each row it converts both builds as the ablation did (200 calibration frames of the proxy's training data;
reused when runs/ablation/<row>/model_int8_{plain,equalized}.tflite exist), then measures their agreement with
the float32 TFLite model on (a) the 101 held-out 0006R0 frames, and (b) 8, 32 and 64 training frames outside the
calibration set, which is what a model trained on all of its data is checked on. Writes
benchmarks/results/equalize_auto.{json,md}.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from edgeseg.converters.calibration import calibration_set, verification_frames  # noqa: E402
from edgeseg.converters.verify import argmax_agreement  # noqa: E402
from edgeseg.host import environment  # noqa: E402
from edgeseg.images import read_image  # noqa: E402
from edgeseg.io import atomic_write_text  # noqa: E402
from edgeseg.predictors import open_predictor  # noqa: E402

RUNS, RESULTS = ROOT / "runs" / "ablation", ROOT / "benchmarks" / "results"
BUILDS = ("plain", "equalized")


def build(run: Path, kind: str) -> Path:
    """The row's int8 model converted as the ablation converts it, with equalisation off or on."""
    path = run / f"model_int8_{kind}.tflite"
    if not path.exists():
        mode = "on" if kind == "equalized" else "off"
        cmd = [sys.executable, "-m", "edgeseg", "convert", str(run / "model.keras"), "--int8", "--calibration"]
        cmd += [str(run / "proxy_data"), "--num-calibration", "200", "--equalize", mode, "--out", str(path)]
        subprocess.run(cmd, cwd=ROOT, check=True)
    return path


def agreement(reference, model, frames: list[np.ndarray]) -> float:
    """Share of pixels where the two models' class maps agree over the frames (convert's own measure)."""
    return argmax_agreement([reference.segment(f) for f in frames], [model.segment(f) for f in frames])


def row(name: str) -> dict:
    run = RUNS / name
    proxy = run / "proxy_data"
    miou = {}
    for kind, tag in zip(BUILDS, ("_int8", "_int8_equalized"), strict=True):
        res = json.loads((RESULTS / "camvid_ablation" / f"{name}{tag}.json").read_text())
        miou[kind], miou["float"] = res["miou_int8"], res["miou_float32"]
    ref = open_predictor(run / "model_float32.tflite", threads=2)
    models = {kind: open_predictor(build(run, kind), threads=2) for kind in BUILDS}
    cal = calibration_set(proxy, ref.spec, 200)
    held_out = [read_image(p) for p in sorted((proxy / "val").glob("*.png"))]
    checks = {"held_out_0006R0": held_out}
    for n in (8, 32, 64):
        frames, _ = verification_frames([proxy / "train"], ref.spec, n, exclude=cal)
        checks[f"train_outside_calibration_{n}"] = frames
    out = {"proxy_miou": miou, "better_by_labels": max(BUILDS, key=lambda k: miou[k]), "checks": {}}
    for check, frames in checks.items():
        a = {kind: agreement(ref, m, frames) for kind, m in models.items()}
        picked = max(BUILDS, key=lambda k: a[k])
        out["checks"][check] = {"frames": len(frames), "agreement": a, "auto_keeps": picked}
        print(f"{name} {check} ({len(frames)}): {a} -> {picked}", flush=True)
    return out


def label(check: str, frames: int) -> str:
    """A check's column title."""
    if check.startswith("held_out"):
        return f"auto on the {frames} held-out frames"
    return f"auto on {frames} training frames outside calibration"


def table(rows: dict) -> str:
    """The markdown table: per row, the build labels prefer, and what auto keeps on each check (agreement with the
    float model, plain / equalised)."""
    first = next(iter(rows.values()))["checks"]
    head = "| proxy model | proxy mIoU plain / equalised | better |" + "".join(
        f" {label(c, first[c]['frames'])} |" for c in first
    )
    lines = [head, "| --- | ---: | --- |" + " --- |" * len(first)]
    for name, r in rows.items():
        m = r["proxy_miou"]
        cells = []
        for c in first:
            k = r["checks"][c]
            a = k["agreement"]
            mark = "right" if k["auto_keeps"] == r["better_by_labels"] else "**wrong**"
            cells.append(f"{k['auto_keeps']} ({100 * a['plain']:.2f} / {100 * a['equalized']:.2f}%, {mark})")
        lines.append(
            f"| {name} | {100 * m['plain']:.2f} / {100 * m['equalized']:.2f} | {r['better_by_labels']} | "
            + " | ".join(cells)
            + " |"
        )
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", default="small_baseline,nano_baseline_60ep,nano_distil,nano_distil_60ep")
    args = ap.parse_args()
    names = args.rows.split(",")
    missing = [n for n in names if not (RUNS / n / "proxy_data").is_dir()]
    if missing:
        sys.exit(f"no proxy run for {', '.join(missing)}: run benchmarks/camvid_ablation.py ... --int8 first")
    rows = {n: row(n) for n in names}
    env = {k: v for k, v in environment().items() if k in ("cpu", "machine", "cores")}
    doc = {"command": "python benchmarks/equalize_auto.py --rows " + ",".join(names), "environment": env, "rows": rows}
    atomic_write_text(RESULTS / "equalize_auto.json", json.dumps(doc, indent=2) + "\n")
    atomic_write_text(RESULTS / "equalize_auto.md", table(rows))
    print(f"wrote {RESULTS / 'equalize_auto.json'} and equalize_auto.md")


if __name__ == "__main__":
    main()
