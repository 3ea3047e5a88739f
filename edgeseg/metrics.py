"""Segmentation metrics from one confusion matrix: per-class IoU, mIoU, pixel accuracy.

Rows are the true class, columns the predicted one. Pixels whose label is the ignore index do not count.
A class that appears neither in the labels nor in the predictions has IoU NaN (not 0, not 1), and the mean
skips it.
"""

from __future__ import annotations

import numpy as np

from edgeseg.errors import DataError


def class_pixels(masks, num_classes: int) -> np.ndarray:
    """Pixels of each class 0..num_classes-1 over an iterable of masks (the ignore index and other values beyond
    the classes are not counted), as int64."""
    counts = np.zeros(num_classes, dtype=np.int64)
    for m in masks:
        counts += np.bincount(np.asarray(m).ravel(), minlength=max(256, num_classes))[:num_classes]
    return counts


class ConfusionMatrix:
    """Counts of (label, prediction) pixel pairs over many images, with an ignore index; IoU, mIoU and pixel accuracy
    from them."""

    def __init__(self, num_classes: int, ignore_index: int | None = None):
        self.num_classes, self.ignore_index = num_classes, ignore_index
        self.counts = np.zeros((num_classes, num_classes), dtype=np.int64)
        # Labelled pixels predicted as a value outside 0..num_classes-1 (a model with other classes): misses.
        self.missed = np.zeros(num_classes, dtype=np.int64)

    def update(self, target: np.ndarray, pred: np.ndarray) -> None:
        """Add one image's label and prediction (same shape); DataError for a label value that is not a class."""
        if target.shape != pred.shape:
            raise DataError(f"label is {target.shape[:2]} but prediction is {pred.shape[:2]}")
        keep = target != self.ignore_index if self.ignore_index is not None else np.ones(target.shape, bool)
        t, p = target[keep].astype(np.int64), pred[keep].astype(np.int64)
        if t.size and (t.max() >= self.num_classes or t.min() < 0):
            raise DataError(f"label value {int(t.max())} is not a class (0..{self.num_classes - 1})")
        p = np.where((p >= 0) & (p < self.num_classes), p, -1)
        out_of_range = p < 0
        if out_of_range.any():  # a prediction outside the label set is wrong for every class: count as a miss
            np.add.at(self.missed, t[out_of_range], 1)
            t, p = t[~out_of_range], p[~out_of_range]
        flat = t * self.num_classes + p
        self.counts += np.bincount(flat, minlength=self.num_classes**2).reshape(self.counts.shape)

    def merge(self, other: ConfusionMatrix) -> None:
        """Add another matrix's counts (from another worker or chunk)."""
        self.counts += other.counts
        self.missed += other.missed

    def iou(self) -> np.ndarray:
        """Per-class intersection over union; NaN for a class that neither the labels nor the predictions show."""
        tp = np.diag(self.counts).astype(np.float64)
        per_true = self.counts.sum(axis=1) + self.missed
        per_pred = self.counts.sum(axis=0)
        union = per_true + per_pred - tp
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(union > 0, tp / np.maximum(union, 1), np.nan)

    def miou(self) -> float:
        """The mean of the per-class IoU over the classes that appear (NaN when none does)."""
        iou = self.iou()
        return float(np.nanmean(iou)) if np.isfinite(iou).any() else float("nan")

    def pixel_accuracy(self) -> float:
        """The share of labelled pixels predicted right."""
        total = self.counts.sum() + self.missed.sum()
        return float(np.trace(self.counts) / total) if total else float("nan")

    def summary(self, class_names: list[str] | tuple[str, ...] | None = None) -> dict:
        """mIoU, pixel accuracy and per-class IoU by name, as JSON values (None for NaN)."""
        names = list(class_names) if class_names else [str(i) for i in range(self.num_classes)]
        iou = self.iou()
        return {
            "miou": _num(self.miou()),
            "pixel_accuracy": _num(self.pixel_accuracy()),
            "per_class_iou": {names[i]: _num(v) for i, v in enumerate(iou)},
            "pixels": int(self.counts.sum() + self.missed.sum()),
        }


def _num(v: float) -> float | None:
    return None if np.isnan(v) else float(v)
