"""OnnxSegmenter: an .onnx segmentation model on ONNX Runtime, behind the same Predictor interface as the TFLite
Segmenter, so `run`, `bench` and `eval` take .onnx files too (the `onnx` extra). The spec comes from the
model's `edgeseg_spec` metadata (written by `edgeseg convert --onnx`), from `--spec`, or is read off the
tensors."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from edgeseg.errors import ModelError, missing_extra
from edgeseg.postprocess import output_classes, output_kind
from edgeseg.runtime import StagedPredictor, default_spec, installed_version
from edgeseg.spec import ModelSpec
from edgeseg.tflite_file import SPEC_METADATA_NAME

_DTYPES = {
    "tensor(float)": np.float32,
    "tensor(uint8)": np.uint8,
    "tensor(int8)": np.int8,
    "tensor(int64)": np.int64,
    "tensor(int32)": np.int32,
}


def _static_shape(arg) -> list[int]:
    """An ONNX Runtime input or output's shape, a symbolic (dynamic) dimension taken as 1."""
    return [d if isinstance(d, int) else 1 for d in arg.shape]


def _detail(arg) -> dict:
    """An ONNX Runtime input or output described as a TFLite tensor detail, which the shared stages read."""
    return {
        "name": arg.name,
        "index": 0,
        "shape": np.array(_static_shape(arg)),
        "dtype": _DTYPES.get(arg.type, np.float32),
        "quantization": (0.0, 0),
    }


class OnnxSegmenter(StagedPredictor):
    def __init__(
        self,
        model: Path | bytes,
        *,
        num_threads: int | None = None,
        spec: ModelSpec | None = None,
        threshold: float = 0.5,
        name: str | None = None,
    ):
        t0 = time.perf_counter_ns()
        try:
            import onnxruntime as ort
        except ImportError:
            raise missing_extra("onnxruntime (for .onnx models)", "onnx") from None
        self.path = Path(name or "model.onnx") if isinstance(model, bytes) else Path(model)
        opts = ort.SessionOptions()
        if num_threads:
            opts.intra_op_num_threads = num_threads
        opts.log_severity_level = 3
        try:
            self.session = ort.InferenceSession(
                model if isinstance(model, bytes) else str(model), opts, providers=["CPUExecutionProvider"]
            )
        except Exception as e:  # onnxruntime raises its own kinds for a file that is not a model
            raise ModelError(
                f"{self.path.name}: ONNX Runtime rejects this model ({str(e).splitlines()[0][:200]})"
            ) from None
        inputs, outputs = self.session.get_inputs(), self.session.get_outputs()
        if len(inputs) != 1:
            raise ModelError(f"{self.path.name}: expected one input tensor, found {len(inputs)}")
        shape = _static_shape(inputs[0])
        if len(shape) != 4 or shape[3] != 3:
            raise ModelError(f"{self.path.name}: input has shape {inputs[0].shape}, expected [1, H, W, 3] (NHWC)")
        self.input_detail, self.output_detail = _detail(inputs[0]), _detail(outputs[0])
        self.kind = output_kind(self.output_detail)
        self.spec = self._resolve_spec(spec, shape)
        self.threshold, self.num_threads = threshold, num_threads
        self.delegate, self.runtime_name = "cpu", "onnxruntime"
        self.model_bytes = len(model) if isinstance(model, bytes) else self.path.stat().st_size
        self.timings: dict[str, float] = {}
        self._input: np.ndarray | None = None
        self.init_ms = (time.perf_counter_ns() - t0) / 1e6

    def _resolve_spec(self, given: ModelSpec | None, shape) -> ModelSpec:
        self.spec_source = "given"
        if given is None:
            text = self.session.get_modelmeta().custom_metadata_map.get(SPEC_METADATA_NAME)
            try:
                given = ModelSpec.from_json(text) if text else None
            except ModelError as e:
                raise ModelError(f"{self.path.name}: embedded {e}") from None
            self.spec_source = "embedded" if given else "inferred"
            given = given or default_spec(self.input_detail, self.output_detail, self.kind)
        if given.input_hw != (shape[1], shape[2]):
            given = given.with_input_hw((shape[1], shape[2]))
        n = output_classes(self.output_detail, self.kind)
        if n is not None and n != given.num_classes:
            raise ModelError(f"{self.path.name}: output has {n} classes but its spec names {given.num_classes}")
        return given

    def invoke(self, tensor: np.ndarray) -> np.ndarray:
        return self.session.run([self.output_detail["name"]], {self.input_detail["name"]: tensor})[0]

    def set_input(self, tensor: np.ndarray) -> None:
        self._input = tensor

    def invoke_only(self) -> None:
        self.invoke(self._input)

    def describe(self) -> dict:
        return {
            "model": str(self.path),
            "size_bytes": self.model_bytes,
            "runtime": "onnxruntime",
            "runtime_version": installed_version("onnxruntime") or "unknown",
            "delegate": "cpu",
            "threads": self.num_threads,
            **self.io_description([0.0, 0]),
            "gmacs": None,
            "params": None,
            "macs_uncounted": ["onnx graph (not counted; the .keras or .tflite is)"],
        }
