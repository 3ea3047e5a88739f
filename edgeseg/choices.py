"""Every list of choices a user can pick from, in one place: the library checks against these and the CLI builds
its option types from them, so the two never drift. Standard library only (the CLI imports it for `--help`).

Two of them are tables that code is looked up by: RUNTIME_TABLE names the module that runs each runtime (adding
a runtime is one module in edgeseg/predictors/ and one entry here), and TARGETS lists the conversion targets
(edgeseg.converters.targets gives each its function)."""

from __future__ import annotations

from enum import Enum
from typing import NamedTuple

from edgeseg.errors import EdgesegError


class RuntimeEntry(NamedTuple):
    """One runtime: the module whose PREDICTOR runs it, the model files it takes, the pip extra that brings it."""

    module: str
    suffixes: tuple[str, ...]
    extra: str


# In the order "auto" tries them for a suffix: LiteRT first for a .tflite, then tflite-runtime, then TensorFlow.
RUNTIME_TABLE = {
    "litert": RuntimeEntry("edgeseg.predictors.tflite", (".tflite",), "device"),
    "tflite-runtime": RuntimeEntry("edgeseg.predictors.tflite", (".tflite",), "tflite"),
    "tensorflow": RuntimeEntry("edgeseg.predictors.tflite", (".tflite",), "train"),
    "onnx": RuntimeEntry("edgeseg.predictors.onnx", (".onnx",), "onnx"),  # ONNX Runtime
    "openvino": RuntimeEntry("edgeseg.predictors.openvino", (".xml",), "openvino"),  # OpenVINO IR (.xml + .bin)
    "ncnn": RuntimeEntry("edgeseg.predictors.ncnn", (".param",), "ncnn"),  # ncnn (.param + .bin)
    "rknn": RuntimeEntry("edgeseg.predictors.rknn", (".rknn",), "rknn"),  # Rockchip's NPU (on the board)
    "keras": RuntimeEntry("edgeseg.predictors.keras", (".keras",), "train"),  # the workstation's own
}
RUNTIMES = ("auto", *RUNTIME_TABLE)
SUFFIXES = tuple(dict.fromkeys(s for e in RUNTIME_TABLE.values() for s in e.suffixes))


def runtimes_for(suffix: str) -> tuple[str, ...]:
    """The runtimes that run a model file with this suffix, in the order "auto" tries them."""
    return tuple(name for name, e in RUNTIME_TABLE.items() if suffix in e.suffixes)


DELEGATES = ("auto", "cpu", "edgetpu")
FORMATS = ("auto", "generic", "camvid", "voc", "coco", "pack")  # dataset layouts (pack: `edgeseg pack`)
SPLITS = ("train", "val", "test", "all")
IO_DTYPES = ("int8", "uint8")
VIEWS = ("overlay", "mask", "side-by-side")
STRATEGIES = ("auto", "none", "mirrored", "multiworker")
BACKENDS = ("tensorflow", "jax", "torch")  # Keras 3's, for training (edgeseg.training.backends)
KEEP = ("auto", "best", "last")  # which epoch a training run keeps (edgeseg.training.protocol)
OUTPUT_SIZES = ("input", "half")  # where a converted model's last resize stops (edgeseg.converters.output_size)
EQUALIZE = ("off", "on", "auto")  # activation equalisation before int8 (edgeseg.converters.equalize)
LOSSES = ("ce", "ohem")  # weighted cross-entropy, or the same over the hard pixels (edgeseg.training.objective)
# what a teacher sees: the student's crop resized to its input, or the same crop from the full-resolution frame
TEACHER_VIEWS = ("frame", "student")
# how a teacher's logits are matched: per pixel over the classes (Hinton's KD), or per class over the image's
# pixels (channel-wise distillation, Shu et al. 2021) (edgeseg.training.objective)
KD_MODES = ("pixel", "channel")

# The network: encoders (edgeseg.training.model.SKIP_LAYERS has each one's skip layers) and decoders
# (edgeseg.training.model.DECODERS has each one's shape).
# none: classic U-Net; mobilenet_v2_dense_stem: MobileNetV2 with its stride-2 and stride-4 stem as two dense
# strided convolutions (edgeseg.training.backbones.DENSE_STEM)
BACKBONES = ("mobilenet_v2", "mobilenet_v2_dense_stem", "mobilenet_v3_small", "mobilenet_v3_large", "resnet50", "none")
# fcn: FCN-8s; lraspp: LR-ASPP; nano_fine: nano with logits at 1/4
DECODERS = ("tiny", "small", "base", "large", "dense", "nano", "nano_fine", "fcn", "lraspp")

# Conversion targets, (format, precision): edgeseg.converters.targets.TARGETS gives each one its function.
TARGETS = (
    ("tflite", "float32"),
    ("tflite", "fp16"),
    ("tflite", "dynamic"),
    ("tflite", "int8"),
    ("onnx", "float32"),
    ("onnx", "int8"),
    ("openvino", "float32"),
    ("openvino", "int8"),
    ("ncnn", "float32"),
    ("ncnn", "fp16"),
    ("rknn", "int8"),
    ("rknn", "fp16"),
)
# Pairs a format does not offer, with the reason (said instead of a bare "no such target").
NOT_OFFERED = {
    ("ncnn", "int8"): "ncnn quantises with ncnn2table and ncnn2int8, C++ tools its pip wheel does not carry "
    "(build ncnn from source for them; or run --to openvino --int8, or the int8 .tflite)",
    ("rknn", "float32"): "Rockchip's NPU computes in int8 or float16: give --int8 or --fp16",
}
# The Rockchip SoCs rknn-toolkit2 2.5 builds for (`convert --to rknn --platform`).
RKNN_PLATFORMS = (
    "rk3588",
    "rk3576",
    "rk3568",
    "rk3566",
    "rk3562",
    "rk2118",
    "rv1103",
    "rv1106",
    "rv1103b",
    "rv1106b",
    "rv1126b",
)
EXPORT_FORMATS = tuple(dict.fromkeys(f for f, _ in TARGETS))
PRECISIONS = tuple(dict.fromkeys(p for _, p in TARGETS))


def choice_enum(name: str, values: tuple[str, ...]) -> type[Enum]:
    """A str Enum whose values are `values` (member names with '-' as '_'), for Typer's choice options."""
    return Enum(name, {v.replace("-", "_"): v for v in values}, type=str)  # type: ignore[return-value]


def check_choice(value: str, values: tuple[str, ...], what: str) -> str:
    """`value` if it is one of `values`; else EdgesegError naming `what` and the choices."""
    if value not in values:
        raise EdgesegError(f"unknown {what} {value!r}: choose one of {', '.join(values)}")
    return value
