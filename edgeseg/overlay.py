"""Drawing: colourised masks, blends, a class legend and a HUD. BGR throughout; spec colours are RGB and are
flipped once, here."""

from __future__ import annotations

import cv2
import numpy as np

from edgeseg.pixels import class_counts
from edgeseg.spec import ModelSpec


def palette_bgr(spec: ModelSpec, size: int = 256) -> np.ndarray:
    """A [size, 3] uint8 BGR lookup table: class index -> colour (indices beyond the classes are black)."""
    lut = np.zeros((max(size, spec.num_classes), 3), np.uint8)
    lut[: spec.num_classes] = np.array(spec.colours, np.uint8)[:, ::-1]
    return lut


def colourise(mask: np.ndarray, lut: np.ndarray) -> np.ndarray:
    """Class mask -> BGR image. For uint8 masks OpenCV's colour-map lookup does it 13x faster than numpy
    fancy indexing (0.17 vs 2.3 ms at 640x480 here), with the same result."""
    if mask.dtype == np.uint8 and len(lut) == 256:
        return cv2.applyColorMap(mask, lut.reshape(256, 1, 3))
    return lut[np.minimum(mask, len(lut) - 1)]


def classes_present(mask: np.ndarray, num_classes: int) -> np.ndarray:
    """Which classes a mask shows (bool per class)."""
    return class_counts(mask, num_classes) > 0


def blend(frame: np.ndarray, mask: np.ndarray, lut: np.ndarray, alpha: float = 0.5) -> np.ndarray:
    """The mask in its classes' colours over the frame.

    Args:
        frame: BGR uint8.
        mask: class indices at the frame's size.
        lut: the BGR colour of each class (palette_bgr).
        alpha: the mask's opacity, 0..1.
    """
    colour = colourise(mask, lut)
    return cv2.addWeighted(frame, 1.0 - alpha, colour, alpha, 0.0)


def draw_legend(img: np.ndarray, spec: ModelSpec, present: np.ndarray | None = None, max_rows: int = 12) -> None:
    """Class swatches and names in the top-right corner (only the classes present, when given), drawn in place.

    Args:
        img: the BGR image to draw on.
        spec: the model's spec (names and colours).
        present: a boolean per class (classes_present), or None for every class.
        max_rows: at most this many classes.
    """
    idx = np.flatnonzero(present) if present is not None else np.arange(spec.num_classes)
    idx = [i for i in idx if i < spec.num_classes][:max_rows]
    if not idx:
        return
    scale = max(0.35, min(img.shape[:2]) / 900)
    row = int(22 * scale / 0.5)
    width = max(cv2.getTextSize(spec.classes[i], cv2.FONT_HERSHEY_SIMPLEX, scale, 1)[0][0] for i in idx) + row + 12
    x0 = img.shape[1] - width - 4
    cv2.rectangle(img, (x0 - 4, 2), (img.shape[1] - 2, 8 + row * len(idx)), (0, 0, 0), -1)
    for k, i in enumerate(idx):
        y = 6 + k * row
        r, g, b = spec.colours[i]
        cv2.rectangle(img, (x0, y), (x0 + row - 6, y + row - 6), (b, g, r), -1)
        cv2.rectangle(img, (x0, y), (x0 + row - 6, y + row - 6), (200, 200, 200), 1)  # black classes show too
        cv2.putText(
            img,
            spec.classes[i],
            (x0 + row, y + row - 8),
            cv2.FONT_HERSHEY_SIMPLEX,
            scale,
            (255, 255, 255),
            1,
            cv2.LINE_AA,
        )


def draw_text_box(img: np.ndarray, lines: list[str], origin: tuple[int, int] = (2, 2), scale: float = 0.5) -> None:
    """White text lines on a dark backing box (readable on a bright sky too), each line drawn once, in place.

    Args:
        img: the BGR image to draw on.
        lines: the text, a line each.
        origin: the box's top-left corner (x, y).
        scale: OpenCV's font scale.
    """
    if not lines:
        return
    font, thick = cv2.FONT_HERSHEY_SIMPLEX, 1
    sizes = [cv2.getTextSize(t, font, scale, thick) for t in lines]
    row = max(h + base for (_, h), base in sizes) + 4
    width = max(w for (w, _), _ in sizes) + 8
    x0, y0 = origin
    x1, y1 = min(img.shape[1] - 1, x0 + width), min(img.shape[0] - 1, y0 + row * len(lines) + 4)
    box = img[y0:y1, x0:x1]
    box[:] = (box.astype(np.uint16) * 2 // 5).astype(np.uint8)  # darken to 40%: the scene still shows through
    for k, text in enumerate(lines):
        baseline = y0 + 2 + row * (k + 1) - sizes[k][1] - 2
        cv2.putText(img, text, (x0 + 4, baseline), font, scale, (255, 255, 255), thick, cv2.LINE_AA)


def draw_hud(img: np.ndarray, lines: list[str]) -> None:
    """The live figures in the top-left corner, scaled to the frame."""
    draw_text_box(img, lines, scale=max(0.4, min(img.shape[:2]) / 800))
