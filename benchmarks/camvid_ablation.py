"""The CamVid recipe's ablations, measured on a cross-sequence proxy: each change trained the same way and scored on
whole sequences the model never saw.

    python benchmarks/camvid_ablation.py --model nano --variant baseline [--epochs 30] [--hold-out 0006R0] [--seed 0]
    python benchmarks/camvid_ablation.py --model nano --variant baseline --int8   # and its int8 on the proxy
    python benchmarks/camvid_ablation.py --table      # the markdown table of every run so far
    python benchmarks/camvid_ablation.py --model nano --data camvid.segpack [--backend jax]   # from a pack

The protocol: train on CamVid train+val with the held-out sequence's frames removed (0006R0 by default: 101
frames of a sequence the test split does not share either), validate on that sequence, keep the last epoch (a
fixed schedule: no epoch is picked on the proxy), and report its mIoU. The val split is trained on here, so it
measures nothing. Each variant is the edgeseg train command a user would type, plus its extra options; results
go to benchmarks/results/camvid_ablation/<model>_<variant>[_<epochs>ep].json (the history, the cost of
training, the proxy's last and best mIoU) and the table to benchmarks/results/camvid_ablation/ablation.md.

--int8 also converts the trained model to full-integer int8, calibrated on its own training frames, and scores
it and its float32 TFLite on the held-out sequence (<run>_int8.json): the int8 cost measured on frames neither
the model nor its calibration saw. --int8 --equalize converts with convert's activation equalisation on
instead (<run>_int8_equalized.json). The `distil`
variant trains nano with small's proxy run as its teacher (run `--model small --variant baseline` first): a
teacher that never saw the held-out sequence either; `distil_v3` with recipe v3's small on the same proxy
(runs/v3/small_proxy, benchmarks/results/v3/small_proxy.md).
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import os
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "benchmarks")]
from camvid import PRESETS as SHIPPED  # noqa: E402

from edgeseg.datasets import open_dataset  # noqa: E402
from edgeseg.host import environment  # noqa: E402
from edgeseg.io import atomic_write_text  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results" / "camvid_ablation"
PRESETS = {name: (size, decoder) for name, (size, decoder, _epochs) in SHIPPED.items()}  # the shipped models'
DEEPLAB = "runs/weights/mobilenet_v2_deeplab.weights.h5"  # benchmarks/deeplab_encoder.py --no-calibrate-bn
DEEPLAB_BN = "runs/weights/mobilenet_v2_deeplab_bn.weights.h5"  # benchmarks/deeplab_encoder.py (batch norms fitted)
TEACHER = "runs/ablation/small_baseline/model.keras"  # --model small --variant baseline: the proxy's own small
TEACHER_V3 = "runs/v3/small_proxy/model.keras"  # recipe v3's small on the same proxy (benchmarks/results/v3/)
# variant -> (what it changes, train options as option-value pairs that replace the recipe's; "{deeplab}",
# "{deeplab_bn}", "{teacher}" and "{teacher_v3}" are the files above)
VARIANTS = {
    "baseline": ("the shipped recipe: ImageNet encoder, scale 0.75-1.5, median-frequency weights", []),
    "deeplab": ("encoder from Coral's DeepLabV3 (COCO + VOC), batch norms as folded", ["--weights", "{deeplab}"]),
    "deeplab_bn": ("encoder from Coral's DeepLabV3, batch norms fitted to CamVid", ["--weights", "{deeplab_bn}"]),
    "ohem": ("OHEM: the loss over the hard pixels only", ["--loss", "ohem"]),
    "scale_ohem": ("scale 0.5-2.0 and OHEM", ["--scale-range", "0.5,2.0", "--loss", "ohem"]),
    "scale": ("wider scale range 0.5-2.0", ["--scale-range", "0.5,2.0"]),
    "deeplab_scale": ("DeepLab encoder and scale 0.5-2.0", ["--weights", "{deeplab}", "--scale-range", "0.5,2.0"]),
    "no_weights": ("plain cross-entropy (no class weights)", ["--class-weights", "none"]),
    "aux": ("auxiliary head on the encoder's stride-16 feature, weight 0.4 (training only)", ["--aux-weight", "0.4"]),
    "lraspp": ("LR-ASPP head (MobileNetV3's) instead of the U-Net decoder, 0.30 GMACs", ["--decoder", "lraspp"]),
    "lraspp_288": (
        "LR-ASPP head, the budget spent on input: 288x224, 0.40 GMACs",
        ["--decoder", "lraspp", "--size", "288x224"],
    ),
    "ema": (
        "weights averaged (EMA, momentum 0.995 a step: about 4 epochs here), each epoch scored with the average",
        ["--ema", "0.995"],
    ),
    "dense_stem": (
        "MobileNetV2's stride-2/4 stem as two dense strided 3x3 convolutions fitted to its features, 0.345 GMACs",
        ["--backbone", "mobilenet_v2_dense_stem"],
    ),
    "distil": (
        "distilled from small's proxy run (384x288, same frames), kd weight 0.5, temperature 2",
        ["--teacher", "{teacher}", "--teacher-view", "student"],
    ),
    "distil_v3": (
        "distilled from recipe v3's small proxy run (480x352, 200 epochs, 48.97), kd weight 0.5, temperature 2",
        ["--teacher", "{teacher_v3}", "--teacher-view", "student"],
    ),
    "distil_v3_frame": (
        "distilled from recipe v3's small proxy run, the teacher seeing each crop from the full-resolution frame "
        "at its 480x352 (--teacher-view frame), kd weight 0.5, temperature 2",
        ["--teacher", "{teacher_v3}", "--teacher-view", "frame"],
    ),
    "distil_v3_frame_aux": (
        "distil_v3_frame and the auxiliary head (weight 0.4, training only): do the two gains add?",
        ["--teacher", "{teacher_v3}", "--teacher-view", "frame", "--aux-weight", "0.4"],
    ),
    "fine_distil_v3_frame": (
        "nano_fine: a third decoder stage at stride 4 (logits at 1/4 instead of 1/8), 0.399 GMACs, distilled as "
        "distil_v3_frame",
        ["--decoder", "nano_fine", "--teacher", "{teacher_v3}", "--teacher-view", "frame"],
    ),
    "cwd_v3_frame": (
        "channel-wise distillation (--kd-mode channel: each class's distribution over the pixels, Shu et al. 2021; "
        "temperature 4, the authors' code's default, and weight 3 against the labels' 1: --kd-weight 0.75) from "
        "recipe v3's small proxy run seeing the frame",
        [
            *("--teacher", "{teacher_v3}", "--teacher-view", "frame", "--kd-mode", "channel"),
            *("--kd-temperature", "4", "--kd-weight", "0.75"),
        ],
    ),
    "dense_stem_distil_v3": (
        "the dense stem (0.345 GMACs), distilled from recipe v3's small proxy run seeing the frame: does the "
        "teacher win back what the stem costs? (issue 37)",
        ["--backbone", "mobilenet_v2_dense_stem", "--teacher", "{teacher_v3}", "--teacher-view", "frame"],
    ),
}


def run(args: list, log: Path) -> None:
    args = [str(a) for a in args]
    print(f"$ edgeseg {shlex.join(args)}", flush=True)
    with log.open("a") as f:
        proc = subprocess.run([sys.executable, "-m", "edgeseg", *args], cwd=ROOT, stdout=f, stderr=subprocess.STDOUT)
    if proc.returncode != 0:
        sys.exit(f"step failed (exit {proc.returncode}): see {log}")


def history(path: Path) -> list[dict]:
    with path.open() as f:
        return [{k: float(v) for k, v in row.items() if v not in ("", None)} for row in csv.DictReader(f)]


def table() -> str:
    rows = []
    for p in sorted(RESULTS.glob("*.json")):
        if p.stem.endswith(("_int8", "_int8_equalized")):
            continue
        r = json.loads(p.read_text())
        scored = [h for h in r["history"] if not math.isnan(h.get("val_miou", math.nan))]  # --val-every: nan
        tail = [h["val_miou"] for h in scored[-5:]]  # steadier than one epoch's score
        minutes = r["train_minutes"]
        stretch = " (last stretch)" if r.get("resumed") else ""  # a resumed run's minutes are its last stretch's
        int8, even = (_int8_cell(RESULTS / f"{p.stem}{tag}.json") for tag in ("_int8", "_int8_equalized"))
        rows.append(
            f"| {r['model']} | {r['variant']} | {r['what']} | {r['epochs']} | {r.get('seed', 0)} | "
            f"{'not measured' if minutes is None else f'{minutes:.0f}'}{stretch} | "
            f"{100 * r['proxy_last']:.2f} | {100 * sum(tail) / len(tail):.2f} | "
            f"{100 * r['proxy_best']:.2f} (epoch {r['proxy_best_epoch']}) | {int8} | {even} |"
        )
    head = (
        "| model | variant | change | epochs | seed | train min | proxy mIoU, last epoch | mean of the last 5 "
        "| proxy best | int8 on the proxy (minus its float) | int8 with convert --equalize on |\n"
        "| --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n"
    )
    return head + "\n".join(rows) + "\n"


def _int8_cell(path: Path) -> str:
    """One int8 result as the table shows it: its mIoU and (in brackets) int8 minus float."""
    if not path.is_file():
        return "not measured"
    i = json.loads(path.read_text())
    return f"{100 * i['miou_int8']:.2f} ({100 * i['int8_minus_float']:+.2f})"


def proxy_dataset(camvid: Path, hold_out: str, dest: Path) -> int:
    """A CamVid-layout folder of links: train = CamVid train+val without the held-out sequence, val = its frames
    (what the model trained on and what it was scored on, so that convert and eval see the same split). The
    frames are those edgeseg's own reader lists for each split, as `train --hold-out` sees them."""
    shutil.rmtree(dest, ignore_errors=True)
    lists: dict[str, list[str]] = {"train": [], "val": []}
    for split in ("train", "val"):
        for sample in open_dataset(camvid, split, "camvid").samples:
            to = "val" if sample.image.name.startswith(hold_out) else "train"
            names = []
            for folder, src in ((to, sample.image), (f"{to}annot", sample.mask)):
                (dest / folder).mkdir(parents=True, exist_ok=True)
                (dest / folder / src.name).symlink_to(src.resolve())
                names.append(f"{folder}/{src.name}")
            lists[to].append(" ".join(names))
    for name, lines in lists.items():
        (dest / f"{name}.txt").write_text("\n".join(lines) + "\n")
    for extra in camvid.glob("*.png"):  # the palette
        (dest / extra.name).symlink_to(extra.resolve())
    return len(lists["val"])


def int8_on_proxy(model: Path, data: Path, hold_out: str, log: Path, env: dict, equalize: bool = False) -> dict:
    """Convert the proxy model to int8 (calibrated on its training frames; activations equalised with
    `equalize`) and float32 TFLite, and score both on the held-out sequence (`env`:
    edgeseg.host.environment() of this machine)."""
    proxy = model.parent / "proxy_data"
    frames = proxy_dataset(ROOT / data, hold_out, ROOT / proxy)
    converted = model.parent / "convert_int8.json"
    steps = [
        ["convert", model, "--int8", "--calibration", proxy, "--num-calibration", 200, "--json", converted]
        + (["--equalize", "on"] if equalize else []),
        ["convert", model],
        *(
            ["eval", model.parent / f"model_{kind}.tflite", "--data", proxy, "--split", "val"]
            + ["--json", model.parent / f"eval_proxy_{kind}.json"]
            for kind in ("float32", "int8")
        ),
    ]
    for step in steps:
        run(step, log)
    ev = {k: json.loads((ROOT / model.parent / f"eval_proxy_{k}.json").read_text()) for k in ("float32", "int8")}
    float_iou, int8_iou = ev["float32"]["per_class_iou"], ev["int8"]["per_class_iou"]
    return {
        "what": f"int8 against float on frames the model never saw: {model} ({hold_out} held out) converted to "
        f"int8, calibrated on its training frames, and scored on {hold_out} at the labels' resolution",
        "steps": [
            f"PROXY = {proxy}: CamVid train+val without {hold_out} as train/, the {frames} {hold_out} frames as val/ "
            "(links into the CamVid folder)",
            *("edgeseg " + shlex.join(str(a) for a in step) for step in steps),
        ],
        "frames": frames,
        "equalized": json.loads((ROOT / converted).read_text())["equalized"],
        "environment": {k: v for k, v in env.items() if k in ("cpu", "machine", "cores", "cpu_int8_dot")},
        "gmacs": ev["int8"].get("gmacs"),
        "miou_float32": ev["float32"]["miou"],
        "miou_int8": ev["int8"]["miou"],
        "int8_minus_float": ev["int8"]["miou"] - ev["float32"]["miou"],
        "per_class_iou": {c: {"float": float_iou[c], "int8": int8_iou[c]} for c in float_iou},
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", choices=sorted(PRESETS), default="nano")
    ap.add_argument("--variant", choices=sorted(VARIANTS), default="baseline")
    ap.add_argument("--epochs", type=int, default=30)
    ap.add_argument("--hold-out", default="0006R0")
    ap.add_argument("--seed", type=int, default=0, help="the run's seed: another seed of a row measures its noise")
    ap.add_argument("--shared", type=Path, default=ROOT.parent / "shared")
    ap.add_argument("--data", type=Path, help="CamVid as a folder or an `edgeseg pack` file (default: ../shared's)")
    ap.add_argument("--backend", default="tensorflow", help="Keras backend to train on (the run's name says which)")
    ap.add_argument("--int8", action="store_true", help="also score the model's int8 conversion on the proxy")
    ap.add_argument("--equalize", action="store_true", help="with --int8: convert with activation equalisation")
    ap.add_argument("--table", action="store_true", help="only write the table of the runs so far")
    args = ap.parse_args()
    if args.table:
        atomic_write_text(RESULTS / "ablation.md", table())
        print(table())
        return
    size, decoder = PRESETS[args.model]
    data = Path(os.path.relpath((args.data or args.shared / "data" / "camvid").resolve(), ROOT))
    packed = data.is_file()
    imagenet = Path(os.path.relpath((args.shared / "weights").resolve(), ROOT)) / (
        "mobilenet_v2_1.0_224_no_top_imagenet.weights.h5"
    )
    what, extra = VARIANTS[args.variant]
    extra = [
        e.format(imagenet=imagenet, deeplab=DEEPLAB, deeplab_bn=DEEPLAB_BN, teacher=TEACHER, teacher_v3=TEACHER_V3)
        for e in extra
    ]
    for teacher in (TEACHER, TEACHER_V3):
        if teacher in extra and (args.model != "nano" or not (ROOT / teacher).is_file()):
            sys.exit(f"--variant {args.variant} trains nano from {teacher}: train that small on the proxy first")
    for weights_file, flags in ((DEEPLAB, ["--no-calibrate-bn"]), (DEEPLAB_BN, [])):
        if weights_file in extra and not (ROOT / weights_file).is_file():
            script = [sys.executable, "benchmarks/deeplab_encoder.py", "--shared", str(args.shared)]
            subprocess.run([*script, "--out", weights_file, *flags], cwd=ROOT, check=True)
    run_name = f"{args.model}_{args.variant}" + ("" if args.epochs == 30 else f"_{args.epochs}ep")
    run_name += "" if args.seed == 0 else f"_seed{args.seed}"
    run_name += ("_pack" if packed else "") + ("" if args.backend == "tensorflow" else f"_{args.backend}")
    if args.int8 and packed:
        sys.exit("--int8 scores on a CamVid folder: give --data a folder (or leave it out)")
    out = Path("runs") / "ablation" / run_name
    (ROOT / out).mkdir(parents=True, exist_ok=True)
    log = ROOT / out / "log.txt"
    recipe = {"--size": size, "--decoder": decoder, "--epochs": args.epochs, "--batch-size": 8, "--lr": "1e-3"}
    recipe.update({"--class-weights": "median", "--weights": imagenet, "--seed": args.seed})
    recipe.update(zip(extra[::2], extra[1::2], strict=True))  # a variant's option-value pairs replace the recipe's
    options = ["--data", data, "--out", out, *(a for pair in recipe.items() for a in pair)]
    options += ["--train-splits", "train,val", "--hold-out", args.hold_out, "--keep", "last"]
    options += [] if args.backend == "tensorflow" else ["--backend", args.backend]
    t0 = time.time()
    resume = (ROOT / out / "backup").exists()
    # a finished run is not trained again: its training time (and the machine that took it) stay as first measured
    env = environment()
    machine = {k: v for k, v in env.items() if k in ("cpu", "machine", "cores")}
    minutes, resumed = None, resume
    if resume:  # train --resume takes the run's saved settings and refuses options that would change them
        run(["train", "--data", data, "--out", out, "--resume"], log)
        minutes = (time.time() - t0) / 60
    elif not (ROOT / out / "model.keras").exists():
        run(["train", *options], log)
        minutes = (time.time() - t0) / 60
    elif (RESULTS / f"{run_name}.json").is_file():
        before = json.loads((RESULTS / f"{run_name}.json").read_text())
        minutes, machine, resumed = before["train_minutes"], before.get("environment"), before.get("resumed", False)
    else:  # trained, never scored here: train writes config.json first and history.csv after each epoch
        minutes = ((ROOT / out / "history.csv").stat().st_mtime - (ROOT / out / "config.json").stat().st_mtime) / 60
    hist = history(ROOT / out / "history.csv")
    best = max(hist, key=lambda r: -1 if math.isnan(r.get("val_miou", math.nan)) else r["val_miou"])
    result = {
        "model": args.model,
        "variant": args.variant,
        "what": what
        + (", from the default pack (WebP q85)" if packed else "")
        + ("" if args.backend == "tensorflow" else f", on {args.backend}"),
        "command": "edgeseg train " + shlex.join(str(a) for a in options),
        "epochs": len(hist),
        "seed": args.seed,
        "train_minutes": minutes,
        "resumed": resumed,  # then train_minutes is the last stretch's alone
        "proxy": f"CamVid {args.hold_out} (held out of train+val)",
        "environment": machine,  # where it trained
        "proxy_last": hist[-1]["val_miou"],
        "proxy_best": best["val_miou"],
        "proxy_best_epoch": int(best["epoch"]) + 1,
        "history": hist,
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    atomic_write_text(RESULTS / f"{run_name}.json", json.dumps(result, indent=2) + "\n")
    last, top = 100 * result["proxy_last"], 100 * best["val_miou"]
    print(f"{args.model} {args.variant}: proxy mIoU last {last:.2f}, best {top:.2f}")
    if args.int8:
        q = {"command": "python benchmarks/camvid_ablation.py " + shlex.join(sys.argv[1:])}
        q |= int8_on_proxy(out / "model.keras", data, args.hold_out, log, env, equalize=args.equalize)
        tag = "_int8_equalized" if args.equalize else "_int8"
        atomic_write_text(RESULTS / f"{run_name}{tag}.json", json.dumps(q, indent=2) + "\n")
        print(f"int8 on the proxy {100 * q['miou_int8']:.2f}, float {100 * q['miou_float32']:.2f}")
    atomic_write_text(RESULTS / "ablation.md", table())


if __name__ == "__main__":
    main()
