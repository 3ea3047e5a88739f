"""OnnxSegmenter: an .onnx segmentation model on ONNX Runtime (the `onnx` extra), so `run`, `bench` and `eval`
take .onnx files too. The spec comes from the model's `edgeseg_spec` metadata (written by `edgeseg convert --to
onnx`), from `--spec`, or is read off the tensors. An input with a dynamic height and width runs at the spec's
size; without a spec it is refused (it used to run at 1x1)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from edgeseg.errors import ModelError, missing_extra
from edgeseg.host import installed_version
from edgeseg.predictors.base import Predictor
from edgeseg.tensors import TensorInfo
from edgeseg.tflite_file import SPEC_METADATA_NAME

_DTYPES = {
    "tensor(float)": np.float32,
    "tensor(uint8)": np.uint8,
    "tensor(int8)": np.int8,
    "tensor(int64)": np.int64,
    "tensor(int32)": np.int32,
}


def tensor_info(arg) -> TensorInfo:
    """An ONNX Runtime NodeArg as a TensorInfo: a symbolic or unknown dimension is None. ONNX graphs carry
    their quantisation inside (QDQ nodes), so the tensors themselves have none."""
    if arg.type not in _DTYPES:
        raise ModelError(f"tensor {arg.name} is {arg.type}: edgeseg reads float, uint8, int8, int32 and int64")
    shape = tuple(d if isinstance(d, int) and d > 0 else None for d in arg.shape)
    return TensorInfo(arg.name, shape, np.dtype(_DTYPES[arg.type]))


class OnnxSegmenter(Predictor):
    """One segmentation .onnx (a path or its bytes) on ONNX Runtime's CPU provider. See Predictor for the
    arguments; delegate can only be "auto" or "cpu"."""

    suffix = ".onnx"

    def _open(self, model: Path | bytes, *, delegate: str, runtime: str) -> None:
        if delegate == "edgetpu":
            raise ModelError(f"{self.path.name}: the Edge TPU runs compiled .tflite models, not ONNX")
        try:
            import onnxruntime as ort
        except ImportError:
            raise missing_extra("onnxruntime (for .onnx models)", "onnx") from None
        opts = ort.SessionOptions()
        if self.threads:
            opts.intra_op_num_threads = self.threads
        opts.log_severity_level = 3
        if not isinstance(model, bytes) and not Path(model).is_file():
            raise ModelError(f"{model}: no such model file")
        try:
            self.session = ort.InferenceSession(
                model if isinstance(model, bytes) else str(model), opts, providers=["CPUExecutionProvider"]
            )
        except Exception as e:  # onnxruntime raises its own kinds for a file that is not a model
            raise ModelError(
                f"{self.path.name}: ONNX Runtime rejects this model ({str(e).splitlines()[0][:200]})"
            ) from None
        try:  # names are decoded as UTF-8 on the way out: a damaged file fails here
            inputs, outputs = self.session.get_inputs(), self.session.get_outputs()
        except (UnicodeDecodeError, RuntimeError) as e:
            raise ModelError(f"{self.path.name}: its inputs and outputs cannot be read ({type(e).__name__})") from None
        if len(inputs) != 1:
            raise ModelError(f"{self.path.name}: expected one input tensor, found {len(inputs)}")
        try:
            self.input, self.output = tensor_info(inputs[0]), tensor_info(outputs[0])
        except ModelError as e:
            raise ModelError(f"{self.path.name}: {e}") from None
        self.runtime_name, self.delegate = "onnxruntime", "cpu"
        self.runtime_version = installed_version("onnxruntime") or "unknown"
        self.size_bytes = len(model) if isinstance(model, bytes) else Path(model).stat().st_size

    def _fix_input_hw(self, hw: tuple[int, int]) -> None:
        # the output's size follows the input's: a dynamic output becomes the input's size (a segmentation map)
        shape = self.output.shape
        if len(shape) >= 3 and (shape[1] is None or shape[2] is None):
            self.output = self.output.with_shape((1, *hw, *shape[3:]))

    def _embedded_spec(self) -> tuple[str | None, str]:
        try:  # ONNX Runtime decodes the metadata as UTF-8 when asked for it: a damaged file fails here
            return self.session.get_modelmeta().custom_metadata_map.get(SPEC_METADATA_NAME), "embedded"
        except (UnicodeDecodeError, RuntimeError) as e:
            raise ModelError(f"{self.path.name}: its metadata cannot be read ({type(e).__name__})") from None

    def invoke(self, tensor: np.ndarray) -> np.ndarray:
        """Run one prepared input tensor; return the raw output tensor."""
        return self.session.run([self.output.name], {self.input.name: tensor})[0]


PREDICTOR = OnnxSegmenter
