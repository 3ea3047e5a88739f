"""Small stateless adapters from a segmentation model's output tensor to an H x W class mask.

Three conventions cover what users bring:
- SCORES: [1, H, W, C] per-class scores, C > 1 (float logits, or int8/uint8 quantised). Argmax of the raw
  values: a quantised tensor has one positive scale, so the order of the integers is the order of the
  scores. Never cast int8 to uint8 first (-1 would become 255).
- INDEX: [1, H, W] or [H, W] (or [1, H, W, 1] without quantisation) integer class indices, argmax inside
  the model (Coral's DeepLabV3).
- PROBABILITY: [1, H, W, 1] one-channel probability of the foreground class (MediaPipe's selfie segmenter);
  pixels above the threshold are class 1.
"""

from __future__ import annotations

from enum import StrEnum

import cv2
import numpy as np

from edgeseg.errors import ModelError
from edgeseg.tensors import TensorInfo


class OutputKind(StrEnum):
    """The three output conventions (see the module's docstring)."""

    SCORES = "scores"
    INDEX = "index"
    PROBABILITY = "probability"


def output_kind(t: TensorInfo) -> OutputKind:
    """Which of the three conventions an output tensor follows (ModelError when none: a classifier, say)."""
    shape, dtype = t.shape, t.dtype
    batch1 = len(shape) > 0 and shape[0] in (1, None)
    if len(shape) == 4 and batch1 and shape[3] is not None:
        if shape[3] > 1:
            return OutputKind.SCORES
        if dtype.kind in "iu" and not t.scale:
            return OutputKind.INDEX
        return OutputKind.PROBABILITY
    if len(shape) in (2, 3) and dtype.kind in "iu" and (len(shape) == 2 or batch1):
        return OutputKind.INDEX
    shown = ["?" if d is None else d for d in shape]
    raise ModelError(
        f"output {t.name or '?'} has shape {shown} {dtype.name}: expected [1,H,W,C] scores, "
        "[1,H,W] class indices or [1,H,W,1] probability"
    )


def output_classes(t: TensorInfo, kind: OutputKind) -> int | None:
    """How many classes an output can name (None for an index map: the model's own label set)."""
    if kind is OutputKind.SCORES:
        return int(t.shape[-1])
    if kind is OutputKind.PROBABILITY:
        return 2
    return None


def index_mask(out: np.ndarray, t: TensorInfo, kind: OutputKind, threshold: float = 0.5) -> np.ndarray:
    """The model's raw output -> H x W class mask (uint8, or uint16 beyond 256 classes).

    Args:
        out: the raw output tensor.
        t: the output tensor's description (its quantisation, for a probability output).
        kind: the output's convention.
        threshold: the foreground cut for a probability output.
    """
    if kind is OutputKind.SCORES:
        scores = out[0]
        if scores.dtype in (np.int8, np.uint8) and scores.shape[-1] <= SMALL_ARGMAX:
            return _argmax_by_class(scores)
        idx = scores.argmax(axis=-1)
        return idx.astype(np.uint8 if scores.shape[-1] <= 256 else np.uint16)
    if kind is OutputKind.PROBABILITY:
        prob = out.reshape(out.shape[1], out.shape[2])
        if t.quantized:  # compare without dequantising
            return (prob.astype(np.int32) > threshold / t.scale + t.zero_point).astype(np.uint8)
        return (prob > threshold).astype(np.uint8)
    idx = out.reshape(out.shape[-3] if out.ndim == 4 else out.shape[-2], -1) if out.ndim >= 3 else out
    if idx.size and idx.max(initial=0) > 255:
        return idx.astype(np.uint16)
    return idx.astype(np.uint8)


SMALL_ARGMAX = 64  # up to this many classes, _argmax_by_class beats numpy's argmax (measured up to 64)


def _argmax_by_class(scores: np.ndarray) -> np.ndarray:
    """np.argmax(scores, axis=-1) as uint8 for 8-bit scores [h, w, C], the same answer (ties to the first class)
    in about half the time: numpy's argmax walks every pixel's C values as a row of its own (0.08 ms for nano's
    96x128x11 on a Zen 5 core), where one OpenCV transpose lays each class out contiguously and C - 1 whole-image
    comparisons do the rest (0.04 ms)."""
    h, w, c = scores.shape
    planes = cv2.transpose(np.ascontiguousarray(scores).reshape(h * w, c).view(np.uint8)).view(scores.dtype)
    best = planes[0].copy()
    idx = np.zeros(h * w, np.uint8)
    above = np.empty(h * w, bool)
    for k in range(1, c):
        np.greater(planes[k], best, out=above)  # strictly: a tie keeps the first class, as argmax does
        np.maximum(best, planes[k], out=best)
        np.copyto(idx, k, where=above)
    return idx.reshape(h, w)


def class_scores(out: np.ndarray, t: TensorInfo, kind: OutputKind) -> np.ndarray | None:
    """Per-class confidence [h, w, C] in 0..1 (float32) from the raw output: softmax of a scores output
    (dequantised first), or [1 - p, p] of a probability output. None for an index map, which carries none."""
    if kind is OutputKind.INDEX:
        return None
    x = out[0].astype(np.float32)
    if t.quantized:
        x = (x - t.zero_point) * t.scale
    if kind is OutputKind.PROBABILITY:
        p = np.clip(x.reshape(x.shape[0], x.shape[1]), 0.0, 1.0)
        return np.stack([1.0 - p, p], axis=-1)
    x = x - x.max(axis=-1, keepdims=True)
    e = np.exp(x)
    return e / e.sum(axis=-1, keepdims=True)
