"""What a model that carries no edgeseg spec is taken to be: its standard metadata where it has some, a labels
file where the user gives one, else what its tensors say (Coral's and MediaPipe's conventions)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from edgeseg.errors import ModelError
from edgeseg.limits import MAX_JSON_BYTES
from edgeseg.postprocess import OutputKind, output_classes
from edgeseg.spec import ModelSpec
from edgeseg.tensors import TensorInfo


def default_spec(inp: TensorInfo, out: TensorInfo, kind: OutputKind, standard: dict | None = None) -> ModelSpec:
    """A spec for a model that carries no edgeseg spec: from its standard metadata (`standard`: the input's
    normalisation and the output's labels) where it has them, else read off its tensors.

    Without metadata: a quantised input takes raw pixels as they are (q = pixel for uint8, pixel - 128 for
    int8), the convention of Coral's models; a float input takes RGB scaled to [0, 1].

    Args:
        inp: the input tensor.
        out: the output tensor.
        kind: the output's convention.
        standard: {"mean", "std", "labels"} from the model's standard metadata, where it has them.
    """
    standard = standard or {}
    _, h, w, _ = inp.shape
    if inp.quantized:
        offset = 128 if inp.dtype == np.int8 else 0
        mean, std = (offset + inp.zero_point,) * 3, (1.0 / inp.scale,) * 3
    else:
        mean, std = (0.0,) * 3, (255.0,) * 3
    if standard.get("mean") and standard.get("std"):
        mean, std = finite_normalisation(standard["mean"], standard["std"], "TFLite Metadata NormalizationOptions")
    n = output_classes(out, kind)
    if kind is OutputKind.PROBABILITY:
        classes = ("background", "foreground")
    else:
        classes = tuple(f"class_{i}" for i in range(n or 256))
    labels = standard.get("labels") or []
    classes = fit_labels(labels, classes, kind) if labels else classes
    return ModelSpec(input_hw=(h, w), classes=classes, mean=mean, std=std)


def fit_labels(labels: list[str], classes: tuple[str, ...], kind: OutputKind) -> tuple[str, ...]:
    """Class names from a label list for an output with len(classes) classes. A probability output's one label
    names its foreground; an index map takes as many labels as it has; a scores output needs exactly one
    label per channel (ModelError otherwise)."""
    if kind is OutputKind.PROBABILITY and len(labels) == 1:
        return ("background", labels[0])
    if kind is OutputKind.INDEX or len(labels) == len(classes):
        return tuple(labels)
    raise ModelError(f"{len(labels)} labels for an output with {len(classes)} classes")


def read_labels(path: Path) -> list[str]:
    """A labels file as Coral, Picamera2 and the TFLite tools write it: one name per line, optionally after an
    index ("0 background" or "0: background"), blank lines skipped. Read up to MAX_JSON_BYTES and no further
    (a FIFO or a device that never ends is refused, not read forever)."""
    from edgeseg.io import read_bounded

    text = read_bounded(Path(path), MAX_JSON_BYTES, "labels")
    labels = []
    for line in text.splitlines():
        line = line.strip()
        head, sep, rest = line.replace(":", " ", 1).partition(" ")
        name = rest.strip() if sep and head.isdigit() and rest.strip() else line
        if name:
            labels.append(name)
    if not labels:
        raise ModelError(f"{path}: no labels in it")
    return labels


def finite_normalisation(mean, std, where: str) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Mean and std read from a model file, checked: finite, std at least MIN_STD in size (a NaN, an infinity or
    a zero std turns every input into NaN or zero, and the model answers one class everywhere)."""
    from edgeseg.spec import MIN_STD

    values = [float(v) for v in (*mean, *std)]
    if len(mean) not in (1, 3) or len(std) not in (1, 3):
        raise ModelError(f"{where}: mean {list(mean)} and std {list(std)} must have 1 or 3 values")
    if not all(math.isfinite(v) for v in values) or any(abs(float(s)) < MIN_STD for s in std):
        raise ModelError(f"{where}: mean {list(mean)} / std {list(std)} must be finite, std at least {MIN_STD:g}")

    def three(v) -> tuple[float, ...]:
        return tuple(float(x) for x in v) * (3 if len(v) == 1 else 1)

    return three(mean), three(std)
