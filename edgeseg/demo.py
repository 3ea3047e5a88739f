"""The demo: the whole pipeline on the built-in synthetic data, each step a real `edgeseg` command.

synth -> train -> convert (float32 and int8) -> eval (Keras, float, int8) -> bench (float, int8) -> run on a
synthetic video, writing an overlay video. Each step runs as its own process, exactly as a user would type
it, so the device steps (eval, bench and run on .tflite) run without TensorFlow loaded. The end is a table
of float vs int8 accuracy and latency, also written to summary.json and summary.md.
"""

from __future__ import annotations

import json
import shlex
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from edgeseg.errors import EdgesegError
from edgeseg.io import atomic_write_text

DEMO_INPUT = "128x96"  # model input WIDTHxHEIGHT; scenes are 160x120, so the runtime resizes (non-square)
BENCH_THREADS = 2


def _step(args: list[str], echo: Callable[[str], None]) -> None:
    echo(f"\n$ edgeseg {shlex.join(args)}")
    proc = subprocess.run([sys.executable, "-m", "edgeseg", *args])
    if proc.returncode != 0:
        raise EdgesegError(f"demo step failed (exit {proc.returncode}): edgeseg {shlex.join(args)}")


def run_demo(
    out: Path, epochs: int = 12, count: int = 400, overwrite: bool = False, echo: Callable[[str], None] = print
) -> dict:
    """The whole pipeline on synthetic data: write a dataset and a clip, train, convert to float32 and int8, score
    Keras vs float vs int8, benchmark both .tflite files, run the camera loop on the clip, write the summary.

    Args:
        out: the demo's folder (data/, run/, results/, summary.md).
        epochs: training epochs.
        count: synthetic scenes.
        overwrite: replace an earlier demo in `out` (else continue from what is there).
        echo: where progress lines go.

    Returns:
        the summary's figures, as written to results/summary.json.
    """
    out = Path(out)
    try:  # the demo trains and converts: say so before writing anything on an install without TensorFlow
        import importlib.util

        if importlib.util.find_spec("tensorflow") is None:
            raise ImportError
    except (ImportError, ValueError):
        raise EdgesegError(
            "the demo trains and converts a model, which needs TensorFlow: pip install 'edgeseg[train]' "
            "(on a device, try: edgeseg run nano --source synthetic --no-show)"
        ) from None
    data, run, res = out / "data", out / "run", out / "results"
    video = out / "synthetic.mp4"
    t0 = time.perf_counter()
    if run.exists():
        if not overwrite or not (out / "data" / "classes.json").exists():
            raise EdgesegError(f"{out} holds an earlier demo: pass --overwrite, or give another --out")
        for sub in (data, run, res):
            shutil.rmtree(sub, ignore_errors=True)
    _step(["synth", str(data), "--count", str(count), "--video", str(video), "--frames", "150"], echo)
    _step(
        [
            "train",
            "--data",
            str(data),
            "--out",
            str(run),
            "--size",
            DEMO_INPUT,
            "--alpha",
            "0.35",
            "--decoder",
            "small",
            "--epochs",
            str(epochs),
            "--batch-size",
            "16",
            "--lr",
            "3e-3",
        ],
        echo,
    )
    model = run / "model.keras"
    _step(["convert", str(model), "--json", str(res / "convert_float.json")], echo)
    _step(
        [
            "convert",
            str(model),
            "--int8",
            "--calibration",
            str(data),
            "--num-calibration",
            "200",
            "--json",
            str(res / "convert_int8.json"),
        ],
        echo,
    )
    f32, i8 = run / "model_float32.tflite", run / "model_int8.tflite"
    for name, path in (("keras", model), ("float32", f32), ("int8", i8)):
        _step(["eval", str(path), "--data", str(data), "--json", str(res / f"eval_{name}.json")], echo)
    _step(
        [
            "bench",
            str(f32),
            str(i8),
            "--threads",
            str(BENCH_THREADS),
            "--runs",
            "300",
            "--frame-size",
            "160x120",
            "--json",
            str(res / "bench.json"),
            "--markdown",
            str(res / "bench.md"),
        ],
        echo,
    )
    picture = side_by_side(i8, data, out / "side_by_side.png")
    echo(f"wrote {picture}: input, truth and the int8 model's prediction for 3 val scenes")
    overlay = out / "overlay.mp4"
    _step(
        [
            "run",
            str(i8),
            "--source",
            str(video),
            "--no-show",
            "--record",
            str(overlay),
            "--stats",
            str(res / "run_int8.json"),
        ],
        echo,
    )

    def load(name: str) -> dict:
        return json.loads((res / f"{name}.json").read_text())

    ev = {k: load(f"eval_{k}") for k in ("keras", "float32", "int8")}
    bench = load("bench")
    be = dict(zip(("float32", "int8"), bench["results"], strict=True))
    loop = load("run_int8")
    conv8 = load("convert_int8")
    summary = {
        "miou": {k: v["miou"] for k, v in ev.items()},
        "per_class_iou": {k: v["per_class_iou"] for k, v in ev.items()},
        "invoke_p50_ms": {k: v["invoke"]["p50_ms"] for k, v in be.items()},
        "invoke_p90_ms": {k: v["invoke"]["p90_ms"] for k, v in be.items()},
        "end_to_end_p50_ms": {k: v["end_to_end"]["p50_ms"] for k, v in be.items()},
        "size_bytes": {k: v["size_bytes"] for k, v in be.items()},
        "gmacs": be["int8"].get("gmacs"),
        "params": be["int8"].get("params"),
        "cpu": bench["environment"].get("cpu"),
        "cpu_int8_dot": bench["environment"].get("cpu_int8_dot"),
        "int8_over_float_invoke_p50": be["int8"]["invoke"]["p50_ms"] / be["float32"]["invoke"]["p50_ms"],
        "int8_fully_quantised": conv8["ops"]["fully_int8"],
        "int8_argmax_agreement": conv8["argmax_agreement"],
        "loop": {"frames": loop["frames"], "fps": loop["fps"]},
        "threads": BENCH_THREADS,
        "runtime": f"{be['int8']['runtime']} {be['int8'].get('runtime_version', '')}",
        "seconds": round(time.perf_counter() - t0, 1),
        "files": {
            "model": str(model),
            "float32": str(f32),
            "int8": str(i8),
            "overlay": str(overlay),
            "picture": str(picture),
            "results": str(res),
        },
    }
    table = _table(summary)
    atomic_write_text(out / "summary.json", json.dumps(summary, indent=2) + "\n")
    atomic_write_text(out / "summary.md", table + "\n")
    echo("\n" + table)
    echo(f"\nwrote {out / 'summary.md'}, {out / 'summary.json'}; overlay video {overlay}")
    return summary


def side_by_side(model: Path, data: Path, out: Path, frames: int = 3, scale: int = 2) -> Path:
    """A picture of what the model does: for the first `frames` scenes of the val split, the input, the true
    mask and the model's mask side by side, each `scale` times its size (a 160x120 scene: 960x240 a row).

    Args:
        model: the model to run (any edgeseg reads).
        data: a dataset with a val split.
        out: the PNG to write.
        frames: how many scenes, one row each.
        scale: how many times each panel's size.
    """
    import cv2
    import numpy as np

    from edgeseg.datasets import open_dataset
    from edgeseg.io import write_image
    from edgeseg.models import open_model
    from edgeseg.overlay import colourise, palette_bgr

    ds = open_dataset(data, "val")
    m = open_model(model)
    lut = palette_bgr(m.spec)
    rows = []
    for i in range(min(frames, len(ds))):
        img, truth = ds.read(i)
        pred = m.segment(img)
        if ds.ignore_index is not None:  # unlabelled pixels drawn as the background
            truth = np.where(truth == ds.ignore_index, 0, truth).astype(np.uint8)
        panels = [img, colourise(truth, lut), colourise(pred.astype(np.uint8), lut)]
        h, w = img.shape[:2]
        big = [cv2.resize(p, (w * scale, h * scale), interpolation=cv2.INTER_NEAREST) for p in panels]
        for p, label in zip(big, ("input", "truth", "prediction (int8)"), strict=True):
            cv2.putText(p, label, (6, 18), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (255, 255, 255), 1, cv2.LINE_AA)
        rows.append(np.hstack(big))
    return write_image(out, np.vstack(rows))


def _table(s: dict) -> str:
    def pct(v):
        return "n/a" if v is None else f"{100 * v:.2f}"

    rows = [
        "| model | val mIoU (%) | invoke p50 (ms) | invoke p90 (ms) | end-to-end p50 (ms) | size (MB) |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
        f"| Keras (float32, TensorFlow) | {pct(s['miou']['keras'])} | | | | |",
    ]
    for k in ("float32", "int8"):
        rows.append(
            f"| TFLite {k} | {pct(s['miou'][k])} | {s['invoke_p50_ms'][k]:.3f} | {s['invoke_p90_ms'][k]:.3f} "
            f"| {s['end_to_end_p50_ms'][k]:.3f} | {s['size_bytes'][k] / 1e6:.2f} |"
        )
    rows.append("")
    dot = s.get("cpu_int8_dot")
    gmacs = "n/a" if s.get("gmacs") is None else f"{s['gmacs']:.3f}"
    rows.append(
        f"Cost per frame (the same on every machine): {gmacs} GMACs, {s.get('params') or 0:,} parameters. "
        f"Times on {s['cpu']} (int8 dot product: {', '.join(dot) if dot else 'none'})."
    )
    rows.append(
        f"int8 / float32 invoke p50: {s['int8_over_float_invoke_p50']:.2f} ({s['runtime']}, "
        f"{s['threads']} threads); int8 graph fully int8: {s['int8_fully_quantised']}; "
        f"int8 vs Keras argmax agreement {pct(s['int8_argmax_agreement'])}%"
    )
    rows.append(
        f"camera loop on the synthetic video: {s['loop']['frames']} frames at {s['loop']['fps']:.1f} FPS "
        "(the pipelined loop: capture and preprocessing, inference, and drawing on three threads; video "
        "decode and overlay included)"
    )
    rows.append(
        "Data: edgeseg's synthetic scenes (generated, not real images): these figures test the pipeline, "
        "not accuracy on real scenes."
    )
    return "\n".join(rows)
