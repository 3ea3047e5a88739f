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

With a teacher's input size (`train --teacher-view frame`), a third array: the teacher's view of the same crop,
resampled from the full-resolution frame at the teacher's size (not the student's crop resized up), flipped and
jittered alike. A 480x352 teacher then sees a 256x192 student's crop with the detail the frame has.
"""

from __future__ import annotations

import cv2
import numpy as np

from edgeseg.preprocess import LETTERBOX_FILL
from edgeseg.training.config import Augment

IGNORE = 255  # the label of pixels that are not scored: void, and padding
PAD_PIXEL = float(LETTERBOX_FILL)  # the grey inference letterboxes with


def augment_pair(
    rgb: np.ndarray,
    mask: np.ndarray,
    input_hw: tuple[int, int],
    augment: Augment,
    rng: np.random.Generator,
    teacher_hw: tuple[int, int] | None = None,
) -> tuple[np.ndarray, ...]:
    """One training pair at the model's input size: (float32 RGB 0..255 of shape (h, w, 3), uint8 labels with
    IGNORE where nothing is known); with `teacher_hw`, also the teacher's view of the same crop (float32 RGB of
    shape (*teacher_hw, 3)). The random choices are the same with and without it.

    Args:
        rgb: the image, RGB uint8, any size.
        mask: its labels, uint8 of the image's height and width, IGNORE for pixels not scored.
        input_hw: the model's (height, width).
        augment: the scale range, flip and colour jitter.
        rng: where the random choices come from (one per batch, seeded by the run's seed, epoch and batch).
        teacher_hw: a teacher's (height, width), or None for no teacher's view.
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
    flip = augment.flip and rng.random() < 0.5
    jitter = jitter_draw(augment.jitter, rng) if augment.jitter else None
    views = [img]
    if teacher_hw is not None:
        # the crop's box in the scaled image, (x0, y0, w, h), is (x0, y0, w, h) / (sw, sh) of the frame
        views.append(crop_view(rgb, (x0 / sw, y0 / sh, w / sw, h / sh), teacher_hw))
    if flip:
        views, lab = [v[:, ::-1] for v in views], lab[:, ::-1]
    if jitter is not None:
        views = [jitter_apply(v, jitter) for v in views]
    img = views[0]
    out = (np.ascontiguousarray(img), np.ascontiguousarray(lab))
    return out if teacher_hw is None else (*out, np.ascontiguousarray(views[1]))


def crop_view(rgb: np.ndarray, box: tuple[float, float, float, float], out_hw: tuple[int, int]) -> np.ndarray:
    """A box of the frame, (x, y, width, height) as fractions of its width and height (reaching past the frame
    where the student's crop was padded), resampled to out_hw (float32 RGB). Pixels whose centre lies past the
    frame's right or bottom edge are the padding grey, as in the student's crop; near the edges the frame's own
    edge pixels are repeated, as the student's resize does, not blended with the grey.

    Args:
        rgb: the frame, RGB uint8.
        box: the region, fractions of the frame (may reach beyond 1 on the right and bottom).
        out_hw: the view's (height, width).
    """
    oh, ow = out_hw
    bx, by, bw, bh = box
    fh, fw = rgb.shape[:2]
    # bilinear, as the student's crop and the teacher's own training frames were resized; view pixel (u, v) has
    # its centre at frame x = (bx + (u + 0.5) / ow * bw) * fw - 0.5, and the same for y
    ax, ay = bw * fw / ow, bh * fh / oh
    to_frame = np.array([[ax, 0.0, bx * fw + 0.5 * ax - 0.5], [0.0, ay, by * fh + 0.5 * ay - 0.5]])
    view = cv2.warpAffine(
        rgb,
        to_frame,
        (ow, oh),
        flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
        borderMode=cv2.BORDER_REPLICATE,
    ).astype(np.float32)
    past_x = bx + (np.arange(ow) + 0.5) / ow * bw >= 1.0  # where the student's crop is padding
    past_y = by + (np.arange(oh) + 0.5) / oh * bh >= 1.0
    view[:, past_x] = PAD_PIXEL
    view[past_y] = PAD_PIXEL
    return view


def jitter_draw(j: float, rng: np.random.Generator) -> tuple[float, float, float, float]:
    """Random colour changes of up to j: (brightness shift, contrast factor, hue shift in degrees, saturation
    factor)."""
    return (
        rng.uniform(-j / 2, j / 2),
        rng.uniform(1 - j, 1 + j),
        rng.uniform(-j / 10, j / 10) * 360.0,
        rng.uniform(1 - j, 1 + j),
    )


def jitter_apply(img: np.ndarray, change: tuple[float, float, float, float]) -> np.ndarray:
    """jitter_draw's changes applied to a float32 RGB 0..255 image (the same out)."""
    brightness, contrast, hue, saturation = change
    x = img / 255.0 + brightness
    mean = x.mean(axis=(0, 1), keepdims=True)
    x = np.clip((x - mean) * contrast + mean, 0.0, 1.0)  # contrast, per channel as tf.image
    hsv = cv2.cvtColor(x.astype(np.float32), cv2.COLOR_RGB2HSV)  # H in degrees 0..360, S and V 0..1
    hsv[..., 0] = (hsv[..., 0] + hue) % 360.0
    hsv[..., 1] = np.clip(hsv[..., 1] * saturation, 0.0, 1.0)
    return np.clip(cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB), 0.0, 1.0) * 255.0
