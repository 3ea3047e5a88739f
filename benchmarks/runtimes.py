"""One model in every format and runtime edgeseg has, timed in one interleaved run, mIoU beside each.

    python benchmarks/runtimes.py [--model nano|small|PATH.keras] [--shared ../shared] [--threads 1,2]
                                  [--runs 50] [--out benchmarks/results/runtimes]

For each model (default: the shipped nano and small Keras models), converts it to every target whose tools are
installed: TFLite float32 and int8 (LiteRT), ONNX float32 and int8 (ONNX Runtime), OpenVINO float32 and int8
(NNCF), ncnn float32 and fp16 (pnnx); a target whose tools are missing is left out and said. Then one `edgeseg
bench` of all of them, interleaved in rounds (one run, so the ratios hold), at each thread count, end to end at
480x360, with mIoU on CamVid val (frames the shipped models trained on: it checks each conversion against the
others, it does not measure the model). Writes <out>/<model>.json and .md, and prints which is fastest. Each
step is the edgeseg command a user would type; the conversions are kept in runs/runtimes/<model>/.

Speed depends on the CPU class (int8 dot products: VNNI/AMX on x86, dotprod on Arm): the tables name the CPU.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from edgeseg.host import installed_version  # noqa: E402

# (format, precision flags, file name, what it needs installed)
TARGETS = (
    ("tflite", [], "float32.tflite", ()),
    ("tflite", ["--int8"], "int8.tflite", ()),
    ("onnx", [], "float32.onnx", ("onnxruntime", "tf2onnx")),
    ("onnx", ["--int8"], "int8.onnx", ("onnxruntime", "tf2onnx")),
    ("openvino", [], "openvino.xml", ("openvino", "tf2onnx")),
    ("openvino", ["--int8"], "openvino_int8.xml", ("openvino", "nncf", "tf2onnx")),
    ("ncnn", [], "ncnn.param", ("ncnn", "onnxoptimizer", "tf2onnx")),
    ("ncnn", ["--fp16"], "ncnn_fp16.param", ("ncnn", "onnxoptimizer", "tf2onnx")),
)


def rel(a) -> str:
    """A path as the results files should record it: relative to the repository (this machine's absolute
    paths mean nothing elsewhere); anything else as it is."""
    if isinstance(a, Path) and a.is_absolute():
        return os.path.relpath(a, ROOT)
    return str(a)


def edgeseg(*args) -> subprocess.CompletedProcess:
    args = [rel(a) for a in args]
    print(f"\n$ edgeseg {shlex.join(args)}", flush=True)
    return subprocess.run([sys.executable, "-m", "edgeseg", *args], cwd=ROOT)


def missing(needs: tuple[str, ...], fmt: str) -> list[str]:
    gone = [n for n in needs if installed_version(n) is None]
    if fmt == "ncnn":
        try:
            from edgeseg.converters.ncnn import pnnx_binary

            pnnx_binary()
        except Exception:
            gone.append("pnnx")
    return gone


def fresh_conversions(folder: Path, keras: Path) -> None:
    """Keep the conversions cached in `folder` only while they were made from this Keras file (by its SHA-256,
    in folder/source.sha256): a retrained model must not be benched through its predecessor's conversions."""
    digest = hashlib.sha256(keras.read_bytes()).hexdigest()
    stamp = folder / "source.sha256"
    if folder.is_dir() and (not stamp.is_file() or stamp.read_text().strip() != digest):
        print(f"{folder}: made from another model than {keras.name}; converting again")
        shutil.rmtree(folder)
    folder.mkdir(parents=True, exist_ok=True)
    stamp.write_text(digest + "\n")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", action="append", help="nano, small or a .keras path (repeat; default: nano, small)")
    ap.add_argument("--shared", type=Path, default=ROOT.parent / "shared")
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--runs", type=int, default=50)
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "runtimes")
    args = ap.parse_args()
    data = args.shared / "data" / "camvid"
    if not data.is_dir():
        sys.exit(f"no CamVid at {data}: give --shared")
    from edgeseg.assets import shipped_keras

    args.out.mkdir(parents=True, exist_ok=True)
    for name in args.model or ["nano", "small"]:
        keras = shipped_keras(name) if name in ("nano", "small") else Path(name)
        if keras is None or not keras.is_file():
            print(f"skipped {name}: no Keras model ({keras or 'not shipped in this install'})")
            continue
        stem = name if name in ("nano", "small") else keras.stem
        folder = ROOT / "runs" / "runtimes" / stem
        fresh_conversions(folder, keras)
        models, skipped = [], {}
        for fmt, flags, file, needs in TARGETS:
            out = folder / file
            gone = missing(needs, fmt)
            if gone:
                skipped[file] = f"not installed: {', '.join(gone)}"
                continue
            if not out.is_file():
                cal = ["--calibration", data, "--num-calibration", 200] if "--int8" in flags else []
                r = edgeseg("convert", keras, "--to", fmt, *flags, *cal, "--out", out)
                if r.returncode != 0:
                    skipped[file] = f"convert failed (exit {r.returncode})"
                    continue
            models.append(out)
        res_json, res_md = args.out / f"{stem}.json", args.out / f"{stem}.md"
        r = edgeseg(
            "bench",
            *models,
            "--threads",
            args.threads,
            "--runs",
            args.runs,
            "--warmup",
            5,
            "--frame-size",
            "480x360",
            "--data",
            data,
            "--split",
            "val",
            "--json",
            res_json,
            "--markdown",
            res_md,
        )
        if r.returncode != 0:
            sys.exit(f"bench failed (exit {r.returncode})")
        report = json.loads(res_json.read_text())
        report["skipped"] = skipped
        report["source_model"] = rel(keras)
        res_json.write_text(json.dumps(report, indent=2) + "\n")
        if skipped:
            with res_md.open("a") as f:
                f.write("\nLeft out: " + "; ".join(f"{k} ({v})" for k, v in skipped.items()) + "\n")
        print(f"wrote {res_json} and {res_md}" + (f"; left out: {skipped}" if skipped else ""))


if __name__ == "__main__":
    main()
