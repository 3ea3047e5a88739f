"""The CamVid recipe: train -> int8 -> scores -> speed -> model card, one command.

    python benchmarks/camvid.py [--model small|nano] [--shared ../shared] [--out runs/camvid_small] [--epochs N]
                                [--decoder dense] [--size 384x288] [--encoder imagenet|deeplab_bn] [--loss ce|ohem]
                                [--scale-range 0.75,1.5] [--teacher MODEL|none] [--equalize auto|on|off] [--ship]
                                [--train-data PACK]

Trains a MobileNetV2-1.0 U-Net on CamVid train+val, the published protocol, to a fixed schedule (the last epoch
is kept: no epoch is picked on data it trained on), median-frequency class weights, void ignored. The recipe's
choices were made on a cross-sequence proxy (benchmarks/camvid_ablation.py: one sequence held out of training).
The encoder starts from ImageNet (../shared/weights) or from Coral's DeepLabV3 encoder with its batch norms fitted
to CamVid (benchmarks/deeplab_encoder.py). `--model small` (the default model): the dense (int8) decoder at
384x288, 2.08 GMACs a frame; `--model nano` (Pi-4-class CPUs): the nano decoder at 256x192, 0.38 GMACs,
distilled from the shipped small (train --teacher; `--teacher none` trains it alone). The val
mIoU it prints is on frames it trained on: a check of the conversion, not of the model. Then it
converts to int8 calibrated on 200 train images (with the quantisation report and the Edge TPU lint; convert's
activation equalisation in auto mode by default: built with and without, the one closer to float kept, since
small's proxy run gains from it and a distilled nano's loses); scores
float and int8 on val at the labels' 480x360; benches the int8 model at 1 and 2 threads beside the float model
and Coral's DeepLabV3 in one run; writes results/results.json in --out (the model cards in docs/models/ quote it).
An interrupted run continues where it stopped (edgeseg train --resume). --ship copies the int8 model, and the
float Keras model with its spec (what `edgeseg train --init nano|small` starts from), into edgeseg/assets/. Each
step is the edgeseg command a user would type.
CamVid is CC BY-NC 4.0 (personal and research use).
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from edgeseg.io import atomic_write_text  # noqa: E402

# name -> (input WxH, decoder preset, epochs); the shipped files are edgeseg/assets/camvid_<name>_int8.tflite.
# Nano's 60 epochs: the one change the 0006R0 proxy ranked above its noise (benchmarks/camvid_ablation.py).
PRESETS = {"small": ("384x288", "dense", 30), "nano": ("256x192", "nano", 60)}
# name -> the model it distils from (train --teacher): nano learns from the shipped small, the largest gain the
# proxy measured (+1.6 at 60 epochs). `--teacher none` trains without one.
TEACHERS = {"nano": ROOT / "edgeseg" / "assets" / "camvid_small.keras"}


def edgeseg(*args) -> None:
    args = [str(a) for a in args]
    print(f"\n$ edgeseg {shlex.join(args)}", flush=True)
    proc = subprocess.run([sys.executable, "-m", "edgeseg", *args], cwd=ROOT)
    if proc.returncode != 0:
        sys.exit(f"step failed (exit {proc.returncode}): edgeseg {shlex.join(args)}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", choices=sorted(PRESETS), default="small", help="which shipped model to train")
    ap.add_argument("--shared", type=Path, default=ROOT.parent / "shared")
    ap.add_argument("--out", type=Path, default=None, help="run folder (default runs/camvid_<model>)")
    ap.add_argument("--epochs", type=int, default=None, help="default: the model's (small 30, nano 60)")
    ap.add_argument(
        "--decoder",
        default=None,
        help="decoder preset instead of the model's (small: dense; nano: "
        "nano; the small model before the dense one: base, faster on x86 CPUs without VNNI/AMX)",
    )
    ap.add_argument("--size", default=None, help="input WxH instead of the model's (small: 384x288; nano: 256x192)")
    ap.add_argument("--encoder", choices=("imagenet", "deeplab_bn"), default="imagenet", help="the encoder's start")
    ap.add_argument("--loss", choices=("ce", "ohem"), default="ce")
    ap.add_argument("--scale-range", default="0.75,1.5")
    ap.add_argument(
        "--teacher", default=None, help="a .keras model (with its spec) to distil from (nano: the shipped small; none)"
    )
    ap.add_argument(
        "--train-data",
        type=Path,
        default=None,
        help="train from this `edgeseg pack` of CamVid instead of ../shared's PNG folder (no epoch decodes a PNG); "
        "calibration and scores still read the folder",
    )
    ap.add_argument(
        "--output-size",
        choices=("input", "half"),
        default="input",
        help="convert --output-size for the int8 model (half: the last resize stops at half the input; the "
        "retrained models ship with it, the models before them with input)",
    )
    ap.add_argument(
        "--val-every",
        type=int,
        default=1,
        help="train --val-every: its val scores are on frames it trains on (a check, not a measure), so a long "
        "schedule can score less often",
    )
    ap.add_argument("--skip-train", action="store_true", help="use the model already in --out")
    ap.add_argument("--ship", action="store_true", help="copy the int8 and Keras models into edgeseg/assets/")
    ap.add_argument(
        "--equalize",
        choices=("auto", "on", "off"),
        default="auto",
        help="convert --equalize: activation equalisation before int8 (auto: with and without, the closer kept)",
    )
    args = ap.parse_args()
    size, decoder, epochs = PRESETS[args.model]
    size, decoder, args.epochs = args.size or size, args.decoder or decoder, args.epochs or epochs
    teacher = args.teacher or TEACHERS.get(args.model)
    teacher = None if teacher in (None, "none") else Path(os.path.relpath(Path(teacher).resolve(), ROOT))
    args.out = args.out or ROOT / "runs" / f"camvid_{args.model}"
    data = args.shared / "data" / "camvid"
    weights = args.shared / "weights" / "mobilenet_v2_1.0_224_no_top_imagenet.weights.h5"
    if args.encoder == "deeplab_bn":
        weights = ROOT / "runs" / "weights" / "mobilenet_v2_deeplab_bn.weights.h5"
        if not weights.is_file():
            script = [sys.executable, "benchmarks/deeplab_encoder.py", "--shared", str(args.shared)]
            subprocess.run([*script, "--out", str(weights)], cwd=ROOT, check=True)
    peer = args.shared / "models" / "peers" / "deeplabv3_mnv2_pascal_quant.tflite"
    if not data.is_dir() or not weights.is_file():
        sys.exit(f"needs {data} and {weights} (../shared)")
    # paths as the recipe passes them, relative to the repository where they can be: the results files record
    # them, and this machine's absolute paths mean nothing elsewhere
    out = Path(os.path.relpath(args.out.resolve(), ROOT))
    data, weights, peer = (Path(os.path.relpath(p.resolve(), ROOT)) for p in (data, weights, peer))
    if args.train_data is not None and not args.train_data.is_file():
        sys.exit(f"--train-data {args.train_data}: no such pack (edgeseg pack {data} --out FILE makes one)")
    train_data = Path(os.path.relpath(args.train_data.resolve(), ROOT)) if args.train_data else data
    res = out / "results"
    t0 = time.time()
    if not args.skip_train:
        if (ROOT / out / "backup").exists():
            # the run's own data unless --train-data names other (train --resume takes a new --data silently)
            given = ["--data", train_data] if args.train_data else []
            edgeseg("train", *given, "--out", out, "--resume")
        elif not (ROOT / out / "model.keras").exists():
            edgeseg(
                "train",
                "--data",
                train_data,
                "--out",
                out,
                "--size",
                size,
                "--backbone",
                "mobilenet_v2",
                "--alpha",
                "1.0",
                "--decoder",
                decoder,
                "--weights",
                weights,
                "--epochs",
                args.epochs,
                "--batch-size",
                8,
                "--lr",
                "1e-3",
                "--class-weights",
                "median",
                "--train-splits",
                "train,val",
                "--keep",
                "last",
                "--loss",
                args.loss,
                "--scale-range",
                args.scale_range,
                "--val-every",
                args.val_every,
                *(["--teacher", teacher] if teacher else []),
            )
    train_s = time.time() - t0
    model = out / "model.keras"
    edgeseg("convert", model, "--json", res / "convert_float.json")
    edgeseg("convert", model, "--fp16", "--json", res / "convert_fp16.json")
    edgeseg(
        "convert",
        model,
        "--int8",
        "--calibration",
        data,
        "--num-calibration",
        200,
        "--report",
        res / "quant_report",
        "--edgetpu",
        "--json",
        res / "convert_int8.json",
        "--equalize",
        args.equalize,
        "--output-size",
        args.output_size,
    )
    f32, f16, i8 = out / "model_float32.tflite", out / "model_float16.tflite", out / "model_int8.tflite"
    for name, path in (("float32", f32), ("float16", f16), ("int8", i8)):
        edgeseg("eval", path, "--data", data, "--split", "val", "--json", res / f"eval_{name}.json")
    edgeseg("info", i8, "--json", res / "info_int8.json")
    # int8 first, then its float twins and the peer, interleaved in rounds: one run, so the ratios hold
    edgeseg(
        "bench",
        i8,
        f32,
        f16,
        peer,
        "--threads",
        "1,2",
        "--runs",
        50,
        "--warmup",
        5,
        "--frame-size",
        "480x360",
        "--json",
        res / "bench.json",
        "--markdown",
        res / "bench.md",
    )

    ev = {k: json.loads((ROOT / res / f"eval_{k}.json").read_text()) for k in ("float32", "float16", "int8")}
    bench = json.loads((ROOT / res / "bench.json").read_text())
    conv = json.loads((ROOT / res / "convert_int8.json").read_text())
    cfg = json.loads((ROOT / out / "config.json").read_text())
    history = (ROOT / out / "history.csv").read_text().strip().splitlines()
    p50 = {(Path(r["model"]).name, r["threads"]): r["invoke"]["p50_ms"] for r in bench["results"]}
    h, w = cfg["input_hw"]
    result = {
        "name": args.model,
        "dataset": "CamVid (SegNet 11-class), trained on train+val (468), last epoch kept; val scored at 480x360 "
        "with void ignored is trained on: it checks the conversions, it does not measure the model",
        "recipe": {
            k: cfg.get(k)
            for k in (
                "data",
                "train_splits",
                "keep",
                "loss",
                "augment",
                "teacher",
                "kd_weight",
                "kd_temperature",
                "kd_mode",
                "teacher_view",
                "weights",
                "epochs",
                "val_every",
                "backend",
            )
        }
        | {"output_size": args.output_size},
        "int8_equalized": conv.get("equalized"),
        "model": f"MobileNetV2-1.0, {cfg['decoder']} decoder, input {w}x{h} (WxH)",
        "gmacs": ev["int8"]["gmacs"],
        "params": ev["int8"]["params"],
        "epochs_run": len(history) - 1,
        "val_miou_float": ev["float32"]["miou"],
        "val_miou_int8": ev["int8"]["miou"],
        "val_miou_float16": ev["float16"]["miou"],
        "int8_minus_float": ev["int8"]["miou"] - ev["float32"]["miou"],
        "per_class_iou": {
            c: {"float": ev["float32"]["per_class_iou"][c], "int8": ev["int8"]["per_class_iou"][c]}
            for c in ev["int8"]["per_class_iou"]
        },
        "int8_fully_int8": conv["ops"]["fully_int8"],
        "int8_size_bytes": conv["size_bytes"],
        "int8_over_float_invoke_p50": {str(t): p50[(i8.name, t)] / p50[(f32.name, t)] for t in (1, 2)},
        "bench": [
            {k: r.get(k) for k in ("model", "threads", "gmacs", "params", "invoke", "end_to_end", "size_bytes")}
            for r in bench["results"]
        ],
        "environment": bench["environment"],
        "train_seconds_this_run": round(train_s, 1),
    }
    atomic_write_text(ROOT / res / "results.json", json.dumps(result, indent=2) + "\n")
    print(
        f"\nfloat val mIoU {100 * result['val_miou_float']:.2f}, int8 {100 * result['val_miou_int8']:.2f} "
        f"({100 * result['int8_minus_float']:+.2f}); int8/float invoke p50 "
        + ", ".join(f"{v:.2f} at {t} thread(s)" for t, v in result["int8_over_float_invoke_p50"].items())
        + f"; wrote {res / 'results.json'}"
    )
    if args.ship:
        assets = ROOT / "edgeseg" / "assets"
        for src, name in (
            (i8, f"camvid_{args.model}_int8.tflite"),
            (out / "spec.json", f"camvid_{args.model}.spec.json"),
        ):
            shutil.copyfile(ROOT / src, assets / name)
            print(f"shipped {assets / name}")
        ship_keras(ROOT / model, assets / f"camvid_{args.model}.keras")


def ship_keras(src: Path, dest: Path) -> None:
    """The float Keras model without its optimizer's state (a third of the size): what `train --init` starts
    from. Written to a temporary name, then renamed."""
    import keras

    model = keras.saving.load_model(src, compile=False)
    tmp = dest.with_name(dest.stem + ".partial.keras")
    model.save(tmp)
    os.replace(tmp, dest)
    print(f"shipped {dest} ({dest.stat().st_size / 1e6:.1f} MB, float, no optimizer state)")


if __name__ == "__main__":
    main()
