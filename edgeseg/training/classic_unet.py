"""The classic U-Net (Ronneberger et al.), with no pretrained encoder: `--backbone none`.

Four levels: two 3x3 convolutions (batch norm, ReLU6) a level, 64, 128, 256 and 512 filters at `--alpha 1.0`
and scaled by alpha (0.25 gives 16 to 128: an edge-sized one), 2x2 max pooling down, a 2x2 transposed
convolution up (with a bias and nothing folded after it, so the converter keeps TRANSPOSE_CONV at a version Edge
TPU compiler 16 maps), the skip concatenated, two 3x3 convolutions, and 1x1 logits at the input size. Input is
raw RGB 0..255, scaled to [-1, 1] inside.
"""

from __future__ import annotations

import keras
from keras import layers

LEVEL_FILTERS = (64, 128, 256, 512)


def _conv_bn_relu(x, filters: int, name: str):
    x = layers.Conv2D(filters, 3, padding="same", use_bias=False, name=name)(x)
    x = layers.BatchNormalization(name=f"{name}_bn")(x)
    return layers.ReLU(6.0, name=f"{name}_relu")(x)


def build_classic_unet(num_classes: int, input_hw: tuple[int, int], alpha: float = 1.0, dropout: float = 0.1):
    """The classic U-Net: [B, H, W, 3] RGB 0..255 in, [B, H, W, classes] logits out.

    Args:
        num_classes: the logits' channels.
        input_hw: (height, width), multiples of 8.
        alpha: scales every level's filters (64, 128, 256, 512 at 1.0).
        dropout: before the logits.
    """
    widths = [max(4, round(f * alpha)) for f in LEVEL_FILTERS]
    inputs = keras.Input(shape=(*input_hw, 3), name="image")
    x = layers.Rescaling(1.0 / 127.5, offset=-1.0, name="scale_pixels")(inputs)
    skips = []
    for level, w in enumerate(widths[:-1], 1):
        x = _conv_bn_relu(_conv_bn_relu(x, w, f"down{level}a"), w, f"down{level}b")
        skips.append(x)
        x = layers.MaxPooling2D(2, name=f"down{level}_pool")(x)
    x = _conv_bn_relu(_conv_bn_relu(x, widths[-1], "bottom_a"), widths[-1], "bottom_b")
    for level in range(len(skips), 0, -1):
        w = widths[level - 1]
        x = layers.Conv2DTranspose(w, 2, strides=2, name=f"up{level}_tconv")(x)
        x = layers.Concatenate(name=f"up{level}_concat")([x, skips[level - 1]])
        x = _conv_bn_relu(_conv_bn_relu(x, w, f"up{level}a"), w, f"up{level}b")
    if dropout:
        x = layers.Dropout(dropout, name="head_dropout")(x)
    outputs = layers.Conv2D(num_classes, 1, name="head_logits", dtype="float32")(x)
    return keras.Model(inputs, outputs, name="unet_classic")
