"""Result: what one frame through a model gives a program: the class mask at the frame's size, optional
per-class confidence, the stage timings, and the class names and colours to draw it with."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from edgeseg.spec import ModelSpec


@dataclass
class Result:
    """One segmented frame.

    Attributes:
        mask: H x W class indices (uint8; uint16 beyond 256 classes), at the frame's own size.
        frame: the BGR frame it came from (kept for overlay()), or None.
        spec: the model's spec: class names (`classes`), RGB colours (`colours`), input size.
        timings: milliseconds per stage: preprocess, invoke, postprocess.
        scores: H x W x C per-class confidence in 0..1 (float32), when asked for with scores=True and the
            model's output carries them (not an index-map model); else None.
        index: the frame's number in a stream (0 for a single predict()).
    """

    mask: np.ndarray
    frame: np.ndarray | None
    spec: ModelSpec
    timings: dict[str, float] = field(default_factory=dict)
    scores: np.ndarray | None = None
    index: int = 0

    @property
    def classes(self) -> tuple[str, ...]:
        """The class names, index by index."""
        return self.spec.classes

    @property
    def colours(self) -> tuple[tuple[int, int, int], ...]:
        """The classes' RGB colours, index by index."""
        return self.spec.colours

    def class_pixels(self) -> dict[str, int]:
        """Pixels of each class present in the mask, by class name."""
        counts = np.bincount(self.mask.ravel(), minlength=self.spec.num_classes)[: self.spec.num_classes]
        return {name: int(n) for name, n in zip(self.spec.classes, counts, strict=True) if n}

    def overlay(self, alpha: float = 0.5, legend: bool = True) -> np.ndarray:
        """The mask in the classes' colours blended over the frame (BGR), with a legend of the classes shown.

        Args:
            alpha: the mask's opacity, 0..1.
            legend: draw the names and colours of the classes present in the top-right corner.
        """
        from edgeseg.overlay import blend, classes_present, colourise, draw_legend, palette_bgr

        lut = palette_bgr(self.spec)
        out = colourise(self.mask, lut) if self.frame is None else blend(self.frame, self.mask, lut, alpha)
        if legend:
            draw_legend(out, self.spec, classes_present(self.mask, self.spec.num_classes))
        return out
