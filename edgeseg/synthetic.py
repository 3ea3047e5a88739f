"""A built-in default data set: synthetic scenes, so the demo and the tests need no download.

SYNTHETIC DATA: each scene is a textured, noisy background (smooth colour gradient, blotches, stripes,
sensor noise) with a few shapes drawn on it: discs, boxes, triangles and bars, each class with its own
colour family but jittered colours and sizes, partly occluding one another. Deterministic for a seed.
It proves the plumbing (train, convert, eval, run); it says nothing about accuracy on real scenes.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from edgeseg.errors import OutputError
from edgeseg.io import atomic_path, atomic_write_text, write_image

CLASSES = ("background", "disc", "box", "triangle", "bar")
# RGB, for overlays: each far from the colour its shapes are drawn in (_BASE_BGR), so that an overlay shows the
# prediction and does not look like the input (red discs show cyan, green boxes magenta, yellow triangles blue,
# blue bars orange)
COLOURS = ((0, 0, 0), (0, 230, 230), (230, 0, 230), (40, 70, 255), (255, 150, 0))
# Base BGR colour of each shape class; every shape jitters it.
_BASE_BGR = {1: (60, 60, 200), 2: (70, 170, 60), 3: (40, 200, 220), 4: (200, 120, 30)}
DEFAULT_HW = (120, 160)  # height, width: non-square on purpose


@dataclass
class Shape:
    """One synthetic object: class, centre, size, angle, colour, and its drift and spin per frame."""

    cls: int
    x: float  # centre, pixels
    y: float
    size: float
    angle: float
    colour: tuple[int, int, int]
    vx: float = 0.0
    vy: float = 0.0
    spin: float = 0.0


def background(rng: np.random.Generator, hw: tuple[int, int]) -> np.ndarray:
    """A smooth background of colour gradients and blotches (float BGR, `hw`), the scenes' road and sky."""
    h, w = hw
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    c0, c1 = rng.uniform(40, 200, 3), rng.uniform(40, 200, 3)
    t = (xx * rng.uniform(-1, 1) + yy * rng.uniform(-1, 1)) / max(h, w)
    t = (t - t.min()) / max(float(t.max() - t.min()), 1e-6)
    img = c0[None, None, :] * (1 - t[..., None]) + c1[None, None, :] * t[..., None]
    blotches = cv2.resize(
        rng.normal(0, 30, (max(2, h // 16), max(2, w // 16), 3)).astype(np.float32),
        (w, h),
        interpolation=cv2.INTER_CUBIC,
    )
    img += blotches
    period = rng.uniform(6, 20)
    img += 12 * np.sin((xx * math.cos(rng.uniform(0, math.pi)) + yy) / period)[..., None]
    return img


def _jitter(rng: np.random.Generator, cls: int) -> tuple[int, int, int]:
    base = np.array(_BASE_BGR[cls], np.float32)
    return tuple(int(v) for v in np.clip(base + rng.normal(0, 22, 3), 0, 255))


def random_shapes(rng: np.random.Generator, hw: tuple[int, int], n: int | None = None) -> list[Shape]:
    """`n` (default: 2 to 5) random objects of the synthetic classes placed inside `hw`."""
    h, w = hw
    n = int(rng.integers(2, 6)) if n is None else n
    out = []
    for _ in range(n):
        cls = int(rng.integers(1, len(CLASSES)))
        size = float(rng.uniform(0.08, 0.22) * min(h, w) * (1.6 if cls == 4 else 1.0))
        out.append(
            Shape(
                cls,
                float(rng.uniform(0, w)),
                float(rng.uniform(0, h)),
                size,
                float(rng.uniform(0, 180)),
                _jitter(rng, cls),
                float(rng.normal(0, 1.2)),
                float(rng.normal(0, 1.0)),
                float(rng.normal(0, 2.0)),
            )
        )
    return out


def _polygon(s: Shape) -> np.ndarray | None:
    a = math.radians(s.angle)
    if s.cls == 2:  # box
        pts = [(-1, -0.75), (1, -0.75), (1, 0.75), (-1, 0.75)]
    elif s.cls == 3:  # triangle
        pts = [(0, -1.15), (1.0, 0.6), (-1.0, 0.6)]
    elif s.cls == 4:  # bar
        pts = [(-1, -0.18), (1, -0.18), (1, 0.18), (-1, 0.18)]
    else:
        return None
    c, si = math.cos(a), math.sin(a)
    return np.array(
        [(s.x + s.size * (px * c - py * si), s.y + s.size * (px * si + py * c)) for px, py in pts], dtype=np.float32
    )


def render(bg: np.ndarray, shapes: list[Shape], rng: np.random.Generator, noise: float = 8.0):
    """Draw shapes over a background (later shapes occlude earlier ones); add noise. -> (BGR, mask).

    Args:
        bg: the background (float BGR).
        shapes: the objects, drawn in order.
        rng: the random generator for the noise.
        noise: the noise's standard deviation (pixel values).
    """
    h, w = bg.shape[:2]
    img = bg.copy()
    mask = np.zeros((h, w), np.uint8)
    shift = 4  # sub-pixel drawing: coordinates carry 4 fractional bits
    one = 1 << shift
    for s in shapes:
        m = np.zeros((h, w), np.uint8)
        poly = _polygon(s)
        if poly is None:
            cv2.circle(m, (int(s.x * one), int(s.y * one)), int(s.size * one), 1, -1, cv2.LINE_8, shift)
        else:
            cv2.fillPoly(m, [np.round(poly * one).astype(np.int32)], 1, cv2.LINE_8, shift)
        ys, xs = np.nonzero(m)
        shade = 1.0 + 0.25 * (xs / w * 2 - 1) * math.cos(math.radians(s.angle))  # a light from the side
        img[ys, xs] = np.array(s.colour, np.float32)[None, :] * shade[:, None]
        mask[ys, xs] = s.cls
    img += rng.normal(0, noise, img.shape).astype(np.float32)
    return np.clip(img, 0, 255).astype(np.uint8), mask


def scene(seed: int, hw: tuple[int, int] = DEFAULT_HW) -> tuple[np.ndarray, np.ndarray]:
    """One synthetic (BGR image, mask) pair; the same seed always gives the same pair."""
    rng = np.random.default_rng(seed)
    bg = background(rng, hw)
    return render(bg, random_shapes(rng, hw), rng)


def write_dataset(root: Path, count: int = 300, hw: tuple[int, int] = DEFAULT_HW, seed: int = 0, progress=None) -> Path:
    """Write `count` scenes in the generic layout (images/, masks/, classes.json) under `root`.

    Args:
        root: the dataset folder (created).
        count: how many scenes.
        hw: each scene's (height, width).
        seed: scenes are a function of the seed and their number: the same seed writes the same dataset.
        progress: called with (done, total) after each scene.
    """
    root = Path(root)
    (root / "images").mkdir(parents=True, exist_ok=True)
    (root / "masks").mkdir(parents=True, exist_ok=True)
    for i in range(count):
        img, mask = scene(seed * 1_000_003 + i, hw)
        name = f"scene_{i:05d}.png"
        write_image(root / "images" / name, img)
        write_image(root / "masks" / name, mask)
        if progress:
            progress(i + 1, count)
    info = {
        "classes": list(CLASSES),
        "colours": [list(c) for c in COLOURS],
        "ignore_index": None,
        "source": "edgeseg synthetic scenes (generated, not real data)",
        "seed": seed,
    }
    # No colours in the mask files: colour masks are RGB, ours are index PNGs. Keep colours for overlays only.
    info["colours_are_for_display"] = True
    atomic_write_text(root / "classes.json", json.dumps(info, indent=2) + "\n")
    return root


def write_video(
    path: Path, frames: int = 120, hw: tuple[int, int] = DEFAULT_HW, fps: float = 30.0, seed: int = 1
) -> Path:
    """A synthetic clip: shapes drifting and spinning over a slowly moving background (mp4v in .mp4).

    Args:
        path: the video file to write.
        frames: how many frames.
        hw: the frames' (height, width).
        fps: the frame rate the container declares.
        seed: the same seed writes the same clip.
    """
    path = Path(path)
    rng = np.random.default_rng(seed)
    h, w = hw
    big = background(rng, (h + 40, w + 40))
    shapes = random_shapes(rng, hw, n=5)
    with atomic_path(path) as tmp:
        writer = cv2.VideoWriter(str(tmp), cv2.VideoWriter_fourcc(*"mp4v"), fps, (w, h))
        if not writer.isOpened():
            raise OutputError(f"{path}: OpenCV cannot write mp4v video here")
        try:
            for t in range(frames):
                ox = int(20 + 18 * math.sin(t / 40))
                oy = int(20 + 18 * math.cos(t / 55))
                for s in shapes:  # drift, wrapping around the edges
                    s.x, s.y, s.angle = (s.x + s.vx) % w, (s.y + s.vy) % h, s.angle + s.spin
                img, _ = render(big[oy : oy + h, ox : ox + w], shapes, rng)
                writer.write(img)
        finally:
            writer.release()
    return path
