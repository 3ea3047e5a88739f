"""A segmentation-pretrained MobileNetV2 encoder: the weights of Coral's DeepLabV3 (MobileNetV2 depth 1.0, trained on
COCO then Pascal VOC) read out of its int8 .tflite, dequantised, with batch norm folded in, written as a Keras
MobileNetV2 (alpha 1.0, no top) weights file that `edgeseg train --weights FILE` loads like the ImageNet one.

    python benchmarks/deeplab_encoder.py [--shared ../shared] [--out runs/weights/mobilenet_v2_deeplab.weights.h5]

The .tflite's convolutions carry their batch norm folded in (a bias per channel), so each Keras BatchNormalization
after them is set to pass the convolution through and add that bias (gamma 1, mean 0, variance 1 - epsilon, beta
the bias). DeepLab's encoder ends at the 320-channel block 16; Keras' last 1x1 convolution (Conv_1, 1280 channels)
keeps the ImageNet weights. The file is derived from ../shared and is written under runs/ (never committed).
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
BN_EPSILON = 1e-3  # keras.applications.MobileNetV2's


def keras_name(slim: str) -> tuple[str, str] | None:
    """TF-slim's MobilenetV2 scope ('expanded_conv_3/expand') -> Keras' (conv layer, its BatchNormalization)."""
    if slim == "Conv":
        return "Conv1", "bn_Conv1"
    m = re.fullmatch(r"expanded_conv(?:_(\d+))?/(expand|depthwise|project)", slim)
    if not m:
        return None
    block, part = m.group(1), m.group(2)
    base = "expanded_conv" if block is None else f"block_{block}"
    return f"{base}_{part}", f"{base}_{part}_BN"


def read_encoder(tflite: Path) -> dict[str, tuple[np.ndarray, np.ndarray, str]]:
    """{Keras conv name: (kernel in Keras' layout, folded bias, 'conv' | 'depthwise')} from the .tflite's ops."""
    from ai_edge_litert.interpreter import Interpreter

    it = Interpreter(model_path=str(tflite))
    it.allocate_tensors()
    tensors = {d["index"]: d for d in it.get_tensor_details()}
    out = {}
    for op in it._get_ops_details():  # the one private call, as edgeseg.predictors.tflite.ops_details says
        if op["op_name"] not in ("CONV_2D", "DEPTHWISE_CONV_2D"):
            continue
        w, b = tensors[op["inputs"][1]], tensors[op["inputs"][2]]
        m = re.search(r"MobilenetV2/((?:expanded_conv(?:_\d+)?/(?:expand|depthwise|project))|Conv)/", w["name"])
        if not m or (names := keras_name(m.group(1))) is None:
            continue
        wq = it.get_tensor(w["index"]).astype(np.float32)
        scale, zero = w["quantization"]
        kernel = (wq - zero) * scale
        bias = it.get_tensor(b["index"]).astype(np.float32) * b["quantization"][0]
        if op["op_name"] == "CONV_2D":  # [out, kh, kw, in] -> [kh, kw, in, out]
            out[names[0]] = (kernel.transpose(1, 2, 3, 0), bias, "conv")
        else:  # [1, kh, kw, channels] -> [kh, kw, channels, 1]
            out[names[0]] = (kernel[0][..., None], bias, "depthwise")
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--shared", type=Path, default=ROOT.parent / "shared")
    ap.add_argument("--out", type=Path, default=ROOT / "runs" / "weights" / "mobilenet_v2_deeplab.weights.h5")
    args = ap.parse_args()
    tflite = args.shared / "models" / "peers" / "deeplabv3_mnv2_pascal_quant.tflite"
    imagenet = args.shared / "weights" / "mobilenet_v2_1.0_224_no_top_imagenet.weights.h5"
    if not tflite.is_file() or not imagenet.is_file():
        sys.exit(f"needs {tflite} and {imagenet} (../shared)")
    import keras

    model = keras.applications.MobileNetV2(input_shape=(224, 224, 3), alpha=1.0, include_top=False, weights=None)
    model.load_weights(imagenet)
    layers = read_encoder(tflite)
    for name, (kernel, bias, _kind) in layers.items():
        conv, bn = model.get_layer(name), model.get_layer(keras_name_bn(name))
        if tuple(conv.kernel.shape) != kernel.shape:
            sys.exit(f"{name}: Keras kernel {tuple(conv.kernel.shape)} vs DeepLab {kernel.shape}")
        conv.kernel.assign(kernel)
        n = bias.shape[0]
        bn.set_weights([np.ones(n), bias, np.zeros(n), np.full(n, 1.0 - BN_EPSILON)])
    args.out.parent.mkdir(parents=True, exist_ok=True)
    model.save_weights(args.out)
    print(f"{len(layers)} layers from {tflite.name}; Conv_1 keeps ImageNet's; wrote {args.out}")


def keras_name_bn(conv: str) -> str:
    """The BatchNormalization after a Keras MobileNetV2 convolution."""
    return "bn_Conv1" if conv == "Conv1" else f"{conv}_BN"


if __name__ == "__main__":
    main()
