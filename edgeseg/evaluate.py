"""evaluate: a model (anything with predict(frame) -> mask and a spec) over a dataset -> mIoU and friends.

Predictions are compared at the label's own resolution (the mask comes back at the frame's size), with the
dataset's ignore index. Per-class IoU is NaN for a class that neither the labels nor the predictions show.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from edgeseg.datasets import Dataset
from edgeseg.errors import EdgesegError
from edgeseg.io import write_image
from edgeseg.metrics import ConfusionMatrix
from edgeseg.postprocess import OutputKind, output_classes
from edgeseg.predictors import Predictor


def check_classes(model: Predictor, ds: Dataset, name: str = "the model") -> None:
    """A model whose class list has another length than the dataset's cannot be scored on it: refuse, rather
    than report a number that means nothing. The model's count is its output's (the channels of a scores
    output), else its spec's. (An index-map model without a spec names no classes: its predictions outside the
    dataset's classes count as misses.)"""
    if model.kind is OutputKind.INDEX and model.spec_source == "inferred":
        return
    model_classes = output_classes(model.output, model.kind) or model.spec.num_classes
    if model_classes != ds.num_classes:
        raise EdgesegError(
            f"{name} predicts {model_classes} classes but the dataset has {ds.num_classes}: they do not match"
        )


def evaluate(
    model: Predictor,
    ds: Dataset,
    limit: int | None = None,
    progress: Callable[[int, int], None] | None = None,
    save_masks: Path | None = None,
) -> dict:
    """Score `model` on the first `limit` images of `ds` (all by default).

    Returns mIoU, per-class IoU, pixel accuracy and the mean predict time. With `save_masks`, each predicted
    mask is also written there as an 8-bit PNG of class indices named after its image (`<stem>.png`), at the
    label's resolution: what `edgeseg eval --save-masks` gives, for comparing two runtimes or machines. Images
    that share a stem (a.jpg and a.png, or one name in two folders) are named by their path in the dataset
    instead, so that no mask overwrites another.

    Args:
        model: the predictor.
        ds: the dataset split.
        limit: score only the first N images.
        progress: called with (done, total).
        save_masks: a folder for the predicted masks.
    """
    n = len(ds) if limit is None else min(limit, len(ds))
    check_classes(model, ds)
    names = mask_names(ds, n) if save_masks is not None else []
    if save_masks is not None:
        save_masks.mkdir(parents=True, exist_ok=True)
    cm = ConfusionMatrix(ds.num_classes, ds.ignore_index)
    times = []
    outside = total = 0  # predicted pixels with a class the dataset does not have (a model of other classes)
    for i in range(n):
        frame, target = ds.read(i)
        t0 = time.perf_counter_ns()
        pred = model.segment(frame)
        times.append((time.perf_counter_ns() - t0) / 1e6)
        cm.update(target, pred)
        outside += int(np.count_nonzero(pred >= ds.num_classes))
        total += pred.size
        if save_masks is not None:
            write_image(save_masks / names[i], pred.astype(np.uint8))
        if progress:
            progress(i + 1, n)
    out = cm.summary(ds.classes)
    out.update(
        images=n,
        dataset=str(ds.root),
        split=ds.split,
        format=ds.format,
        ignore_index=ds.ignore_index,
        mean_predict_ms=float(np.mean(times)) if times else None,
        predicted_outside_classes=outside / total if total else 0.0,
    )
    return out


def outside_warning(res: dict, model_name: str) -> str | None:
    """The warning for a model that predicted classes the dataset does not have (an index-map model that names
    none of its own, scored on a dataset of other classes), or None."""
    share = res.get("predicted_outside_classes") or 0.0
    if share <= 0:
        return None
    n = len(res.get("per_class_iou") or {})
    return (
        f"{model_name} predicted class values beyond the dataset's {n} classes on {100 * share:.1f}% of the pixels: "
        "its classes are not the dataset's, and the mIoU counts those pixels as misses"
    )


def mask_names(ds: Dataset, n: int) -> list[str]:
    """A file name for the predicted mask of each of the first n images, all different (also where case does not
    count, as on an SD card's FAT or on macOS): `<stem>.png`; for stems that two images share, the image's path
    within the dataset with its folders and suffix joined by '__'; and where even that meets a name already
    given, a number after it."""
    stems = [s.image.stem.lower() for s in ds.samples[:n]]
    shared = {stem for stem in stems if stems.count(stem) > 1}
    out: list[str] = []
    taken: set[str] = set()
    for s in ds.samples[:n]:
        if s.image.stem.lower() not in shared:
            base = s.image.stem
        else:
            try:
                rel = s.image.resolve().relative_to(Path(ds.root).resolve())
            except ValueError:
                rel = Path(s.image.name)
            base = "__".join(rel.parts).replace(".", "_")
        name, k = f"{base}.png", 1
        while name.lower() in taken:
            k += 1
            name = f"{base}-{k}.png"
        taken.add(name.lower())
        out.append(name)
    return out
