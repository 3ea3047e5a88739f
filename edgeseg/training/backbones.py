"""The encoders a U-Net or FCN head sits on: keras.applications' MobileNets and ResNet50, built without their
top, with the layers whose inputs are the skip features at strides 2, 4, 8 and 16, and the pixel scaling each
one's weights were trained with (done inside the graph, so a model takes raw RGB 0..255 and an int8 model the
camera's pixels as they are)."""

from __future__ import annotations

from pathlib import Path

import keras
import numpy as np
from keras import layers

from edgeseg.choices import BACKBONES
from edgeseg.errors import EdgesegError

# For each backbone, the layers whose *input* is the skip feature at strides 2, 4, 8 and 16: the padding
# layer in front of each stride-2 depthwise convolution, which sees the block's expanded activation. These
# names are fixed by keras.applications; activation layers in MobileNetV3 are numbered by a global counter
# and are not. The stride-32 feature is the backbone's output.
SKIP_LAYERS = {  # the names are edgeseg.choices.BACKBONES (but "none", the classic U-Net, which has no encoder)
    "mobilenet_v2": ("block_1_pad", "block_3_pad", "block_6_pad", "block_13_pad"),
    # the stride-2 skip is the dense stem's first convolution (built in front of the encoder, not in it)
    "mobilenet_v2_dense_stem": (None, "block_3_pad", "block_6_pad", "block_13_pad"),
    "mobilenet_v3_small": (
        "expanded_conv_depthwise_pad",
        "expanded_conv_1_depthwise_pad",
        "expanded_conv_3_depthwise_pad",
        "expanded_conv_8_depthwise_pad",
    ),
    "mobilenet_v3_large": (
        "expanded_conv_1_depthwise_pad",
        "expanded_conv_3_depthwise_pad",
        "expanded_conv_6_depthwise_pad",
        "expanded_conv_12_depthwise_pad",
    ),
    # ResNet50: the first layer of the next stage, whose input is the stage's output (conv1_relu, conv2_block3_out,
    # conv3_block4_out, conv4_block6_out)
    "resnet50": ("pool1_pad", "conv3_block1_1_conv", "conv4_block1_1_conv", "conv5_block1_1_conv"),
}
# MobileNetV2's stem: Conv1 (3x3 stride 2, 32 channels), the expanded_conv block (depthwise 3x3 and a projection to
# 16) at stride 2, and block_1 (expand to 96, depthwise 3x3 stride 2, project to 24). On int8 CPUs those
# depthwise convolutions on wide, high-resolution maps run at a tenth of the dense roof (bench --profile: 37% of
# nano's invoke for 22% of its MACs). The dense stem replaces them with two strided dense 3x3 convolutions, 3->16
# at stride 2 and 16->24 at stride 4, feeding block_2 (24 channels at stride 4) and the rest of the pretrained
# network unchanged. The two new convolutions start from scratch; everything after them keeps its weights.
DENSE_STEM = "mobilenet_v2_dense_stem"
DENSE_STEM_JOIN = "block_2_expand"  # the first layer of the pretrained network the stem feeds
CAFFE_MEAN_BGR = (103.939, 116.779, 123.68)  # what keras.applications' ResNet50 weights expect to be subtracted


def backbone(name: str, input_hw: tuple[int, int], alpha: float, weights: str | Path | None) -> keras.Model:
    """keras.applications' encoder without its top, its weights loaded.

    Args:
        name: one of SKIP_LAYERS (edgeseg.choices.BACKBONES but "none").
        input_hw: (height, width).
        alpha: the MobileNets' width multiplier (1.0 for ResNet50).
        weights: None, "imagenet" (Keras' download; MobileNets only) or a weights file.
    """
    shape = (*input_hw, 3)
    w = None if weights in (None, "none") else str(weights)
    if w not in (None, "imagenet") and not Path(w).is_file():
        raise EdgesegError(f"{w}: no such backbone weights file")
    # "imagenet": Keras downloads the weights by name (it loads the 224 ones for other input sizes).
    kwargs = dict(input_shape=shape, alpha=alpha, include_top=False, weights="imagenet" if w == "imagenet" else None)
    if name == "resnet50":
        if alpha != 1.0:
            raise EdgesegError(f"resnet50 has no width multiplier: --alpha {alpha:g} applies to MobileNets only")
        if w == "imagenet":
            raise EdgesegError("resnet50: give its weights as a file (--weights FILE); nothing is downloaded")
        kwargs.pop("alpha")
        model = keras.applications.ResNet50(**kwargs)
    elif name in ("mobilenet_v2", DENSE_STEM):  # the dense stem's network is MobileNetV2's, its stem cut off later
        model = keras.applications.MobileNetV2(**kwargs)
    elif name in ("mobilenet_v3_small", "mobilenet_v3_large"):
        ctor = keras.applications.MobileNetV3Small if name.endswith("small") else keras.applications.MobileNetV3Large
        model = ctor(**kwargs, include_preprocessing=False, minimalistic=False)
    else:
        raise EdgesegError(f"unknown backbone {name!r}: choose one of {', '.join(BACKBONES)}")
    if w not in (None, "imagenet"):
        import warnings

        try:
            # Keras skips a layer group it cannot match with only a warning, leaving those layers at their fresh
            # init: a backbone that silently half-loads trains worse with no error, so a skip is an error here
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                model.load_weights(w)
            skipped = [str(c.message) for c in caught if "Skipping" in str(c.message)]
            if skipped:
                raise ValueError(f"{len(skipped)} layer group(s) not in the file: {skipped[0]}")
        except Exception as e:  # Keras raises ValueError / OSError flavours for a file that does not fit
            raise EdgesegError(f"{w}: cannot load into {name} alpha {alpha} ({str(e).splitlines()[0][:200]})") from None
    return model


def dense_stem(x, out_width: int):
    """The dense stem on scaled pixels `x`: (its stride-2 feature, its stride-4 output of `out_width` channels, which
    feeds DENSE_STEM_JOIN: 24 at alpha 1). The stride-2 feature has two thirds of that, rounded to 8 as the
    MobileNets round (16 at alpha 1)."""

    def conv_bn(x, width: int, name: str):  # "encoder" in the name: bench --profile counts it as the encoder's
        x = layers.Conv2D(width, 3, strides=2, padding="same", use_bias=False, name=name)(x)
        return layers.BatchNormalization(name=f"{name}_bn")(x)

    first = layers.ReLU(6.0, name="encoder_stem1_relu")(
        conv_bn(x, max(8, (2 * out_width // 3 + 4) // 8 * 8), "encoder_stem1")
    )
    # no activation after the second, like the projection it stands in for: MobileNetV2's blocks hand each other
    # linear bottlenecks (block_2 adds this feature to its own output), which a ReLU6 would cut at 0
    return first, conv_bn(first, out_width, "encoder_stem2")


def scale_pixels(name: str, x):
    """Raw RGB 0..255 -> what backbone `name`'s weights were trained on: [-1, 1] for the MobileNets; caffe's BGR
    minus the ImageNet mean for ResNet50, as a fixed 1x1 convolution (an int8- and Edge-TPU-friendly op, where a
    channel reversal would be a gather)."""
    if name != "resnet50":
        return layers.Rescaling(1.0 / 127.5, offset=-1.0, name="scale_pixels")(x)
    conv = layers.Conv2D(3, 1, name="caffe_pixels", trainable=False)
    out = conv(x)
    swap = np.zeros((1, 1, 3, 3), np.float32)
    for i in range(3):
        swap[0, 0, 2 - i, i] = 1.0  # output channel i (B, G, R) takes input channel 2 - i (R, G, B reversed)
    conv.set_weights([swap, -np.array(CAFFE_MEAN_BGR, np.float32)])
    return out
