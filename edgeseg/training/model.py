"""build_unet: a MobileNet-backbone U-Net as a functional Keras model.

The model takes raw RGB pixels 0..255 and scales them inside the graph, so an int8/uint8 TFLite input is the
camera's pixels as they are. The decoder keeps to what the Edge TPU compiler maps: bilinear resizes (not
nearest UpSampling2D, which becomes TILE), convolutions (dense 3x3 or depthwise-separable) with BatchNorm after
convolutions only (never after a Conv2DTranspose, which folds into TRANSPOSE_CONV v4). Layer names are
deterministic.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import keras
from keras import layers

from edgeseg.errors import EdgesegError
from edgeseg.predictors.keras import all_layers
from edgeseg.training.backbones import DENSE_STEM, DENSE_STEM_JOIN, SKIP_LAYERS, dense_stem, scale_pixels
from edgeseg.training.backbones import backbone as build_backbone

__all__ = ["DECODERS", "SKIP_LAYERS", "Decoder", "build_unet", "decode", "decoder_for", "fcn_head", "lraspp_head"]


@dataclass(frozen=True)
class Decoder:
    """How the decoder climbs back from stride 32.

    widths: one per stage, at strides 16, 8, 4, 2 in that order; fewer stages stop coarser and the logits are
    upsampled by what is left (3 stages: x4, as DeepLabV3+ does). block: "separable" (depthwise 3x3 + pointwise
    1x1) or "dense" (a full 3x3 convolution). skip_widths: 1x1 projections of the skip features before they are
    concatenated (None: concatenate them as they are). top_width: a 1x1 projection of the encoder's output.
    encoder_stride: 32 uses the whole backbone; 16 cuts it after its stride-16 stage (MobileNetV2: the expanded
    activation of block 13), which drops the most expensive backbone layers per pixel and lets a small budget
    buy input resolution instead; the stages then start at stride 8. blocks: blocks per stage, one number for
    every stage or one per stage.
    """

    widths: tuple[int, ...]
    kind: str = "unet"  # "unet"; "fcn": FCN-8s score layers (widths, blocks unused); "lraspp": widths[0] wide
    block: str = "separable"
    skip_widths: tuple[int, ...] | None = None
    top_width: int | None = None
    encoder_stride: int = 32
    blocks: int | tuple[int, ...] = 2

    def stage_blocks(self, level: int) -> int:
        """How many blocks the stage at `level` (0: the coarsest) has."""
        return self.blocks if isinstance(self.blocks, int) else self.blocks[level]


DECODERS = {  # the names are edgeseg.choices.DECODERS
    "tiny": Decoder((64, 32, 24, 16)),
    "small": Decoder((96, 64, 32, 24)),
    "base": Decoder((128, 96, 64, 32)),
    "large": Decoder((256, 128, 64, 48)),
    # The int8 decoder. On CPUs with fast int8 matrix units (x86 VNNI/AMX, Arm dot-product) and on NPUs, an int8
    # dense 3x3 convolution costs about what an int8 depthwise-separable pair does, while int8 depthwise
    # convolutions, resizes and element-wise ops at high resolution are no faster than float (on this project's
    # Xeon, 1.8x slower). So: dense blocks on projected (narrow) skips, and no stride-2 stage. See docs/benchmarks.md.
    "dense": Decoder((128, 96, 64), block="dense", skip_widths=(48, 32, 24), top_width=256),
    # The shipped nano model's decoder (CamVid, 256x192, 0.38 GMACs with a MobileNetV2-1.0 encoder): the dense
    # design cut to two narrow stages, stopping at stride 8 (logits upsampled x8), so that the ImageNet
    # alpha-1.0 backbone fits a Pi-4-class budget of 0.4 GMACs.
    "nano": Decoder((64, 48), block="dense", skip_widths=(32, 24), top_width=128),
    # nano with a third, narrow stage at stride 4 (one dense block of 12 on the stride-4 skip projected to 6): the
    # logits at 1/4 of the input instead of 1/8, for the thin classes (poles, signs), within the same 0.4 GMACs
    # (0.399 at 256x192, against nano's 0.379).
    "nano_fine": Decoder((64, 48, 12), block="dense", skip_widths=(32, 24, 6), top_width=128, blocks=(2, 2, 1)),
    # FCN-8s (Long et al.): a 1x1 score layer on the features at strides 32, 16 and 8, each upsampled x2 (bilinear)
    # and summed with the next, the sum upsampled x8 to the input. The cheapest head: three 1x1 convolutions.
    "fcn": Decoder((), kind="fcn"),
    # LR-ASPP (Howard et al., "Searching for MobileNetV3"): the encoder's output through a 1x1 convolution, gated
    # channel by channel by a sigmoid of its global average (a squeeze-excite of the whole frame), resized to
    # stride 8, scored and added to a score of the stride-8 skip. About FCN-8s' cost: nearly all of a frame's
    # MACs stay in the encoder, so a budget buys input resolution instead of decoder width.
    "lraspp": Decoder((128,), kind="lraspp"),
}


def _conv_bn_relu(x, filters: int, kernel: int, name: str):
    x = layers.Conv2D(filters, kernel, padding="same", use_bias=False, name=name)(x)
    x = layers.BatchNormalization(name=f"{name}_bn")(x)
    return layers.ReLU(6.0, name=f"{name}_relu")(x)


def _block(x, filters: int, kind: str, name: str):
    if kind == "dense":
        return _conv_bn_relu(x, filters, 3, f"{name}_conv")
    x = layers.DepthwiseConv2D(3, padding="same", use_bias=False, name=f"{name}_dw")(x)
    x = layers.BatchNormalization(name=f"{name}_dw_bn")(x)
    x = layers.ReLU(6.0, name=f"{name}_dw_relu")(x)
    return _conv_bn_relu(x, filters, 1, f"{name}_pw")


def decoder_for(decoder: str | tuple[int, ...] | Decoder) -> Decoder:
    """A Decoder from a name of DECODERS, a tuple of widths, or a Decoder; EdgesegError for one that cannot be built."""
    if isinstance(decoder, Decoder):
        dec = decoder
    elif isinstance(decoder, str):
        if decoder not in DECODERS:
            raise EdgesegError(f"unknown decoder {decoder!r}: choose one of {', '.join(DECODERS)} or give widths")
        dec = DECODERS[decoder]
    else:
        dec = Decoder(tuple(int(w) for w in decoder))
    if dec.kind == "fcn":
        if dec.encoder_stride != 32:
            raise EdgesegError("the FCN-8s head needs the whole encoder (encoder_stride 32)")
        return dec
    if dec.kind == "lraspp":
        if dec.encoder_stride not in (16, 32) or len(dec.widths) != 1 or dec.widths[0] < 1:
            raise EdgesegError(f"the LR-ASPP head takes one positive width and encoder_stride 16 or 32, not {dec}")
        return dec
    if dec.kind != "unet":
        raise EdgesegError(f"decoder kind {dec.kind!r}: choose unet, fcn or lraspp")
    if dec.encoder_stride not in (16, 32):
        raise EdgesegError(f"decoder encoder_stride {dec.encoder_stride}: choose 16 or 32")
    stages = 4 if dec.encoder_stride == 32 else 3
    if not 1 <= len(dec.widths) <= stages or min(dec.widths) < 1:
        raise EdgesegError(
            f"decoder widths {dec.widths}: give 1 to {stages} positive widths (one per stage, "
            f"from stride {dec.encoder_stride // 2} down to 2)"
        )
    per_stage = (dec.blocks,) if isinstance(dec.blocks, int) else tuple(dec.blocks)
    if not isinstance(dec.blocks, int) and len(per_stage) != len(dec.widths):
        raise EdgesegError(f"decoder blocks {dec.blocks}: one number, or one per stage ({len(dec.widths)})")
    if min(per_stage) < 1:
        raise EdgesegError(f"decoder blocks {dec.blocks}: at least one block per stage")
    if dec.block not in ("separable", "dense"):
        raise EdgesegError(f"decoder block {dec.block!r}: choose separable or dense")
    if dec.skip_widths is not None and len(dec.skip_widths) != len(dec.widths):
        raise EdgesegError(f"decoder skip_widths {dec.skip_widths}: one per stage ({len(dec.widths)})")
    return dec


def build_unet(
    num_classes: int,
    input_hw: tuple[int, int] = (224, 224),
    backbone: str = "mobilenet_v2",
    alpha: float = 1.0,
    decoder: str | tuple[int, ...] | Decoder = "base",
    weights: str | Path | None = None,
    dropout: float = 0.1,
    bn_momentum: float = 0.9,
) -> keras.Model:
    """A U-Net (or an FCN-8s head) on a MobileNet or ResNet50 encoder, or with backbone "none" the classic U-Net.
    Input: [B, H, W, 3] RGB 0..255. Output: [B, H, W, classes] logits.

    Args:
        num_classes: the output's classes (at least 2).
        input_hw: (height, width), both multiples of 32.
        backbone: one of edgeseg.choices.BACKBONES.
        alpha: the backbone's width multiplier.
        decoder: a name of DECODERS, a tuple of widths, or a Decoder (not used by the classic U-Net).
        weights: the backbone's weights: None, "imagenet" (Keras' download) or a weights file path.
        dropout: before the logits.
        bn_momentum: every BatchNormalization's momentum (keras.applications' 0.999 is too slow for short runs).
    """
    h, w = input_hw
    if h % 32 or w % 32:
        raise EdgesegError(f"input size {h}x{w} (HxW): both sides must be multiples of 32")
    if num_classes < 2:
        raise EdgesegError("a segmentation model needs at least 2 classes")
    if backbone == "none":
        from edgeseg.training.classic_unet import build_classic_unet

        model = build_classic_unet(num_classes, input_hw, alpha, dropout)
        return _with_momentum(model, bn_momentum)
    dec = decoder_for(decoder)

    base = build_backbone(backbone, input_hw, alpha, weights)
    skips = [base.get_layer(n).input for n in SKIP_LAYERS[backbone] if n is not None]
    # the dense stem's encoder is the pretrained network from the layer the stem feeds (its own stem unused)
    start = base.get_layer(DENSE_STEM_JOIN).input if backbone == DENSE_STEM else base.input
    if dec.encoder_stride == 16:  # the stride-16 skip becomes the encoder's output; later layers are not built
        encoder = keras.Model(start, skips, name="encoder")
    else:
        encoder = keras.Model(start, [*skips, base.output], name="encoder")

    inputs = keras.Input(shape=(h, w, 3), name="image")
    x = scale_pixels(backbone, inputs)  # pixels 0..255 -> the range the encoder's weights were trained on
    if backbone == DENSE_STEM:
        stride2, x = dense_stem(x, start.shape[-1])
        *skip_feats, x = encoder(x)
        skip_feats = [stride2, *skip_feats]
    else:
        *skip_feats, x = encoder(x)
    if dec.kind == "fcn":
        outputs = fcn_head(x, skip_feats, num_classes, dropout)
    elif dec.kind == "lraspp":
        outputs = lraspp_head(x, skip_feats, dec, num_classes, dropout)
    else:
        outputs = decode(x, skip_feats, dec, num_classes, dropout)
    model = keras.Model(inputs, outputs, name=f"{dec.kind}_{backbone}")
    return _with_momentum(model, bn_momentum)


def _with_momentum(model: keras.Model, momentum: float) -> keras.Model:
    # keras.applications builds BatchNorm with momentum 0.999: its moving statistics need thousands of steps to
    # leave their initial values, so a short run evaluates (training=False) with statistics that fit nothing.
    for layer in all_layers(model):
        if isinstance(layer, layers.BatchNormalization):
            layer.momentum = momentum
    return model


def fcn_head(x, skip_feats: list, num_classes: int, dropout: float = 0.1):
    """FCN-8s on the encoder's output `x` (stride 32) and its skip features (finest first: strides 2, 4, 8, 16):
    logits at the input size. Bilinear resizes (not transposed convolutions) and additions: all int8, all on the
    Edge TPU's list, no resize over x8.

    Args:
        x: the encoder's output.
        skip_feats: the skip features, finest first.
        num_classes: the logits' channels.
        dropout: before the stride-32 score layer.
    """
    if dropout:
        x = layers.Dropout(dropout, name="head_dropout")(x)
    # float32 score layers whatever the global policy: under mixed_float16 the logits and the loss stay float32
    score = layers.Conv2D(num_classes, 1, name="fcn_score32", dtype="float32")(x)
    for stride, feat in ((16, skip_feats[3]), (8, skip_feats[2])):
        up = layers.UpSampling2D(2, interpolation="bilinear", name=f"fcn_up{stride}", dtype="float32")(score)
        side = layers.Conv2D(num_classes, 1, name=f"fcn_score{stride}", dtype="float32")(feat)
        score = layers.Add(name=f"fcn_sum{stride}", dtype="float32")([up, side])
    return layers.UpSampling2D(8, interpolation="bilinear", name="logits", dtype="float32")(score)


def lraspp_head(x, skip_feats: list, dec: Decoder, num_classes: int, dropout: float = 0.1):
    """LR-ASPP on the encoder's output `x` (stride dec.encoder_stride) and its skip features (finest first; the
    third is stride 8): logits at the input size. Every op (1x1 convolutions, MEAN, LOGISTIC, a broadcast MUL,
    bilinear resizes, ADD) converts to int8 and is on the Edge TPU's list.

    Args:
        x: the encoder's output.
        skip_feats: the skip features, finest first.
        dec: the head's shape (widths[0]: its channels).
        num_classes: the logits' channels.
        dropout: before the high-level score layer.
    """
    width = dec.widths[0]
    branch = _conv_bn_relu(x, width, 1, "lraspp_conv")
    gate = layers.GlobalAveragePooling2D(keepdims=True, name="lraspp_pool")(x)
    gate = layers.Conv2D(width, 1, activation="sigmoid", name="lraspp_gate")(gate)
    x = layers.Multiply(name="lraspp_scale")([branch, gate])
    x = layers.UpSampling2D(dec.encoder_stride // 8, interpolation="bilinear", name="lraspp_up")(x)
    if dropout:
        x = layers.Dropout(dropout, name="head_dropout")(x)
    # float32 score layers whatever the global policy: under mixed_float16 the logits and the loss stay float32
    high = layers.Conv2D(num_classes, 1, name="lraspp_score_high", dtype="float32")(x)
    low = layers.Conv2D(num_classes, 1, name="lraspp_score_low", dtype="float32")(skip_feats[2])
    score = layers.Add(name="lraspp_sum", dtype="float32")([high, low])
    return layers.UpSampling2D(8, interpolation="bilinear", name="logits", dtype="float32")(score)


def decode(x, skip_feats: list, dec: Decoder, num_classes: int, dropout: float = 0.1):
    """The decoder on the encoder's output `x` and its skip features (finest first): logits at the input size.
    A function of its own so that benchmarks can time the decoder alone (benchmarks/int8_costs.py).

    Args:
        x: the encoder's output.
        skip_feats: the skip features, finest first.
        dec: the decoder's shape.
        num_classes: the logits' channels.
        dropout: before the logits.
    """
    if dec.top_width:
        x = _conv_bn_relu(x, dec.top_width, 1, "decoder_top")
    skip_feats = list(reversed(skip_feats))[: len(dec.widths)]
    for level, (skip, width) in enumerate(zip(skip_feats, dec.widths, strict=False)):
        name = f"decoder{level + 1}"
        x = layers.UpSampling2D(2, interpolation="bilinear", name=f"{name}_up")(x)
        if dec.skip_widths:
            skip = _conv_bn_relu(skip, dec.skip_widths[level], 1, f"{name}_skip")
        x = layers.Concatenate(name=f"{name}_concat")([x, skip])
        for b in range(dec.stage_blocks(level)):
            x = _block(x, width, dec.block, f"{name}{'abcdefgh'[b]}")
    if dropout:
        x = layers.Dropout(dropout, name="head_dropout")(x)
    # float32 logits whatever the global policy: under mixed_float16 the head and the loss stay in float32
    x = layers.Conv2D(num_classes, 1, name="head_logits", dtype="float32")(x)
    factor = dec.encoder_stride // 2 ** len(dec.widths)
    if factor == 1:
        return x
    return layers.UpSampling2D(factor, interpolation="bilinear", name="logits", dtype="float32")(x)


def transfer_weights(source: keras.Model, target: keras.Model) -> tuple[int, list[str]]:
    """Copy `source`'s weights into `target` layer by layer, by name, where every weight's shape matches (the
    encoder, the decoder; not a head of another class count). Returns (layers copied, names of the layers with
    weights that were left as built)."""
    by_name = {layer.name: layer for layer in all_layers(source) if layer.weights}
    copied, rebuilt = 0, []
    for layer in all_layers(target):
        if not layer.weights or isinstance(layer, keras.Model):
            continue
        src = by_name.get(layer.name)
        if src is None or [tuple(w.shape) for w in src.weights] != [tuple(w.shape) for w in layer.weights]:
            rebuilt.append(layer.name)
            continue
        layer.set_weights(src.get_weights())
        copied += 1
    return copied, rebuilt
