"""Sample and Dataset: the (image, mask) pairs of one split of a dataset, whatever its layout (edgeseg.datasets and
edgeseg.coco open them). numpy, OpenCV and Pillow only."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from edgeseg.errors import DataError
from edgeseg.images import check_mask_values, read_image, read_mask


@dataclass(frozen=True)
class Sample:
    """One image and its mask (None for an image without one)."""

    image: Path
    mask: Path | None = None


@dataclass
class Dataset:
    """The samples of one split of a dataset, with its classes, colours and ignore index."""

    root: Path
    format: str
    split: str
    samples: list[Sample]
    classes: tuple[str, ...]
    colours: tuple[tuple[int, int, int], ...] = ()
    ignore_index: int | None = None
    binary_255: bool = False  # masks store the foreground as 255
    extra: dict = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.samples)

    def __iter__(self) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        for i in range(len(self.samples)):
            yield self.read(i)

    @property
    def num_classes(self) -> int:
        """How many classes the dataset names."""
        return len(self.classes)

    def read(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        """Image (BGR uint8) and mask (uint8 class indices, ignore index kept) of sample i, checked.

        The two share one pixel grid. A mask has no EXIF orientation, so the image is read as stored; only when
        the mask fits the image turned upright by its EXIF orientation (it was drawn on the turned view) is the
        image turned. Never one of the two alone."""
        s = self.samples[i]
        if s.mask is None:
            raise DataError(f"{s.image}: no mask for this image")
        image = read_image(s.image, orient=False)
        mask = self.read_mask(s.mask)
        if mask.shape[:2] != image.shape[:2]:
            upright = read_image(s.image, orient=True)
            image = upright if upright.shape[:2] == mask.shape[:2] else image
        if mask.shape[:2] != image.shape[:2]:
            raise DataError(
                f"{s.mask}: mask is {mask.shape[1]}x{mask.shape[0]} but its image {s.image.name} is "
                f"{image.shape[1]}x{image.shape[0]}"
            )
        return image, mask

    def read_mask(self, path: Path) -> np.ndarray:
        """A mask file as class indices, checked against the dataset's classes (DataError otherwise)."""
        mask = read_mask(path, colours=self.colours if self.extra.get("colour_masks") else None)
        if self.binary_255:
            mask = np.where(mask == 255, 1, mask).astype(np.uint8)
        check_mask_values(mask, path, self.num_classes, self.ignore_index)
        return mask

    def images(self) -> list[Path]:
        """The image paths, in the dataset's order."""
        return [s.image for s in self.samples]
