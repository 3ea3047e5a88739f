"""The quantisation report: where int8 loses accuracy against float, and what to do about it.

On a dataset: float vs int8 mIoU and per-class IoU with deltas, the share of pixels where they disagree, a
few disagreement maps (the frames where they disagree most), the calibration set's class coverage against
the dataset's, and, given the Keras model, the layers that lose most (TensorFlow's QuantizationDebugger:
per-layer RMSE of the int8 result relative to its quantisation step). The page is markdown with PNGs beside
it, readable without edgeseg.
"""

from __future__ import annotations

import csv
import io
import itertools
import json
from pathlib import Path

import cv2
import numpy as np

from edgeseg.io import atomic_write_text, write_image
from edgeseg.metrics import ConfusionMatrix, class_pixels
from edgeseg.overlay import colourise, draw_text_box, palette_bgr

WORST_IMAGES = 4


def compare(float_model, int8_model, ds, limit: int | None = None, progress=None) -> dict:
    """Float vs int8 on a dataset: mIoU, pixel accuracy and per-class IoU of each, their deltas, the share of pixels
    where they disagree, and the frames where they disagree most.

    Args:
        float_model: the float reference (a predictor).
        int8_model: the int8 predictor.
        ds: the dataset split, with masks.
        limit: only the first N images.
        progress: called with (done, total).
    """
    from edgeseg.evaluate import check_classes

    check_classes(float_model, ds, "the float model")
    check_classes(int8_model, ds, "the int8 model")
    n = len(ds) if limit is None else min(limit, len(ds))
    cm_f = ConfusionMatrix(ds.num_classes, ds.ignore_index)
    cm_q = ConfusionMatrix(ds.num_classes, ds.ignore_index)
    disagree = total = 0
    per_image = []
    for i in range(n):
        frame, target = ds.read(i)
        f, q = float_model.segment(frame), int8_model.segment(frame)
        cm_f.update(target, f)
        cm_q.update(target, q)
        d = int((f != q).sum())
        disagree, total = disagree + d, total + f.size
        per_image.append((d / f.size, i))
        if progress:
            progress(i + 1, n)
    sf, sq = cm_f.summary(ds.classes), cm_q.summary(ds.classes)
    per_class = {}
    for c in ds.classes:
        a, b = sf["per_class_iou"][c], sq["per_class_iou"][c]
        per_class[c] = {"float": a, "int8": b, "delta": None if a is None or b is None else b - a}
    return {
        "images": n,
        "float_miou": sf["miou"],
        "int8_miou": sq["miou"],
        "delta_miou": sq["miou"] - sf["miou"],
        "float_pixel_accuracy": sf["pixel_accuracy"],
        "int8_pixel_accuracy": sq["pixel_accuracy"],
        "pixel_disagreement": disagree / total if total else None,
        "per_class": per_class,
        "worst": [i for _, i in sorted(per_image, reverse=True)[:WORST_IMAGES]],
    }


def disagreement_images(float_model, int8_model, ds, indices: list[int], folder: Path) -> list[Path]:
    """frame | label | float | int8, with the pixels where float and int8 disagree outlined in magenta.

    Args:
        float_model: the float predictor.
        int8_model: the int8 predictor.
        ds: the dataset the frames come from.
        indices: which of its frames.
        folder: where the PNGs go.
    """
    lut = palette_bgr(float_model.spec)
    out = []
    for i in indices:
        frame, target = ds.read(i)
        f, q = float_model.segment(frame), int8_model.segment(frame)
        lab = colourise(np.where(target < float_model.spec.num_classes, target, 0).astype(np.uint8), lut)
        diff = (f != q).astype(np.uint8) * 255
        edges = cv2.dilate(diff, np.ones((3, 3), np.uint8))
        marked = frame.copy()
        marked[edges > 0] = (255, 0, 255)
        panels = [marked, lab, colourise(f, lut), colourise(q, lut)]
        for p, title in zip(panels, ("frame (magenta: float != int8)", "label", "float", "int8"), strict=True):
            draw_text_box(p, [title])
        grid = np.vstack([np.hstack(panels[:2]), np.hstack(panels[2:])])
        path = Path(folder) / f"disagreement_{i:04d}.png"
        write_image(path, grid)
        out.append(path)
    return out


def layer_statistics(keras_seg, frames: list[np.ndarray], top: int = 10, equalize: bool = False) -> list[dict]:
    """Per-layer error of int8 against float (TensorFlow's QuantizationDebugger), worst first.

    Args:
        keras_seg: the Keras model's predictor.
        frames: BGR frames to calibrate and compare on.
        top: how many of the worst layers to return.
        equalize: quantise the model as `convert --int8 --equalize` does (activations equalised on the frames).
    """
    from contextlib import nullcontext

    import tensorflow as tf

    from edgeseg.converters.equalize import equalized
    from edgeseg.converters.tflite import int8_settings, keras_converter
    from edgeseg.preprocess import preprocess
    from edgeseg.quiet import libraries_quiet
    from edgeseg.tensors import FLOAT_INPUT

    conv = keras_converter(keras_seg.model)
    tensors = [preprocess(f, keras_seg.spec, FLOAT_INPUT)[0] for f in frames]

    def dataset():
        for t in tensors:
            yield [t]

    int8_settings(conv, dataset, "float32")  # the debugger compares float with int8 inside a float-I/O model
    # the debugger converts and runs in here: the converter's notes and tf.lite.Interpreter's deprecation are noise
    with equalized(keras_seg.model, tensors) if equalize else nullcontext(), libraries_quiet():
        debugger = tf.lite.experimental.QuantizationDebugger(converter=conv, debug_dataset=dataset)
        debugger.run()
    buf = io.StringIO()
    debugger.layer_statistics_dump(buf)
    rows = []
    for r in csv.DictReader(io.StringIO(buf.getvalue())):
        try:
            scale = float(r["scale"])
            rmse = float(r["mean_squared_error"]) ** 0.5
        except (KeyError, ValueError):
            continue
        rows.append(
            {
                "op": r.get("op_name"),
                "tensor": r.get("tensor_name"),
                "layer": _layer(r.get("tensor_name") or ""),
                "rmse": rmse,
                "scale": scale,
                "rmse_over_scale": rmse / scale if scale else None,
                "max_abs_error": float(r.get("max_abs_error") or "nan"),
            }
        )
    rows.sort(key=lambda r: -(r["rmse_over_scale"] or 0))
    return rows[:top]


def _layer(tensor: str) -> str:
    """TFLite fuses names with ';': 'model/encoder_1/block_13_project_BN_1/batchnorm/add_1;...' ->
    'encoder_1/block_13_project_BN_1/batchnorm'."""
    parts = tensor.split(";")[0].split("/")
    return "/".join(parts[1:-1]) if len(parts) > 2 else "/".join(parts)


def coverage(cal_pixels: dict | None, ds, limit: int = 200) -> dict | None:
    """Share of each class's pixels in the calibration set against the dataset's."""
    if not cal_pixels:
        return None
    masks = (ds.read_mask(ds.samples[i].mask) for i in range(min(limit, len(ds))))
    counts = class_pixels(masks, ds.num_classes)
    total_ds = max(int(counts.sum()), 1)
    total_cal = max(sum(cal_pixels.values()), 1)
    return {
        c: {"calibration_share": cal_pixels.get(c, 0) / total_cal, "dataset_share": int(n) / total_ds}
        for c, n in zip(ds.classes, counts, strict=True)
    }


def suggestions(result: dict) -> list[str]:
    """What to try, from what the report found (classes that lose most, calibration coverage, layers)."""
    out = []
    cal = result.get("calibration_images")
    if cal is not None and cal < 100:
        out.append(
            f"Calibrate on more images: {cal} were used; 200 or more from the training data usually "
            "settle the activation ranges."
        )
    cov = result.get("coverage") or {}
    missing = [c for c, v in cov.items() if v["calibration_share"] == 0 and v["dataset_share"] > 0]
    if missing:
        out.append(f"The calibration set never shows {', '.join(missing)}: add images that contain them.")
    under = [
        c for c, v in cov.items() if v["dataset_share"] > 0 and 0 < v["calibration_share"] < 0.25 * v["dataset_share"]
    ]
    if under:
        out.append(
            f"Under-represented in calibration (under a quarter of their share in the data): {', '.join(under)}."
        )
    hurt = [(c, v["delta"]) for c, v in result["per_class"].items() if v["delta"] is not None and v["delta"] < -0.02]
    if hurt:
        out.append(
            "Classes that lose more than 2 IoU points: " + ", ".join(f"{c} ({100 * d:+.1f})" for c, d in hurt) + "."
        )
    layers = result.get("layers") or []
    ratios = [r["rmse_over_scale"] for r in layers if r["rmse_over_scale"]]
    if layers and ratios and ratios[0] > 3 * float(np.median(ratios)):
        out.append(
            f"Layer {layers[0]['layer']} loses most (RMSE {ratios[0]:.2f} quantisation steps): keeping it "
            "in float (QuantizationDebugOptions(denylisted_nodes=[...]) with fully_quantize=False) or "
            "quantisation-aware training may recover accuracy, at some speed."
        )
    if result["delta_miou"] >= -0.005 and not out:
        out.append("int8 costs at most half a point of mIoU here: nothing to fix.")
    return out


def write_report(folder: Path, result: dict) -> Path:
    """Write report.md and report.json into `folder`; the markdown's path."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    atomic_write_text(folder / "report.json", json.dumps(result, indent=2, default=float) + "\n")

    def pct(v):
        return "n/a" if v is None else f"{100 * v:.2f}"

    lines = [
        f"# Quantisation report: {Path(result['int8_model']).name}",
        "",
        f"Float reference `{Path(result['float_model']).name}`, int8 `{Path(result['int8_model']).name}`, "
        f"{result['images']} images of `{result['dataset']}` ({result['split']}), scored at the labels' resolution.",
        "",
        "| | float | int8 | delta |",
        "| --- | ---: | ---: | ---: |",
        f"| mIoU (%) | {pct(result['float_miou'])} | {pct(result['int8_miou'])} | {100 * result['delta_miou']:+.2f} |",
        f"| pixel accuracy (%) | {pct(result['float_pixel_accuracy'])} | {pct(result['int8_pixel_accuracy'])} | |",
        f"| pixels where float and int8 disagree | | | {pct(result['pixel_disagreement'])} % |",
        "",
        "## Per-class IoU (%)",
        "",
        "| class | float | int8 | delta |",
        "| --- | ---: | ---: | ---: |",
    ]
    for c, v in result["per_class"].items():
        delta = "" if v["delta"] is None else f"{100 * v['delta']:+.2f}"
        lines.append(f"| {c} | {pct(v['float'])} | {pct(v['int8'])} | {delta} |")
    if result.get("coverage"):
        lines += [
            "",
            "## Calibration coverage",
            "",
            f"{result.get('calibration_images', '?')} calibration images. Share of labelled pixels per class:",
            "",
            "| class | calibration (%) | dataset (%) |",
            "| --- | ---: | ---: |",
        ]
        for c, v in result["coverage"].items():
            lines.append(f"| {c} | {100 * v['calibration_share']:.2f} | {100 * v['dataset_share']:.2f} |")
    if result.get("layers"):
        lines += [
            "",
            "## Layers that lose most (QuantizationDebugger)",
            "",
            "RMSE of the int8 output against float, in units of the tensor's quantisation step.",
            "",
            "| op | tensor | RMSE / step | max abs error |",
            "| --- | --- | ---: | ---: |",
        ]
        for r in result["layers"]:
            lines.append(f"| {r['op']} | `{r['layer']}` | {r['rmse_over_scale']:.3f} | {r['max_abs_error']:.4f} |")
    lines += ["", "## Suggestions", ""] + [f"- {s}" for s in result["suggestions"]]
    if result.get("images_written"):
        lines += ["", "## Where float and int8 disagree most", ""]
        lines += [f"![{Path(p).stem}]({Path(p).name})" for p in result["images_written"]]
    path = folder / "report.md"
    atomic_write_text(path, "\n".join(lines) + "\n")
    return path


def build_report(
    float_model,
    int8_model,
    ds,
    folder: Path,
    keras_seg=None,
    calibration=None,
    limit: int | None = None,
    progress=None,
    top_layers: int = 10,
    equalize: bool = False,
) -> tuple[Path, dict]:
    """The quantisation report for two loaded models, written into `folder`.

    Args:
        float_model: the float reference.
        int8_model: the int8 model.
        ds: the dataset to score on.
        folder: for report.md, report.json and the images.
        keras_seg: the Keras model, for per-layer statistics (None: none).
        calibration: the CalibrationSet, for its class coverage.
        limit: only the first N images.
        progress: called with (done, total).
        top_layers: how many of the worst layers to list.
        equalize: the layer statistics of the model with its activations equalised (convert --equalize).

    Returns:
        (report.md's path, the report as a dict).
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    result = compare(float_model, int8_model, ds, limit, progress)
    result.update(
        float_model=str(float_model.path), int8_model=str(int8_model.path), dataset=str(ds.root), split=ds.split
    )
    result["images_written"] = [  # beside report.json: named relative to it, so the folder can move
        p.name for p in disagreement_images(float_model, int8_model, ds, result["worst"], folder)
    ]
    if calibration is not None:
        result["calibration_images"] = len(calibration)
        result["coverage"] = coverage(calibration.class_pixels, ds)
    if keras_seg is not None:
        frames = (
            list(itertools.islice(calibration.frames(), 16))
            if calibration is not None
            else [ds.read(i)[0] for i in range(min(8, len(ds)))]
        )  # decode only the frames used
        result["layers"] = layer_statistics(keras_seg, frames, top_layers, equalize)
    result["suggestions"] = suggestions(result)
    return write_report(folder, result), result


def report_for_files(
    float_path: Path,
    int8_path: Path,
    folder: Path,
    *,
    data: Path | None = None,
    calibration: Path | None = None,
    spec: Path | None = None,
    num_calibration: int = 200,
    limit: int | None = None,
    keras_path: Path | None = None,
    progress=None,
    equalize: bool = False,
) -> tuple[Path, dict]:
    """The report for two model files. The dataset is `data`, else `calibration`, else the training data the
    float model's spec records (its val split, or all of it when it has none); it must have masks. The
    calibration set (for its class coverage) is `calibration`, else that training data. A `.keras` float model,
    or `keras_path`, adds the per-layer statistics.

    Args:
        float_path: the float reference (.keras or float .tflite).
        int8_path: the int8 .tflite.
        folder: where the report goes.
        data: the dataset to score on.
        calibration: the calibration data.
        spec: a spec for the .keras model.
        num_calibration: calibration images counted for coverage.
        limit: only the first N images.
        keras_path: the .keras model, for layer statistics when float_path is a .tflite.
        progress: called with (done, total).
        equalize: the layer statistics with the activations equalised, as the int8 model was converted.
    """
    from edgeseg.converters.calibration import calibration_set
    from edgeseg.datasets import detect_format, open_dataset
    from edgeseg.errors import EdgesegError
    from edgeseg.models import open_model

    float_path, int8_path = Path(float_path), Path(int8_path)
    fm = open_model(float_path, spec=spec if float_path.suffix == ".keras" else None)
    qm = open_model(int8_path)
    train_data = fm.spec.train_data_from(float_path.parent)
    source = data or calibration or train_data
    if not source:
        raise EdgesegError("the report needs a dataset with masks: give --data (or --calibration)")
    try:
        detect_format(Path(source))
    except EdgesegError:
        raise EdgesegError(f"{source}: the report needs a dataset with masks, not an image folder") from None
    try:
        ds = open_dataset(Path(source), "val")
    except EdgesegError:
        ds = open_dataset(Path(source), "all")
    cal_source = calibration or train_data
    cal = calibration_set(Path(cal_source), fm.spec, num_calibration) if cal_source else None
    keras_seg = fm if float_path.suffix == ".keras" else (open_model(keras_path) if keras_path else None)
    return build_report(fm, qm, ds, folder, keras_seg, cal, limit, progress=progress, equalize=equalize)
