"""What the user sees: the mask blended over the frame, the mask alone, or both side by side, with a class
legend and a HUD. BGR throughout; colours come from the model's spec."""

from __future__ import annotations

import numpy as np

from edgeseg.choices import VIEWS
from edgeseg.overlay import blend, classes_present, colourise, draw_hud, draw_legend, palette_bgr
from edgeseg.spec import ModelSpec
from edgeseg.zones import Zones


class Renderer:
    """Draws one frame's result: the overlay, the mask alone, or frame and overlay side by side, with the legend and
    the HUD.

    Args:
        spec: the model's spec (class names and colours).
        view: one of edgeseg.choices.VIEWS.
        alpha: the mask's opacity over the frame.
        legend: draw the classes present.
        hud: draw the HUD lines.
        zones: outline these zones, with their names (over the overlay half of the side-by-side view).
    """

    def __init__(
        self,
        spec: ModelSpec,
        view: str = "overlay",
        alpha: float = 0.5,
        legend: bool = True,
        hud: bool = True,
        zones: Zones | None = None,
    ):
        if view not in VIEWS:
            raise ValueError(f"unknown view {view!r}")
        self.spec, self.view, self.alpha, self.legend, self.hud = spec, view, alpha, legend, hud
        self.zones = zones
        self.lut = palette_bgr(spec)

    def __call__(
        self, frame: np.ndarray, mask: np.ndarray, hud_lines: list[str] = (), counts: np.ndarray | None = None
    ) -> np.ndarray:
        """The frame drawn as the view asks, with the legend of the classes present (from `counts`, the mask's
        pixels per class, when the caller has them) and the HUD lines."""
        if self.view == "overlay":
            out = blend(frame, mask, self.lut, self.alpha)
        elif self.view == "mask":
            out = colourise(mask, self.lut)
        else:
            out = np.hstack([frame, blend(frame, mask, self.lut, self.alpha)])
        if self.zones is not None:
            w = frame.shape[1]
            self.zones.draw(out, offset_x=w if self.view == "side-by-side" else 0, width=w)
        if self.legend:
            present = counts > 0 if counts is not None else classes_present(mask, self.spec.num_classes)
            draw_legend(out, self.spec, present)
        if self.hud and hud_lines:
            draw_hud(out, list(hud_lines))
        return out
