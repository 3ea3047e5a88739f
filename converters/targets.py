"""The one table of conversion targets. Each (format, precision) of edgeseg.choices.TARGETS gets a Target: the
function that builds it from a Job (one signature for all), whether it calibrates, the file it is written to by
default, and how its ops are listed. A new target is a function in its format's module and a row here (and its
pair in choices.TARGETS, which the CLI's options are built from)."""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from edgeseg.choices import EXPORT_FORMATS, NOT_OFFERED, PRECISIONS
from edgeseg.converters import ncnn, onnx, openvino, rknn, tflite
from edgeseg.converters.files import ModelFiles
from edgeseg.converters.job import Job
from edgeseg.converters.verify import OpReport
from edgeseg.errors import EdgesegError, missing_extra


@dataclass(frozen=True)
class Target:
    """One conversion target.

    Attributes:
        format: "tflite", "onnx", "openvino", "ncnn" or "rknn" (edgeseg.choices.EXPORT_FORMATS).
        precision: "float32", "fp16", "dynamic" or "int8" (edgeseg.choices.PRECISIONS).
        build: Job -> the converted model's bytes, the spec embedded (or ModelFiles, for a format of several
            files: OpenVINO's .xml and .bin, ncnn's .param, .bin and spec, RKNN's .rknn and spec).
        ops: (the main file's bytes, the loaded predictor) -> its OpReport.
        suffix: the main file's suffix (".tflite", ".onnx", ".xml", ".param", ".rknn").
        tag: what the default file name adds to the model's stem ("_float32"); an int8 TFLite model is named
            by its input and output type instead ("_int8", "_uint8").
        calibrated: needs calibration images.
        needs: what must be installed, checked before TensorFlow loads or anything calibrates (ready()).
    """

    format: str
    precision: str
    build: Callable[[Job], bytes | ModelFiles]
    ops: Callable[..., OpReport]
    suffix: str
    tag: str
    calibrated: bool = False
    needs: tuple[Callable[[], object], ...] = ()

    def ready(self) -> None:
        """EdgesegError naming the extra to install when a package this target needs is missing: said in one line
        up front, not after minutes of calibrating (nothing is imported: find_spec only)."""
        for check in self.needs:
            check()

    @property
    def name(self) -> str:
        """How results and messages call it: "tflite int8", "onnx float32"."""
        return f"{self.format} {self.precision}"

    def default_output(self, model_path: Path, io_dtype: str = "int8", output_size: str = "input") -> Path:
        """Where the converted model goes when no --out is given: beside the model, named by target (and "_half"
        for --output-size half); a model shipped inside the package (convert nano) goes to runs/convert/ under
        the working folder instead, never into the installed package."""
        from edgeseg.assets import inside_package

        tag = f"_{io_dtype}" if self.format == "tflite" and self.precision == "int8" else self.tag
        tag += "_half" if output_size == "half" else ""
        name = f"{Path(model_path).stem}{tag}{self.suffix}"
        return Path("runs") / "convert" / name if inside_package(model_path) else Path(model_path).with_name(name)


def _module(name: str, what: str, extra: str) -> Callable[[], None]:
    def check() -> None:
        if importlib.util.find_spec(name) is None:
            raise missing_extra(what, extra)

    return check


_ONNX = (_module("tf2onnx", "tf2onnx and onnx (for ONNX)", "onnx"), _module("onnx", "onnx", "onnx"))
_ORT = _module("onnxruntime", "onnxruntime (for ONNX int8 calibration)", "onnx")
_OV = _module("openvino", "openvino", "openvino")
_NNCF = _module("nncf", "nncf (for OpenVINO int8)", "openvino")
_ONNXOPT = _module("onnxoptimizer", "onnxoptimizer (for ncnn and RKNN)", "ncnn")
_NCNN = (*_ONNX, _ONNXOPT, ncnn.pnnx_binary)
_RKNN = (*_ONNX, _ONNXOPT, rknn.rknn_python)

TABLE = {
    ("tflite", "float32"): Target("tflite", "float32", tflite.build_float32, tflite.ops, ".tflite", "_float32"),
    ("tflite", "fp16"): Target("tflite", "fp16", tflite.build_fp16, tflite.ops, ".tflite", "_float16"),
    ("tflite", "dynamic"): Target("tflite", "dynamic", tflite.build_dynamic, tflite.ops, ".tflite", "_dynamic"),
    ("tflite", "int8"): Target("tflite", "int8", tflite.build_int8, tflite.ops, ".tflite", "_int8", calibrated=True),
    ("onnx", "float32"): Target("onnx", "float32", onnx.build_float32, onnx.ops, ".onnx", "", needs=_ONNX),
    ("onnx", "int8"): Target(
        "onnx", "int8", onnx.build_int8, onnx.ops, ".onnx", "_int8", calibrated=True, needs=(*_ONNX, _ORT)
    ),
    ("openvino", "float32"): Target(
        "openvino", "float32", openvino.build_float32, openvino.ops, ".xml", "_openvino", needs=(_OV,)
    ),
    ("openvino", "int8"): Target(
        "openvino", "int8", openvino.build_int8, openvino.ops, ".xml", "_openvino_int8", True, (_OV, _NNCF)
    ),
    ("ncnn", "float32"): Target("ncnn", "float32", ncnn.build_float32, ncnn.ops, ".param", "_ncnn", needs=_NCNN),
    ("ncnn", "fp16"): Target("ncnn", "fp16", ncnn.build_fp16, ncnn.ops, ".param", "_ncnn_fp16", needs=_NCNN),
    ("rknn", "int8"): Target(
        "rknn", "int8", rknn.build_int8, rknn.ops, ".rknn", "_rknn_int8", calibrated=True, needs=_RKNN
    ),
    ("rknn", "fp16"): Target("rknn", "fp16", rknn.build_fp16, rknn.ops, ".rknn", "_rknn_fp16", needs=_RKNN),
}


def target_for(format: str, precision: str) -> Target:
    """The Target for a format and precision; EdgesegError naming what that format offers otherwise."""
    if format not in EXPORT_FORMATS:
        raise EdgesegError(f"unknown format {format!r}: choose one of {', '.join(EXPORT_FORMATS)}")
    if precision not in PRECISIONS:
        raise EdgesegError(f"unknown precision {precision!r}: choose one of {', '.join(PRECISIONS)}")
    if (format, precision) in NOT_OFFERED:
        raise EdgesegError(f"{format} has no {precision} target: {NOT_OFFERED[(format, precision)]}")
    if (format, precision) not in TABLE:
        offered = ", ".join(p for f, p in TABLE if f == format)
        raise EdgesegError(f"{format} has no {precision} target: choose one of {offered}")
    return TABLE[(format, precision)]
