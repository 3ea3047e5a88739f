"""A segmentation-pretrained MobileNetV2 encoder: the weights of Coral's DeepLabV3 (MobileNetV2 depth 1.0, trained on
COCO then Pascal VOC) read out of its int8 .tflite, dequantised, with batch norm folded in, written as a Keras
MobileNetV2 (alpha 1.0, no top) weights file that `edgeseg train --weights FILE` loads like the ImageNet one.

    python benchmarks/deeplab_encoder.py [--shared ../shared] [--out runs/weights/mobilenet_v2_deeplab.weights.h5]

The .tflite's convolutions carry their batch norm folded in (a bias per channel), so each Keras BatchNormalization
after them is set to pass the convolution through and add that bias (gamma 1, mean 0, variance 1 - epsilon, beta
the bias). That is the right function at inference, but training normalises by each batch's statistics, which
would rescale every feature at the first step. So, with --calibrate-bn (a dataset; default: CamVid's train images
from ../shared), the batch norms are then fitted to the data, layer by layer: each one's moving mean and
variance become its input's over the images, gamma that input's standard deviation and beta its mean plus the
bias, which computes the same function at inference and (nearly) the same in training. DeepLab's encoder ends at
the 320-channel block 16; Keras' last 1x1 convolution (Conv_1, 1280 channels) keeps the ImageNet weights. The file
is derived from ../shared and is written under runs/ (never committed).
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
    ap.add_argument("--calibrate-bn", type=Path, default=None, help="images to fit the batch norms to")
    ap.add_argument("--no-calibrate-bn", action="store_true", help="keep the folded batch norms as identities")
    ap.add_argument("--images", type=int, default=32, help="images for the batch-norm fit")
    args = ap.parse_args()
    tflite = args.shared / "models" / "peers" / "deeplabv3_mnv2_pascal_quant.tflite"
    imagenet = args.shared / "weights" / "mobilenet_v2_1.0_224_no_top_imagenet.weights.h5"
    if not tflite.is_file() or not imagenet.is_file():
        sys.exit(f"needs {tflite} and {imagenet} (../shared)")
    import keras

    model = keras.applications.MobileNetV2(input_shape=(288, 384, 3), alpha=1.0, include_top=False, weights=None)
    model.load_weights(imagenet)
    layers = read_encoder(tflite)
    for name, (kernel, bias, _kind) in layers.items():
        conv, bn = model.get_layer(name), model.get_layer(keras_name_bn(name))
        if tuple(conv.kernel.shape) != kernel.shape:
            sys.exit(f"{name}: Keras kernel {tuple(conv.kernel.shape)} vs DeepLab {kernel.shape}")
        conv.kernel.assign(kernel)
        n = bias.shape[0]
        bn.set_weights([np.ones(n), bias, np.zeros(n), np.full(n, 1.0 - BN_EPSILON)])
    calibrated = ""
    if not args.no_calibrate_bn:
        folder = args.calibrate_bn or args.shared / "data" / "camvid" / "train"
        fit_batch_norms(model, [keras_name_bn(n) for n in layers], folder, args.images)
        calibrated = f"; batch norms fitted on {args.images} images of {folder}"
    args.out.parent.mkdir(parents=True, exist_ok=True)
    model.save_weights(args.out)
    print(f"{len(layers)} layers from {tflite.name}; Conv_1 keeps ImageNet's{calibrated}; wrote {args.out}")


def fit_batch_norms(model, names: list[str], folder: Path, count: int, hw: tuple[int, int] = (288, 384)) -> None:
    """Fit each named BatchNormalization (an identity plus the folded bias) to the statistics of its input over
    `count` images of `folder`, in network order, so that it computes the same function with normalisation."""
    import cv2
    import keras

    files = sorted(p for p in Path(folder).iterdir() if p.suffix.lower() in (".png", ".jpg", ".jpeg"))[:count]
    x = np.stack([cv2.resize(cv2.imread(str(p))[..., ::-1], hw[::-1]) for p in files]).astype(np.float32)
    x = x / 127.5 - 1.0
    probe = keras.Model(model.input, [model.get_layer(n).input for n in names])
    feats = probe.predict(x, batch_size=8, verbose=0)  # inputs of the (identity) batch norms, all at once
    for name, f in zip(names, feats, strict=True):
        bn = model.get_layer(name)
        gamma, beta, _, _ = bn.get_weights()  # gamma 1, beta the folded bias
        mean = f.reshape(-1, f.shape[-1]).mean(axis=0)
        var = f.reshape(-1, f.shape[-1]).var(axis=0)
        std = np.sqrt(var + bn.epsilon)
        bn.set_weights([std * gamma, mean + beta, mean, var])


def keras_name_bn(conv: str) -> str:
    """The BatchNormalization after a Keras MobileNetV2 convolution."""
    return "bn_Conv1" if conv == "Conv1" else f"{conv}_BN"


if __name__ == "__main__":
    main()
