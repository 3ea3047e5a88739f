"""What the user sees: the mask blended over the frame, the mask alone, or both side by side, with a class
legend and a HUD. BGR throughout; colours come from the model's spec."""

from __future__ import annotations

import numpy as np

from edgeseg.choices import VIEWS
from edgeseg.overlay import blend, classes_present, colourise, draw_hud, draw_legend, palette_bgr
from edgeseg.spec import ModelSpec


class Renderer:
    """Draws one frame's result: the overlay, the mask alone, or frame and overlay side by side, with the legend and
    the HUD.

    Args:
        spec: the model's spec (class names and colours).
        view: one of edgeseg.choices.VIEWS.
        alpha: the mask's opacity over the frame.
        legend: draw the classes present.
        hud: draw the HUD lines.
    """

    def __init__(
        self, spec: ModelSpec, view: str = "overlay", alpha: float = 0.5, legend: bool = True, hud: bool = True
    ):
        if view not in VIEWS:
            raise ValueError(f"unknown view {view!r}")
        self.spec, self.view, self.alpha, self.legend, self.hud = spec, view, alpha, legend, hud
        self.lut = palette_bgr(spec)

    def __call__(self, frame: np.ndarray, mask: np.ndarray, hud_lines: list[str] = ()) -> np.ndarray:
        """The frame drawn as the view asks, with the legend of the classes present and the HUD lines."""
        if self.view == "overlay":
            out = blend(frame, mask, self.lut, self.alpha)
        elif self.view == "mask":
            out = colourise(mask, self.lut)
        else:
            out = np.hstack([frame, blend(frame, mask, self.lut, self.alpha)])
        if self.legend:
            draw_legend(out, self.spec, classes_present(mask, self.spec.num_classes))
        if self.hud and hud_lines:
            draw_hud(out, list(hud_lines))
        return out
