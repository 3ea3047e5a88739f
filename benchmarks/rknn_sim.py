"""RKNN's simulator on CamVid: mIoU of the shipped models built for a Rockchip NPU, int8 and fp16, beside Keras.

    python benchmarks/rknn_sim.py [--model nano|small|PATH.keras] [--platform rk3588] [--limit N]
                                  [--shared ../shared] [--out benchmarks/results/rknn]

Builds each model as `edgeseg convert --to rknn --int8|--fp16` does (rknn-toolkit2 in .venv-rknn, made by
scripts/setup-rknn.sh, or EDGESEG_RKNN_PYTHON; the int8 build calibrates on 200 CamVid train frames), scores the
toolkit's x86 simulator on CamVid val with `edgeseg eval`'s scorer, and the float Keras model on the same frames.
The simulator reproduces the NPU's arithmetic, not its speed: no time here is a board's time. Val holds frames
the shipped models trained on, so the figures compare the builds with the float model; they do not measure the
model. Writes <out>/rknn_sim.json and .md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform as host
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", action="append", help="nano, small or a .keras path (repeat; default: nano, small)")
    ap.add_argument("--platform", default="rk3588")
    ap.add_argument("--limit", type=int, default=None, help="score the first N val frames only")
    ap.add_argument("--shared", type=Path, default=ROOT.parent / "shared")
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "rknn")
    args = ap.parse_args()
    data = args.shared / "data" / "camvid"
    if not data.is_dir():
        sys.exit(f"no CamVid at {data}: give --shared")
    from edgeseg.assets import shipped_keras
    from edgeseg.converters.pipeline import rknn_simulator
    from edgeseg.converters.rknn import rknn_python
    from edgeseg.datasets import open_dataset
    from edgeseg.evaluate import evaluate
    from edgeseg.io import atomic_write_text
    from edgeseg.predictors.keras import KerasSegmenter
    from edgeseg.progress import progress_bar

    rknn_python()  # says how to install the toolkit before any work
    ds = open_dataset(data, "val", "auto")
    rows = []
    for name in args.model or ["nano", "small"]:
        keras_path = shipped_keras(name) if name in ("nano", "small") else Path(name)
        if keras_path is None or not keras_path.is_file():
            print(f"skipped {name}: no Keras model ({keras_path or 'not shipped in this install'})")
            continue
        keras = KerasSegmenter(keras_path)
        ref = evaluate(keras, ds, args.limit, progress=progress_bar(f"{name} keras"))
        shown = os.path.relpath(keras_path.resolve(), ROOT)  # this machine's absolute paths mean nothing elsewhere
        row = {"model": name, "keras": shown, "gmacs": keras.describe()["gmacs"], "float_miou": ref["miou"]}
        for precision in ("int8", "fp16"):
            t0 = time.perf_counter()
            with rknn_simulator(keras_path, precision, args.platform, calibration=data, progress=True) as sim:
                built = time.perf_counter() - t0
                res = evaluate(sim, ds, args.limit, progress=progress_bar(f"{name} rknn {precision}"))
                row[f"{precision}_miou"], row[f"{precision}_size_mb"] = res["miou"], round(sim.size_bytes / 1e6, 2)
                row[f"{precision}_build_s"], row["toolkit"] = round(built, 1), sim.runtime_version
            print(f"{name} rknn {precision}: mIoU {100 * res['miou']:.2f} (Keras float {100 * ref['miou']:.2f})")
        rows.append(row)
    # a rerun of one model keeps the other models' rows of the same platform, split and frames
    old = args.out / "rknn_sim.json"
    kept = json.loads(old.read_text()) if old.is_file() else {}
    same = all(kept.get(k) == v for k, v in (("platform", args.platform), ("frames", args.limit or len(ds))))
    ran = {r["model"] for r in rows}
    rows += [r for r in kept.get("rows", []) if same and r["model"] not in ran]
    rows.sort(key=lambda r: r["gmacs"])
    report = {
        "platform": args.platform,
        "split": "val",
        "frames": args.limit or len(ds),
        "host": f"{host.processor() or host.machine()} ({host.system()})",
        "rows": rows,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(args.out / "rknn_sim.json", json.dumps(report, indent=2) + "\n")
    md = [
        f"RKNN simulator (rknn-toolkit2 {rows[0]['toolkit'] if rows else '?'}, built for {args.platform}) on CamVid "
        f"val ({report['frames']} frames, which the shipped models trained on), against the float Keras model. "
        "`python benchmarks/rknn_sim.py`",
        "",
        "| model | GMACs | Keras float mIoU | RKNN int8 mIoU | RKNN fp16 mIoU | int8 size (MB) | fp16 size (MB) |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in rows:
        md.append(
            f"| {r['model']} | {r['gmacs']:.3f} | {100 * r['float_miou']:.2f} | {100 * r['int8_miou']:.2f} | "
            f"{100 * r['fp16_miou']:.2f} | {r['int8_size_mb']} | {r['fp16_size_mb']} |"
        )
    atomic_write_text(args.out / "rknn_sim.md", "\n".join(md) + "\n")
    print(f"wrote {args.out / 'rknn_sim.json'} and {args.out / 'rknn_sim.md'}")


if __name__ == "__main__":
    main()
