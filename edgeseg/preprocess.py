"""The one path from a BGR frame to a model's input tensor, used by calibration, eval and the runtime.

frame (BGR uint8, any size) -> fit to the model's input size (stretch or letterbox) -> channel order ->
normalise (real = (pixel - mean) / std) -> quantise with the input tensor's own dtype, scale and zero point.
Sizes are (height, width) in numpy order; they become (width, height) only at the OpenCV call.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import cv2
import numpy as np

from edgeseg.spec import ModelSpec
from edgeseg.tensors import TensorInfo

LETTERBOX_FILL = 114  # grey, as detection tools pad


@dataclass(frozen=True)
class Geometry:
    """Where a frame landed inside the model's input: the content box (y0, x0, h, w) in input pixels."""

    frame_hw: tuple[int, int]
    input_hw: tuple[int, int]
    box: tuple[int, int, int, int]


def fit(frame: np.ndarray, input_hw: tuple[int, int], mode: str = "stretch") -> tuple[np.ndarray, Geometry]:
    """Resize a frame to `input_hw`, stretching or letterboxing (aspect kept, grey padding)."""
    fh, fw = frame.shape[:2]
    ih, iw = input_hw
    if mode == "stretch":
        out = frame if (fh, fw) == (ih, iw) else resize_to(frame, ih, iw)
        return out, Geometry((fh, fw), (ih, iw), (0, 0, ih, iw))
    if mode != "letterbox":
        raise ValueError(f"unknown resize mode {mode!r}")
    s = min(ih / fh, iw / fw)
    h, w = max(1, round(fh * s)), max(1, round(fw * s))
    y0, x0 = (ih - h) // 2, (iw - w) // 2
    out = np.full((ih, iw) + frame.shape[2:], LETTERBOX_FILL, dtype=frame.dtype)
    out[y0 : y0 + h, x0 : x0 + w] = resize_to(frame, h, w)
    return out, Geometry((fh, fw), (ih, iw), (y0, x0, h, w))


def resize_to(image: np.ndarray, h: int, w: int) -> np.ndarray:
    """An image at h x w: bilinear (what training uses), or, when it shrinks by 2 or more, averaged (INTER_AREA)
    against aliasing. OpenCV averages fast only by whole factors (640x480 to 256x192 took 0.6 ms, to 320x240
    0.05 ms), so a big shrink goes by the largest whole factor that divides the image, then bilinear (or averaged
    again) for what is left: 0.1 ms for that frame, within a grey level or two of the one-step average."""
    fh, fw = image.shape[:2]
    if h * 2 > fh or w * 2 > fw:
        return cv2.resize(image, (w, h), interpolation=cv2.INTER_LINEAR)
    ky, kx = _whole_factor(fh, h), _whole_factor(fw, w)
    if ky > 1 or kx > 1:
        image = cv2.resize(image, (fw // kx, fh // ky), interpolation=cv2.INTER_AREA)
        fh, fw = image.shape[:2]
    if (fh, fw) == (h, w):
        return image
    big = h * 2 <= fh and w * 2 <= fw
    return cv2.resize(image, (w, h), interpolation=cv2.INTER_AREA if big else cv2.INTER_LINEAR)


def _whole_factor(size: int, target: int) -> int:
    """The largest whole k <= size / target that divides size (1 when none does)."""
    for k in range(max(1, size // max(target, 1)), 1, -1):
        if size % k == 0:
            return k
    return 1


def quantize(x: np.ndarray, t: TensorInfo) -> np.ndarray:
    """Real values -> the tensor's dtype, with its own scale and zero point (float tensors pass through)."""
    if t.dtype == np.float32:
        return x.astype(np.float32, copy=False)
    info = np.iinfo(t.dtype)
    if not t.scale:  # an integer tensor without quantisation parameters takes the values as they are
        return np.clip(np.round(x), info.min, info.max).astype(t.dtype)
    return np.clip(np.round(x / t.scale + t.zero_point), info.min, info.max).astype(t.dtype)


def dequantize(q: np.ndarray, t: TensorInfo) -> np.ndarray:
    """A tensor's integers -> the real values they stand for (float and unquantised tensors pass through)."""
    if not t.quantized:
        return q.astype(np.float32, copy=False)
    return (q.astype(np.float32) - t.zero_point) * t.scale


def to_tensor(image: np.ndarray, spec: ModelSpec, t: TensorInfo) -> np.ndarray:
    """An image already at the input size (BGR uint8) -> a [1, H, W, 3] tensor for the input `t`."""
    # OpenCV swaps the channels in one pass (5 us at 256x192); numpy's reversed view made every later step
    # read memory backwards (0.14 ms for this function)
    img = cv2.cvtColor(np.ascontiguousarray(image), cv2.COLOR_BGR2RGB) if spec.channel_order == "RGB" else image
    # Our own int8 models take raw pixels with scale 1: q = pixel (uint8) or pixel - 128 (int8), which needs no
    # float maths at all
    shortcut = _raw_pixels(tuple(spec.mean), tuple(spec.std), t.dtype, t.scale, t.zero_point)
    if shortcut == "uint8":
        return np.ascontiguousarray(img)[None]
    if shortcut == "int8":
        return np.bitwise_xor(img, np.uint8(0x80)).view(np.int8)[None]
    mean, std = np.asarray(spec.mean, np.float32), np.asarray(spec.std, np.float32)
    real = (img.astype(np.float32) - mean) / std
    return quantize(real, t)[None]


@functools.lru_cache(maxsize=64)
def _raw_pixels(mean: tuple, std: tuple, dtype: np.dtype, scale: float, zero_point: int) -> str | None:
    """ "uint8" or "int8" where the input's quantisation makes q the pixel itself (or pixel - 128), else None.
    Asked once per model, not per frame: np.allclose costs about 15 us a call, a third of this stage's own work."""
    if dtype == np.float32 or not scale:
        return None
    std_ = np.asarray(std, np.float64) * scale
    a, b = 1.0 / std_, zero_point - np.asarray(mean, np.float64) / std_
    if not np.allclose(a, 1.0):
        return None
    if dtype == np.uint8 and np.allclose(b, 0.0):
        return "uint8"
    if dtype == np.int8 and np.allclose(b, -128.0):
        return "int8"
    return None


def preprocess(frame: np.ndarray, spec: ModelSpec, t: TensorInfo) -> tuple[np.ndarray, Geometry]:
    """BGR frame of any size -> (input tensor for `t`, where the frame landed in it)."""
    if frame.ndim == 2:
        frame = cv2.cvtColor(frame, cv2.COLOR_GRAY2BGR)
    elif frame.shape[2] == 4:
        frame = cv2.cvtColor(frame, cv2.COLOR_BGRA2BGR)
    fitted, geom = fit(frame, spec.input_hw, spec.resize)
    return to_tensor(fitted, spec, t), geom


def restore_mask(mask: np.ndarray, geom: Geometry) -> np.ndarray:
    """A mask at the model's output size -> the frame's own size (letterbox padding cut away, nearest)."""
    ih, iw = geom.input_hw
    mh, mw = mask.shape[:2]
    y0, x0, h, w = geom.box
    if (mh, mw) != (ih, iw):  # an output smaller than the input: scale the content box onto it
        sy, sx = mh / ih, mw / iw
        y0, x0, h, w = int(y0 * sy), int(x0 * sx), max(1, round(h * sy)), max(1, round(w * sx))
    crop = mask[y0 : y0 + h, x0 : x0 + w]
    fh, fw = geom.frame_hw
    if crop.shape[:2] == (fh, fw):
        return np.ascontiguousarray(crop)
    if fh <= crop.shape[0] or crop.ndim != 2:
        return cv2.resize(crop, (fw, fh), interpolation=cv2.INTER_NEAREST)
    # Enlarging: OpenCV's nearest along each row, then whole rows repeated by numpy, the same pixels as one
    # cv2.resize at a quarter of its time (0.02 against 0.085 ms for 128x96 to 640x480: OpenCV picks every
    # output pixel one by one, where a row repeated is one copy)
    wide = crop if crop.shape[1] == fw else cv2.resize(crop, (fw, crop.shape[0]), interpolation=cv2.INTER_NEAREST)
    return wide[_nearest_rows(crop.shape[0], fh)]


@functools.lru_cache(maxsize=64)
def _nearest_rows(src: int, dst: int) -> np.ndarray:
    """The source row of each of `dst` output rows, as OpenCV's INTER_NEAREST picks them: floor(y * src / dst)."""
    step = 1.0 / (dst / src)  # OpenCV's own two roundings: the inverse of its scale, not src / dst
    rows = np.minimum(np.floor(np.arange(dst) * step).astype(np.intp), src - 1)
    rows.flags.writeable = False
    return rows


def restore_scores(scores: np.ndarray, geom: Geometry) -> np.ndarray:
    """Per-class scores [h, w, C] at the model's output size -> the frame's own size (bilinear)."""
    ih, iw = geom.input_hw
    mh, mw = scores.shape[:2]
    y0, x0, h, w = geom.box
    if (mh, mw) != (ih, iw):
        sy, sx = mh / ih, mw / iw
        y0, x0, h, w = int(y0 * sy), int(x0 * sx), max(1, round(h * sy)), max(1, round(w * sx))
    crop = np.ascontiguousarray(scores[y0 : y0 + h, x0 : x0 + w], dtype=np.float32)
    fh, fw = geom.frame_hw
    if crop.shape[:2] != (fh, fw):
        channels = [cv2.resize(crop[..., c], (fw, fh), interpolation=cv2.INTER_LINEAR) for c in range(crop.shape[2])]
        crop = np.stack(channels, axis=-1)
    return crop
