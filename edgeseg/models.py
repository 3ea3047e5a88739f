"""open_model: a model by shipped name or path, with the user's spec or labels file, on the runtime that runs it.
What `run`, `bench`, `eval` and the Python API's load_model open models with."""

from __future__ import annotations

from pathlib import Path

from edgeseg.predictors import Predictor, open_predictor
from edgeseg.predictors.spec_source import read_labels
from edgeseg.spec import ModelSpec


def open_model(
    path: Path | str,
    *,
    threads: int | None = None,
    delegate: str = "auto",
    runtime: str = "auto",
    spec: ModelSpec | Path | None = None,
    threshold: float = 0.5,
    labels: Path | list[str] | None = None,
) -> Predictor:
    """Open a model: a shipped one by name ("nano", "small"), a .tflite (any segmentation model: ours, Coral's,
    MediaPipe's), an .onnx, or a .keras file (needs TensorFlow).

    Args:
        path: the model file, or a shipped model's name.
        threads: the runtime's threads (default: the runtime's choice).
        delegate: "auto" (the Edge TPU for an _edgetpu.tflite), "cpu" or "edgetpu".
        runtime: one of edgeseg.choices.RUNTIMES ("auto": the one the file's suffix calls for).
        spec: a ModelSpec, or a spec JSON file, for a model that carries none (class names, colours, normalisation).
        threshold: the foreground cut for a one-channel probability output.
        labels: a labels file (one class name per line, as Coral and Picamera2 ship them), or the names, for a
            model whose classes have no names of their own.

    Returns:
        a Predictor: predict(frame) -> Result, segment(frame) -> mask, describe().
    """
    from edgeseg.assets import resolve_model

    path = resolve_model(path)
    given = ModelSpec.load(spec) if isinstance(spec, str | Path) else spec
    names = read_labels(labels) if isinstance(labels, str | Path) else labels
    return open_predictor(
        path, threads=threads, delegate=delegate, runtime=runtime, spec=given, threshold=threshold, labels=names
    )


__all__ = ["Predictor", "open_model"]
