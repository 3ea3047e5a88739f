"""The representative data set for full-integer quantisation.

N images drawn (seeded) from a dataset in any layout edgeseg reads, or from a plain image folder, and run
through edgeseg.preprocess, the same function the runtime calls, so calibration sees the pixels the device
will see. When the images come with masks, the class coverage of the chosen images is counted: a class the
calibration never shows gets activation ranges that were never measured for it.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from edgeseg.datasets import Dataset, detect_format, open_dataset
from edgeseg.errors import DataError
from edgeseg.images import list_images, read_image
from edgeseg.metrics import class_pixels
from edgeseg.preprocess import preprocess
from edgeseg.spec import ModelSpec
from edgeseg.tensors import FLOAT_INPUT

SMALL_CALIBRATION = 100


@dataclass
class CalibrationSet:
    """The images chosen for calibration, with the dataset they came from and the classes they show."""

    source: Path
    images: list[Path]
    dataset: Dataset | None = None
    indices: list[int] = field(default_factory=list)
    class_pixels: dict[str, int] | None = None
    warnings: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.images)

    def frames(self) -> Iterator[np.ndarray]:
        """The calibration images as BGR frames, read one at a time."""
        for p in self.images:
            yield read_image(p)

    def tensors(self, spec: ModelSpec) -> Iterator[np.ndarray]:
        """float32 [1, H, W, 3] tensors for the float model, as the runtime would prepare them."""
        for frame in self.frames():
            yield preprocess(frame, spec, FLOAT_INPUT)[0]


def calibration_set(
    source: Path,
    spec: ModelSpec,
    count: int = 200,
    seed: int = 0,
    format: str = "auto",
    hold_out: tuple[str, ...] = (),
) -> CalibrationSet:
    """`count` images drawn (seeded) from a dataset's train split (else all of it) or from an image folder, with
    the class coverage counted where there are masks and warnings for classes never shown and for small sets.

    Args:
        source: a dataset or an image folder.
        spec: the model's spec (its classes).
        count: how many images.
        seed: the draw's seed.
        format: the dataset's layout (auto: detected).
        hold_out: file-name prefixes left out (the sequences the model was validated on, from its spec).
    """
    source = Path(source)
    if count < 1:
        raise DataError("calibration needs at least one image")
    try:
        fmt = detect_format(source) if format == "auto" else format
    except DataError:
        fmt = None
    rng = np.random.default_rng(seed)
    if fmt is None:
        images = [p for p in list_images(source) if not (hold_out and p.name.startswith(hold_out))]
        if not images:
            raise DataError(f"{source}: no images for calibration")
        pick = sorted(rng.choice(len(images), size=min(count, len(images)), replace=False).tolist())
        cal = CalibrationSet(source, [images[i] for i in pick])
    else:
        try:
            ds = open_dataset(source, "train", fmt)
        except DataError:
            ds = open_dataset(source, "all", fmt)
        if hold_out:
            kept = [s for s in ds.samples if not s.image.name.startswith(hold_out)]
            if not kept:
                raise DataError(f"{source}: every calibration frame is held out ({', '.join(hold_out)})")
            ds = replace(ds, samples=kept)
        pick = sorted(rng.choice(len(ds), size=min(count, len(ds)), replace=False).tolist())
        cal = CalibrationSet(source, [ds.samples[i].image for i in pick], ds, pick)
        if tuple(ds.classes) != tuple(spec.classes):
            # another dataset's masks say nothing of which of the model's classes its images show
            cal.warnings.append(
                f"the calibration dataset's classes ({_names(ds.classes)}) are not the model's "
                f"({_names(spec.classes)}): its images calibrate, its masks are not read"
            )
            return _small(cal)
        cal.class_pixels = _coverage(ds, pick, spec)
        never = [c for c, n in cal.class_pixels.items() if n == 0]
        if never:
            cal.warnings.append(
                f"calibration images never show class(es) {', '.join(never)}: their int8 ranges are "
                "guessed from other classes; add images that contain them"
            )
    return _small(cal)


def _small(cal: CalibrationSet) -> CalibrationSet:
    if len(cal) < SMALL_CALIBRATION:
        cal.warnings.append(
            f"only {len(cal)} calibration images (< {SMALL_CALIBRATION}): int8 ranges may be too "
            "narrow; give more with --calibration / --num-calibration"
        )
    return cal


def _names(classes) -> str:
    shown = ", ".join(classes[:4])
    return shown + (f", ... {len(classes)} in all" if len(classes) > 4 else "")


def _coverage(ds: Dataset, pick: list[int], spec: ModelSpec) -> dict[str, int]:
    counts = class_pixels((ds.read_mask(ds.samples[i].mask) for i in pick), spec.num_classes)
    return {name: int(c) for name, c in zip(spec.classes, counts, strict=True)}


def verification_frames(
    sources: list[Path | None], spec: ModelSpec, count: int, exclude: CalibrationSet | None = None
) -> tuple[list[np.ndarray], str]:
    """Up to `count` frames to compare a converted model with Keras on, and a line saying where they came from.

    Images the calibration did not see: of the first source that is a dataset (the training data, then the
    calibration data), its val split first, then its other images outside the calibration set; of an image
    folder, its images outside the calibration set. Only when there are none are the calibration images
    themselves used, and the line says so: a conversion checked on its own calibration images agrees with
    itself (an all-black calibration set used to report 100%).

    Args:
        sources: where to look, in order (None entries are skipped).
        spec: the model's spec.
        count: how many frames.
        exclude: the calibration set, whose images are not verification images.
    """
    if count < 1:
        return [], "no images (--verify 0)"
    seen = set(exclude.images) if exclude is not None else set()
    for source in (Path(s) for s in sources if s is not None and Path(s).exists()):
        fresh = _held_out(source, seen)
        if fresh:
            picked = _spread(fresh, count)
            return [read_image(p) for p in picked], f"{len(picked)} held-out images of {source}"
    if exclude is not None and len(exclude):
        picked = _spread(exclude.images, count)
        return (
            [read_image(p) for p in picked],
            f"{len(picked)} calibration images (none held out: give a dataset with a val split)",
        )
    return [], "no images (give --calibration DATASET)"


def _held_out(source: Path, seen: set[Path]) -> list[Path]:
    """A source's images outside `seen`: a dataset's val split first, then the rest of it; a folder's images."""
    try:
        fmt = detect_format(source)
    except DataError:
        return [p for p in list_images(source) if p not in seen] if source.is_dir() else []
    images: list[Path] = []
    for split in ("val", "all"):
        try:
            images += [s.image for s in open_dataset(source, split, fmt).samples]
        except DataError:
            continue
    return [p for p in dict.fromkeys(images) if p not in seen]


def _spread(images: list[Path], count: int) -> list[Path]:
    """`count` of the images spread evenly over the list (the same ones each time)."""
    step = max(1, len(images) // count)
    return images[::step][:count]
