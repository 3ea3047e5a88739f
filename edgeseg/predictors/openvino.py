"""OpenVinoSegmenter: an OpenVINO IR model (.xml with its .bin weights beside it) on OpenVINO's CPU plugin (the
`openvino` extra), so `run`, `bench`, `eval` and load_model take .xml files too. The spec comes from the IR's
rt_info (`edgeseg_spec`, written by `edgeseg convert --to openvino`), from a `<stem>.spec.json` beside it, from
`--spec`, or is read off the tensors. A model whose input is NCHW (the usual IR from PyTorch) gets a NHWC input
and output from OpenVINO's own preprocessing, compiled into the graph."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from edgeseg.errors import ModelError, missing_extra
from edgeseg.host import installed_version
from edgeseg.predictors.base import Predictor
from edgeseg.tensors import TensorInfo
from edgeseg.tflite_file import SPEC_METADATA_NAME

DEVICE = "CPU"


def tensor_info(port) -> TensorInfo:
    """An OpenVINO port as a TensorInfo: a dynamic dimension is None."""
    shape = port.get_partial_shape()
    if shape.rank.is_dynamic:
        raise ModelError(f"tensor {port.get_any_name()} has a dynamic rank: edgeseg runs [1, H, W, C] images")
    dims = tuple(d.get_length() if d.is_static else None for d in shape)
    return TensorInfo(port.get_any_name(), dims, np.dtype(port.get_element_type().to_dtype()))


def channels_first(shape: tuple[int | None, ...]) -> bool:
    """A [N, 3, H, W] image input (rather than [N, H, W, 3])."""
    return len(shape) == 4 and shape[1] == 3 and shape[3] != 3


class OpenVinoSegmenter(Predictor):
    """One OpenVINO IR model (the .xml's path) on OpenVINO's CPU plugin. See Predictor for the arguments;
    delegate can only be "auto" or "cpu"."""

    suffix = ".xml"

    def _open(self, model: Path | bytes, *, delegate: str, runtime: str) -> None:
        if delegate == "edgetpu":
            raise ModelError(f"{self.path.name}: the Edge TPU runs compiled .tflite models, not OpenVINO IR")
        if isinstance(model, bytes):
            raise ModelError("an OpenVINO model is two files (.xml and .bin): give the .xml file's path")
        try:
            import openvino as ov
        except ImportError:
            raise missing_extra("openvino (for .xml models)", "openvino") from None
        path, weights = self._on_disk(model, ".bin")
        with path.open("rb") as f:
            if b"<net" not in f.read(4096):
                raise ModelError(f"{path.name}: not an OpenVINO IR file (no <net> element at its start)")
        self.core = ov.Core()
        try:
            self.model = self.core.read_model(str(path), str(weights))
            inputs = self.model.inputs
            if len(inputs) != 1:
                raise ModelError(f"{path.name}: expected one input tensor, found {len(inputs)}")
            self._channels_first = channels_first(tensor_info(inputs[0]).shape)
            if self._channels_first:
                self.model = self._nhwc(self.model)
            self.input, self.output = tensor_info(self.model.inputs[0]), tensor_info(self.model.outputs[0])
        except RuntimeError as e:  # OpenVINO's errors are RuntimeErrors with a long trace inside
            raise ModelError(f"{path.name}: OpenVINO rejects this model ({_first_line(e)})") from None
        self.runtime_name, self.delegate = "openvino", "cpu"
        self.runtime_version = installed_version("openvino") or "unknown"
        self.size_bytes = path.stat().st_size + weights.stat().st_size
        self.request = None
        if self.input.static:
            self._compile()

    @staticmethod
    def _nhwc(model):
        """The model with NHWC input (and NHWC output, for an NCHW one), transposed inside OpenVINO's graph."""
        import openvino as ov
        from openvino.preprocess import PrePostProcessor

        ppp = PrePostProcessor(model)
        ppp.input().tensor().set_layout(ov.Layout("NHWC"))
        ppp.input().model().set_layout(ov.Layout("NCHW"))
        if model.outputs[0].get_partial_shape().rank.get_length() == 4:
            ppp.output().tensor().set_layout(ov.Layout("NHWC"))
            ppp.output().model().set_layout(ov.Layout("NCHW"))
        return ppp.build()

    def _compile(self) -> None:
        config = {"PERFORMANCE_HINT": "LATENCY"}
        if self.threads:
            config["INFERENCE_NUM_THREADS"] = self.threads
        try:
            compiled = self.core.compile_model(self.model, DEVICE, config)
        except RuntimeError as e:  # a .bin that does not hold the weights the .xml names fails here
            raise ModelError(f"{self.path.name}: OpenVINO cannot compile this model ({_first_line(e)})") from None
        self.request = compiled.create_infer_request()

    def _fix_input_hw(self, hw: tuple[int, int]) -> None:
        try:  # the input is NHWC here, whatever the model's own layout (see _nhwc)
            self.model.reshape({self.model.inputs[0]: [1, *hw, 3]})
        except RuntimeError as e:
            raise ModelError(f"{self.path.name}: cannot run at {hw[1]}x{hw[0]} ({_first_line(e)})") from None
        self.output = tensor_info(self.model.outputs[0])
        self._compile()

    def _embedded_spec(self) -> tuple[str | None, str]:
        if self.model.has_rt_info([SPEC_METADATA_NAME]):
            return str(self.model.get_rt_info([SPEC_METADATA_NAME]).astype(str)), "embedded"
        return self._sidecar_spec()

    def invoke(self, tensor: np.ndarray) -> np.ndarray:
        """Run one prepared input tensor; return the raw output tensor."""
        self.request.infer({0: tensor})
        return self.request.get_output_tensor(0).data.copy()


# OpenVINO's checks that fail, in a user's words.
_SAID = {
    "is_valid_weights_range": "its .bin is shorter than the .xml says: truncated, or another model's weights",
    "pugi::status_ok": "the .xml is not well-formed XML: truncated?",
}


def _first_line(e: Exception) -> str:
    for key, said in _SAID.items():
        if key in str(e):
            return said
    lines = [ln.strip() for ln in str(e).splitlines() if ln.strip() and not ln.strip().startswith("Exception from")]
    return (lines[0] if lines else type(e).__name__)[:200]


PREDICTOR = OpenVinoSegmenter
