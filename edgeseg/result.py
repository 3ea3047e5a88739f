"""Result: what one frame through a model gives a program: the class mask at the frame's size, optional
per-class confidence, the stage timings, and the class names and colours to draw it with; and to_dict(), the
frame's result as JSON values, the one object that `edgeseg run`'s sinks (MQTT, JSON lines) and a script agree on."""

from __future__ import annotations

import base64
import time as _time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import numpy as np

from edgeseg.pixels import class_counts, shares
from edgeseg.spec import ModelSpec

if TYPE_CHECKING:
    from edgeseg.zones import Zones


def iso_utc(t: float) -> str:
    """Seconds since the epoch -> UTC ISO 8601 with milliseconds: 2025-01-31T12:00:00.123Z."""
    return datetime.fromtimestamp(t, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def encode_mask(mask: np.ndarray) -> dict:
    """The class-index mask as a lossless PNG (8-bit, 16-bit beyond 256 classes) in base64, with its size."""
    import cv2

    ok, buf = cv2.imencode(".png", mask)
    if not ok:  # pragma: no cover - OpenCV always has its PNG encoder
        raise ValueError("cannot encode the mask as PNG")
    h, w = mask.shape[:2]
    return {"format": "png", "width": w, "height": h, "data": base64.b64encode(buf.tobytes()).decode("ascii")}


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
        time: when the frame was captured, seconds since the epoch.
        source: the source's name (a camera, a file, a URL), as `run` names it.
        model: the model's file name.
        latency_ms: milliseconds from the frame's capture to this result (default: the sum of the timings).
        zones: the zones whose shares to_dict() reports (edgeseg.zones.Zones), or None.
        counts: the mask's pixels per class when already counted (the loop counts once for the legend and the
            result), else counted when asked for.
    """

    mask: np.ndarray
    frame: np.ndarray | None
    spec: ModelSpec
    timings: dict[str, float] = field(default_factory=dict)
    scores: np.ndarray | None = None
    index: int = 0
    time: float = field(default_factory=_time.time)
    source: str = ""
    model: str = ""
    latency_ms: float | None = None
    zones: Zones | None = None
    counts: np.ndarray | None = field(default=None, repr=False, compare=False)  # pixels per class, if known
    _zone_shares: dict | None = field(default=None, init=False, repr=False, compare=False)

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

    def class_shares(self) -> dict[str, float]:
        """Each class's share of the frame's pixels, 0..1, for every class of the model (summing to 1)."""
        if self.counts is None:
            self.counts = class_counts(self.mask, self.spec.num_classes)
        return shares(self.counts, self.spec.classes)

    def zone_shares(self) -> dict[str, dict[str, float]]:
        """Zone name -> each class's share of that zone's pixels ({} without zones); computed once."""
        if self._zone_shares is None:
            self._zone_shares = {} if self.zones is None else self.zones.shares(self.mask, self.spec.classes)
        return self._zone_shares

    def to_dict(self, mask: bool = False) -> dict:
        """The frame's result as JSON values: frame, time (UTC ISO 8601), source, model, latency_ms, classes
        (class -> share of the pixels), zones (zone -> class -> share) when there are zones, and with mask=True
        the mask itself (PNG, base64). What `edgeseg run --publish/--jsonl` sends for each frame."""
        latency = self.latency_ms if self.latency_ms is not None else sum(self.timings.values())
        d = {
            "frame": self.index,
            "time": iso_utc(self.time),
            "source": self.source,
            "model": self.model,
            "latency_ms": round(float(latency), 3),
            "classes": self.class_shares(),
        }
        if self.zones is not None:
            d["zones"] = self.zone_shares()
        if mask:
            d["mask"] = encode_mask(self.mask)
        return d

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
