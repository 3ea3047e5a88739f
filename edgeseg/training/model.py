"""build_unet: a MobileNet-backbone U-Net as a functional Keras model.

The model takes raw RGB pixels 0..255 and scales them inside the graph, so an int8/uint8 TFLite input is the
camera's pixels as they are. The decoder keeps to what the Edge TPU compiler maps: bilinear resizes (not
nearest UpSampling2D, which becomes TILE), depthwise-separable convolutions with BatchNorm after convolutions
only (never after a Conv2DTranspose, which folds into TRANSPOSE_CONV v4). Layer names are deterministic.
"""

from __future__ import annotations

from pathlib import Path

import keras
from keras import layers

from edgeseg.errors import EdgesegError

# For each backbone, the layers whose *input* is the skip feature at strides 2, 4, 8 and 16: the padding
# layer in front of each stride-2 depthwise convolution, which sees the block's expanded activation. These
# names are fixed by keras.applications; activation layers in MobileNetV3 are numbered by a global counter
# and are not. The stride-32 feature is the backbone's output.
SKIP_LAYERS = {
    "mobilenet_v2": ("block_1_pad", "block_3_pad", "block_6_pad", "block_13_pad"),
    "mobilenet_v3_small": ("expanded_conv_depthwise_pad", "expanded_conv_1_depthwise_pad",
                           "expanded_conv_3_depthwise_pad", "expanded_conv_8_depthwise_pad"),
    "mobilenet_v3_large": ("expanded_conv_1_depthwise_pad", "expanded_conv_3_depthwise_pad",
                           "expanded_conv_6_depthwise_pad", "expanded_conv_12_depthwise_pad"),
}
BACKBONES = tuple(SKIP_LAYERS)

# Decoder widths at strides 16, 8, 4, 2.
DECODERS = {
    "tiny": (64, 32, 24, 16),
    "small": (96, 64, 32, 24),
    "base": (128, 96, 64, 32),
    "large": (256, 128, 64, 48),
}


def _backbone(name: str, input_hw: tuple[int, int], alpha: float, weights: str | Path | None) -> keras.Model:
    shape = (*input_hw, 3)
    w = None if weights in (None, "none") else str(weights)
    if w not in (None, "imagenet") and not Path(w).is_file():
        raise EdgesegError(f"{w}: no such backbone weights file")
    # "imagenet": Keras downloads the weights by name (it loads the 224 ones for other input sizes).
    kwargs = dict(input_shape=shape, alpha=alpha, include_top=False, weights="imagenet" if w == "imagenet" else None)
    if name == "mobilenet_v2":
        model = keras.applications.MobileNetV2(**kwargs)
    elif name in ("mobilenet_v3_small", "mobilenet_v3_large"):
        ctor = keras.applications.MobileNetV3Small if name.endswith("small") else keras.applications.MobileNetV3Large
        model = ctor(**kwargs, include_preprocessing=False, minimalistic=False)
    else:
        raise EdgesegError(f"unknown backbone {name!r}: choose one of {', '.join(BACKBONES)}")
    if w not in (None, "imagenet"):
        try:
            model.load_weights(w)
        except Exception as e:  # Keras raises ValueError / OSError flavours for a file that does not fit
            raise EdgesegError(f"{w}: cannot load into {name} alpha {alpha} ({str(e).splitlines()[0][:200]})") from None
    return model


def _all_layers(model: keras.Model):
    for layer in model.layers:
        yield layer
        if isinstance(layer, keras.Model):
            yield from _all_layers(layer)


def _sep_block(x, filters: int, name: str):
    x = layers.DepthwiseConv2D(3, padding="same", use_bias=False, name=f"{name}_dw")(x)
    x = layers.BatchNormalization(name=f"{name}_dw_bn")(x)
    x = layers.ReLU(6.0, name=f"{name}_dw_relu")(x)
    x = layers.Conv2D(filters, 1, use_bias=False, name=f"{name}_pw")(x)
    x = layers.BatchNormalization(name=f"{name}_pw_bn")(x)
    return layers.ReLU(6.0, name=f"{name}_pw_relu")(x)


def build_unet(
    num_classes: int,
    input_hw: tuple[int, int] = (224, 224),
    backbone: str = "mobilenet_v2",
    alpha: float = 1.0,
    decoder: str | tuple[int, int, int, int] = "base",
    weights: str | Path | None = None,
    dropout: float = 0.1,
    bn_momentum: float = 0.9,
) -> keras.Model:
    """A U-Net on a MobileNet encoder. Input: [B, H, W, 3] RGB 0..255. Output: [B, H, W, classes] logits.

    H and W must be multiples of 32. `weights`: None, "imagenet" (Keras' download) or a weights file path.
    """
    h, w = input_hw
    if h % 32 or w % 32:
        raise EdgesegError(f"input size {h}x{w} (HxW): both sides must be multiples of 32")
    if num_classes < 2:
        raise EdgesegError("a segmentation model needs at least 2 classes")
    widths = DECODERS.get(decoder) if isinstance(decoder, str) else tuple(decoder)
    if widths is None or len(widths) != 4:
        raise EdgesegError(f"unknown decoder {decoder!r}: choose one of {', '.join(DECODERS)} or give 4 widths")

    base = _backbone(backbone, input_hw, alpha, weights)
    skips = [base.get_layer(n).input for n in SKIP_LAYERS[backbone]]
    encoder = keras.Model(base.input, [*skips, base.output], name="encoder")

    inputs = keras.Input(shape=(h, w, 3), name="image")
    # Pixels 0..255 -> [-1, 1], the range the MobileNet weights were trained on.
    x = layers.Rescaling(1.0 / 127.5, offset=-1.0, name="scale_pixels")(inputs)
    *skip_feats, x = encoder(x)
    for level, (skip, width) in enumerate(zip(reversed(skip_feats), widths)):
        name = f"decoder{level + 1}"
        x = layers.UpSampling2D(2, interpolation="bilinear", name=f"{name}_up")(x)
        x = layers.Concatenate(name=f"{name}_concat")([x, skip])
        x = _sep_block(x, width, f"{name}a")
        x = _sep_block(x, width, f"{name}b")
    if dropout:
        x = layers.Dropout(dropout, name="head_dropout")(x)
    x = layers.Conv2D(num_classes, 1, name="head_logits")(x)
    outputs = layers.UpSampling2D(2, interpolation="bilinear", name="logits")(x)
    model = keras.Model(inputs, outputs, name=f"unet_{backbone}")
    # keras.applications builds BatchNorm with momentum 0.999: its moving statistics need thousands of steps to
    # leave their initial values, so a short run evaluates (training=False) with statistics that fit nothing.
    for layer in _all_layers(model):
        if isinstance(layer, layers.BatchNormalization):
            layer.momentum = bn_momentum
    return model
