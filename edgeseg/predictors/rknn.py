"""RknnSegmenter: an .rknn model on a Rockchip board's NPU (RK3588, RK3576, RK3566/68, RK3562), through
rknn-toolkit-lite2 and the board's NPU driver (librknnrt), so `run`, `bench`, `eval` and load_model take .rknn
files on the board. Nothing else runs a .rknn: on a workstation, `convert --to rknn` checks the build in RKNN's
simulator instead (edgeseg.converters.rknn).

The .rknn format has no room for edgeseg's spec: it is the `<stem>.spec.json` that `convert --to rknn` writes
beside the model, or `--spec`. The model takes the float tensor edgeseg's preprocessing makes (NHWC; the runtime
quantises it for an int8 model) and gives the class scores, channels-first as the ONNX graph it was built from:
the predictor gives NHWC like every other runtime.

Not measured here: no machine of this project has a Rockchip NPU (see docs/runtimes.md)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from edgeseg.errors import ModelError, RuntimeUnavailable
from edgeseg.host import installed_version
from edgeseg.predictors.base import Predictor
from edgeseg.tensors import TensorInfo

RKNN_MAGIC = b"RKNN"  # the first bytes of every .rknn file


class RknnSegmenter(Predictor):
    """One .rknn model (its path) on the board's NPU. See Predictor for the arguments; threads do not apply (the
    NPU's cores are the runtime's to schedule), delegate can only be "auto" or "cpu" (the NPU is not a
    delegate here: it is the runtime)."""

    suffix = ".rknn"
    needs_spec = True

    def _open(self, model: Path | bytes, *, delegate: str, runtime: str) -> None:
        if delegate == "edgetpu":
            raise ModelError(f"{self.path.name}: the Edge TPU runs compiled .tflite models, not RKNN")
        if isinstance(model, bytes):
            raise ModelError("an RKNN model travels with its spec beside it: give the .rknn file's path")
        path, _ = self._on_disk(model)
        with open(path, "rb") as f:
            if f.read(len(RKNN_MAGIC)) != RKNN_MAGIC:
                raise ModelError(f"{path.name}: not an RKNN model (it does not start with {RKNN_MAGIC.decode()})")
        spec = self._sidecar_parsed()
        if spec is None:
            raise ModelError(
                f"{path.name}: no {path.stem}.spec.json beside it (convert --to rknn writes one); give --spec"
            )
        try:
            from rknnlite.api import RKNNLite
        except ImportError:
            raise RuntimeUnavailable(
                "a .rknn model runs on a Rockchip board's NPU with rknn-toolkit-lite2 (pip install "
                "rknn-toolkit-lite2 there, or the rknn extra); on a workstation, `convert --to rknn` checks it in "
                "RKNN's simulator"
            ) from None
        self.lite = RKNNLite(verbose=False)
        if self.lite.load_rknn(str(path)) != 0:
            raise ModelError(f"{path.name}: rknn-toolkit-lite2 cannot load it (another toolkit version's file?)")
        if self.lite.init_runtime() != 0:
            raise RuntimeUnavailable(
                f"{path.name}: the NPU runtime did not start: is this a Rockchip board with the NPU driver "
                "(librknnrt.so), and was the model built for its SoC (convert --platform)?"
            )
        self.runtime_name, self.delegate = "rknn", "npu"
        self.runtime_version = installed_version("rknn-toolkit-lite2") or "unknown"
        self.size_bytes = path.stat().st_size
        h, w = spec.input_hw
        self.input = TensorInfo("image", (1, h, w, 3), np.dtype(np.float32))
        self.output = TensorInfo("output", (1, h, w, spec.num_classes), np.dtype(np.float32))
        self._classes = spec.num_classes
        out = self.invoke(np.full((1, h, w, 3), 128, np.float32))  # a trial run: the output's real size
        self.output = self.output.with_shape(out.shape)

    def _embedded_spec(self) -> tuple[str | None, str]:
        return self._sidecar_spec()

    def invoke(self, tensor: np.ndarray) -> np.ndarray:
        """Run one prepared NHWC input tensor; return the output as NHWC."""
        x = np.ascontiguousarray(tensor, dtype=np.float32)
        outs = self.lite.inference(inputs=[x], data_type="float32", data_format="nhwc")
        if not outs:
            raise ModelError(f"{self.path.name}: the NPU returned no output")
        out = np.asarray(outs[0], dtype=np.float32)
        if out.ndim == 3:
            out = out[None]
        if out.ndim != 4:
            raise ModelError(f"{self.path.name}: output has shape {list(out.shape)}, expected 4 dimensions")
        if out.shape[1] == self._classes and out.shape[3] != self._classes:  # channels-first, as built
            out = out.transpose(0, 2, 3, 1)
        return np.ascontiguousarray(out)

    def close(self) -> None:
        """Release the NPU."""
        lite = getattr(self, "lite", None)
        if lite is not None:
            lite.release()
            self.lite = None


PREDICTOR = RknnSegmenter
