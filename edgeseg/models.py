"""load_model: a model file -> a Predictor: a .tflite becomes a runtime Segmenter (no TensorFlow); a .keras becomes
a KerasSegmenter, which imports TensorFlow only when such a file is given. Both keep the Predictor protocol,
which is all that eval, bench, the camera loop and the quantisation report use."""

from __future__ import annotations

from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np

from edgeseg.errors import ModelError
from edgeseg.postprocess import OutputKind
from edgeseg.preprocess import Geometry
from edgeseg.result import Result
from edgeseg.spec import ModelSpec


@runtime_checkable
class Predictor(Protocol):
    """A segmentation model behind three stages a pipelined loop can run on different threads:
    prepare (BGR frame -> input tensor, geometry), invoke (tensor -> raw output), finish (raw output -> H x W
    class mask at the frame's size). predict(frame) runs the three and records `timings` (ms per stage)."""

    path: Path
    spec: ModelSpec
    input_detail: dict
    output_detail: dict
    kind: OutputKind
    spec_source: str  # "embedded", "given" (--spec) or "inferred" (read off the tensors)
    timings: dict[str, float]

    def prepare(self, frame: np.ndarray) -> tuple[np.ndarray, Geometry]: ...

    def invoke(self, tensor: np.ndarray) -> np.ndarray: ...

    def finish(self, out: np.ndarray, geom: Geometry) -> np.ndarray: ...

    def segment(self, frame: np.ndarray) -> np.ndarray: ...

    def predict(self, frame: np.ndarray, scores: bool = False) -> Result: ...

    def stream(self, source, *, max_frames: int | None = None, reconnect: bool = True, size_wh=None): ...

    def set_input(self, tensor: np.ndarray) -> None: ...

    def invoke_only(self) -> None: ...

    def describe(self) -> dict: ...


def load_model(
    path: Path | str,
    *,
    threads: int | None = None,
    delegate: str = "auto",
    runtime: str = "auto",
    spec: Path | None = None,
    threshold: float = 0.5,
    labels: Path | None = None,
) -> Predictor:
    """Open a model: a shipped one by name ("nano", "small"), a .tflite (any segmentation model: ours, Coral's,
    MediaPipe's) or a .keras file (needs TensorFlow).

    Args:
        path: the model file, or a shipped model's name.
        threads: interpreter threads (default: the runtime's choice).
        delegate: "auto" (the Edge TPU for an _edgetpu.tflite), "cpu" or "edgetpu".
        runtime: "auto", "litert", "tflite-runtime" or "tensorflow".
        spec: a spec JSON for a model that carries none (class names, colours, normalisation).
        threshold: the foreground cut for a one-channel probability output.
        labels: a labels file (one class name per line, as Coral and Picamera2 ship them) for a .tflite whose
            classes have no names of their own.

    Returns:
        a Predictor: predict(frame) -> Result, stream(source) -> Results, segment(frame) -> mask, describe().
    """
    from edgeseg.assets import resolve_model

    path = resolve_model(path)
    given = ModelSpec.load(spec) if spec else None
    if path.suffix == ".onnx" or runtime == "onnx":
        if path.suffix != ".onnx":
            raise ModelError(f"{path.name}: --runtime onnx runs .onnx models (edgeseg convert MODEL.keras --onnx)")
        if delegate == "edgetpu":
            raise ModelError(f"{path.name}: the Edge TPU runs compiled .tflite models, not ONNX")
        from edgeseg.onnx_runtime import OnnxSegmenter

        return OnnxSegmenter(path, num_threads=threads, spec=given, threshold=threshold)
    if path.suffix == ".keras":
        from edgeseg.training.predict import KerasSegmenter  # says what to install when TensorFlow is absent

        return KerasSegmenter(path, given)
    from edgeseg.runtime import Segmenter, read_labels

    names = read_labels(labels) if labels else None
    return Segmenter(
        path, num_threads=threads, delegate=delegate, runtime=runtime, spec=given, threshold=threshold, labels=names
    )
