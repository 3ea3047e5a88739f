"""Training augmentation in numpy and OpenCV: one (image, mask) pair -> the model's input size, the same on every
Keras backend. No TensorFlow, no Keras: the input pipeline (edgeseg.training.data) calls it from its worker threads,
and OpenCV releases the GIL while it resizes and converts colours, so the threads run side by side.

What it does, in order (the recipe the tf.data pipeline had, written once for all backends):
1. a random scale s in Augment.scale: the pair is resized to round(s x the input size), the image bilinear and
   the mask nearest;
2. padding to at least the input size, bottom and right: the image with the grey the runtime letterboxes with,
   the mask with IGNORE (those pixels weigh 0);
3. a random crop to the input size, and a horizontal flip half of the time;
4. colour jitter j: brightness +-j/2, contrast and saturation x(1 +- j), hue +-j/10 of a turn, clipped to 0..255.
"""

from __future__ import annotations

import cv2
import numpy as np

from edgeseg.preprocess import LETTERBOX_FILL
from edgeseg.training.config import Augment

IGNORE = 255  # the label of pixels that are not scored: void, and padding
PAD_PIXEL = float(LETTERBOX_FILL)  # the grey inference letterboxes with


def augment_pair(
    rgb: np.ndarray, mask: np.ndarray, input_hw: tuple[int, int], augment: Augment, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """One training pair at the model's input size: (float32 RGB 0..255 of shape (h, w, 3), uint8 labels with
    IGNORE where nothing is known).

    Args:
        rgb: the image, RGB uint8, any size.
        mask: its labels, uint8 of the image's height and width, IGNORE for pixels not scored.
        input_hw: the model's (height, width).
        augment: the scale range, flip and colour jitter.
        rng: where the random choices come from (one per batch, seeded by the run's seed, epoch and batch).
    """
    h, w = input_hw
    s = rng.uniform(*augment.scale) if augment.scale[0] != augment.scale[1] else augment.scale[0]
    sh, sw = max(1, round(h * s)), max(1, round(w * s))
    img = cv2.resize(rgb, (sw, sh), interpolation=cv2.INTER_LINEAR).astype(np.float32)
    lab = cv2.resize(mask, (sw, sh), interpolation=cv2.INTER_NEAREST)
    if sh < h or sw < w:
        pad = ((0, max(h - sh, 0)), (0, max(w - sw, 0)))
        img = np.pad(img, (*pad, (0, 0)), constant_values=PAD_PIXEL)
        lab = np.pad(lab, pad, constant_values=IGNORE)
    y0 = int(rng.integers(0, img.shape[0] - h + 1))
    x0 = int(rng.integers(0, img.shape[1] - w + 1))
    img, lab = img[y0 : y0 + h, x0 : x0 + w], lab[y0 : y0 + h, x0 : x0 + w]
    if augment.flip and rng.random() < 0.5:
        img, lab = img[:, ::-1], lab[:, ::-1]
    if augment.jitter:
        img = jitter_colours(img, augment.jitter, rng)
    return np.ascontiguousarray(img), np.ascontiguousarray(lab)


def jitter_colours(img: np.ndarray, j: float, rng: np.random.Generator) -> np.ndarray:
    """Brightness, contrast, saturation and hue changed at random by up to j (float32 RGB 0..255 in and out)."""
    x = img / 255.0 + rng.uniform(-j / 2, j / 2)  # brightness
    mean = x.mean(axis=(0, 1), keepdims=True)
    x = np.clip((x - mean) * rng.uniform(1 - j, 1 + j) + mean, 0.0, 1.0)  # contrast, per channel as tf.image
    hsv = cv2.cvtColor(x.astype(np.float32), cv2.COLOR_RGB2HSV)  # H in degrees 0..360, S and V 0..1
    hsv[..., 0] = (hsv[..., 0] + rng.uniform(-j / 10, j / 10) * 360.0) % 360.0
    hsv[..., 1] = np.clip(hsv[..., 1] * rng.uniform(1 - j, 1 + j), 0.0, 1.0)
    return np.clip(cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB), 0.0, 1.0) * 255.0
