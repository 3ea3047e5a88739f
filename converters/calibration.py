"""The representative data set for full-integer quantisation.

N images drawn (seeded) from a dataset in any layout edgeseg reads, or from a plain image folder, and run
through edgeseg.preprocess, the same function the runtime calls, so calibration sees the pixels the device
will see. When the images come with masks, the class coverage of the chosen images is counted: a class the
calibration never shows gets activation ranges that were never measured for it.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from edgeseg.datasets import Dataset, detect_format, open_dataset
from edgeseg.errors import DataError
from edgeseg.images import list_images, read_image
from edgeseg.metrics import class_pixels
from edgeseg.preprocess import FLOAT_INPUT, preprocess
from edgeseg.spec import ModelSpec

SMALL_CALIBRATION = 100


@dataclass
class CalibrationSet:
    source: Path
    images: list[Path]
    dataset: Dataset | None = None
    indices: list[int] = field(default_factory=list)
    class_pixels: dict[str, int] | None = None
    warnings: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.images)

    def frames(self) -> Iterator[np.ndarray]:
        for p in self.images:
            yield read_image(p)

    def tensors(self, spec: ModelSpec) -> Iterator[np.ndarray]:
        """float32 [1, H, W, 3] tensors for the float model, as the runtime would prepare them."""
        for frame in self.frames():
            yield preprocess(frame, spec, FLOAT_INPUT)[0]


def calibration_set(
    source: Path, spec: ModelSpec, count: int = 200, seed: int = 0, format: str = "auto"
) -> CalibrationSet:
    source = Path(source)
    if count < 1:
        raise DataError("calibration needs at least one image")
    try:
        fmt = detect_format(source) if format == "auto" else format
    except DataError:
        fmt = None
    rng = np.random.default_rng(seed)
    if fmt is None:
        images = list_images(source)
        if not images:
            raise DataError(f"{source}: no images for calibration")
        pick = sorted(rng.choice(len(images), size=min(count, len(images)), replace=False).tolist())
        cal = CalibrationSet(source, [images[i] for i in pick])
    else:
        try:
            ds = open_dataset(source, "train", fmt)
        except DataError:
            ds = open_dataset(source, "all", fmt)
        pick = sorted(rng.choice(len(ds), size=min(count, len(ds)), replace=False).tolist())
        cal = CalibrationSet(source, [ds.samples[i].image for i in pick], ds, pick)
        cal.class_pixels = _coverage(ds, pick, spec)
        never = [c for c, n in cal.class_pixels.items() if n == 0]
        if never:
            cal.warnings.append(
                f"calibration images never show class(es) {', '.join(never)}: their int8 ranges are "
                "guessed from other classes; add images that contain them"
            )
    if len(cal) < SMALL_CALIBRATION:
        cal.warnings.append(
            f"only {len(cal)} calibration images (< {SMALL_CALIBRATION}): int8 ranges may be too "
            "narrow; give more with --calibration / --num-calibration"
        )
    return cal


def _coverage(ds: Dataset, pick: list[int], spec: ModelSpec) -> dict[str, int]:
    counts = class_pixels((ds.read_mask(ds.samples[i].mask) for i in pick), spec.num_classes)
    return {name: int(c) for name, c in zip(spec.classes, counts, strict=True)}
