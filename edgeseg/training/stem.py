"""Fitting the dense stem (edgeseg.training.backbones.dense_stem) to MobileNetV2's own, before training starts.

The dense stem replaces MobileNetV2's first layers, so the pretrained network after it would at first see
features it was never trained on. Trained from scratch with the rest, it cost nano 5 to 9 points of proxy mIoU
over the first half of a 30-epoch run. So, before the first epoch, the two new convolutions learn to reproduce
what the ImageNet stem hands to the rest (block_1's linear projection, 24 channels at stride 4) on the run's own
training frames: a regression of features, no labels, on any Keras backend. The rest then starts from inputs it
knows, as it does with the plain backbone.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from edgeseg.training.backbones import DENSE_STEM_JOIN

STEM_STEPS = 1000  # batches of 8: about 35 s at nano's 256x192 on 2 CPU cores (Zen 5)
STEM_BATCH = 8


def stem_layer_names() -> tuple[str, ...]:
    """The dense stem's layers with weights (convolutions and batch norms), as build_unet names them."""
    return tuple(f"encoder_stem{i}{part}" for i in (1, 2) for part in ("", "_bn"))


def fit_dense_stem(
    images: list[np.ndarray],
    input_hw: tuple[int, int],
    alpha: float,
    weights: str | Path,
    seed: int = 0,
    steps: int = STEM_STEPS,
    log: Callable[[str], None] = print,
    progress: Callable[[int, int], None] | None = None,
) -> dict[str, list[np.ndarray]]:
    """The dense stem's weights, fitted to MobileNetV2's ImageNet stem on `images` (RGB uint8, any size): layer
    name -> weights, for the layers of stem_layer_names().

    Args:
        images: the training frames (random crops of input_hw are taken, or the frame resized where smaller).
        input_hw: (height, width) of the crops.
        alpha: the backbone's width multiplier.
        weights: MobileNetV2's ImageNet weights file (or "imagenet").
        seed: the crops' and the initialisation's seed.
        steps: optimizer steps.
        log: where the one result line goes.
        progress: called with (steps done, steps).
    """
    import keras

    from edgeseg.training.backbones import dense_stem, scale_pixels

    keras.utils.set_random_seed(seed)
    teacher = imagenet_stem(input_hw, alpha, weights)
    inp = keras.Input((*input_hw, 3), name="image")
    _, out = dense_stem(scale_pixels("mobilenet_v2", inp), teacher.output.shape[-1])
    student = keras.Model(inp, out)
    for layer in student.layers:  # build_unet's momentum: the moving statistics follow within a few dozen steps
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.momentum = 0.9
    schedule = keras.optimizers.schedules.CosineDecay(3e-3, steps, alpha=0.02)
    student.compile(optimizer=keras.optimizers.Adam(schedule), loss="mse")
    rng = np.random.default_rng(seed)

    def batch():
        return np.stack([_crop(images[i], input_hw, rng) for i in rng.integers(0, len(images), STEM_BATCH)])

    t0 = time.monotonic()
    for step in range(steps):
        x = batch()
        student.train_on_batch(x, np.asarray(teacher.predict_on_batch(x)))
        if progress is not None and (step % 25 == 24 or step == steps - 1):
            progress(step + 1, steps)
    # how well it does what it is for, as the model will run it (moving statistics), on crops it did not fit
    errors, variances = [], []
    for _ in range(4):
        x = batch()
        target = np.asarray(teacher.predict_on_batch(x))
        errors.append(np.mean((np.asarray(student.predict_on_batch(x)) - target) ** 2))
        variances.append(np.var(target))
    explained = 1 - float(np.mean(errors)) / max(float(np.mean(variances)), 1e-12)
    log(
        f"dense stem: fitted to MobileNetV2's ImageNet stem on the training frames ({steps} steps, "
        f"{time.monotonic() - t0:.0f} s): it explains {100 * explained:.0f}% of the stem's feature variance"
    )
    return {layer.name: layer.get_weights() for layer in student.layers if layer.name in stem_layer_names()}


def imagenet_stem(input_hw: tuple[int, int], alpha: float, weights: str | Path):
    """MobileNetV2's ImageNet stem as a model: RGB 0..255 in, what it hands DENSE_STEM_JOIN out (the target the
    dense stem is fitted to)."""
    import keras

    from edgeseg.training.backbones import DENSE_STEM, backbone, scale_pixels

    base = backbone(DENSE_STEM, input_hw, alpha, weights)  # MobileNetV2 whole; named so its errors say the option
    inp = keras.Input((*input_hw, 3), name="image")
    stem = keras.Model(base.input, base.get_layer(DENSE_STEM_JOIN).input)
    return keras.Model(inp, stem(scale_pixels("mobilenet_v2", inp)))


def _crop(image: np.ndarray, hw: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
    """A random hw crop of an RGB frame (the frame resized to cover hw first where it is smaller), flipped at
    random, as float32."""
    import cv2

    h, w = hw
    ih, iw = image.shape[:2]
    if ih < h or iw < w:
        s = max(h / ih, w / iw)
        image = cv2.resize(image, (max(w, round(iw * s)), max(h, round(ih * s))), interpolation=cv2.INTER_LINEAR)
        ih, iw = image.shape[:2]
    y, x = rng.integers(0, ih - h + 1), rng.integers(0, iw - w + 1)
    crop = image[y : y + h, x : x + w]
    return (crop[:, ::-1] if rng.random() < 0.5 else crop).astype(np.float32)
