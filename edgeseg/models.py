"""load_model: a model path -> something with .spec, .predict(frame), .invoke(tensor), .input_detail.

A .tflite becomes a runtime Segmenter (no TensorFlow). A .keras becomes a KerasSegmenter, which imports
TensorFlow, only when such a file is given."""

from __future__ import annotations

from pathlib import Path

from edgeseg.errors import ModelError
from edgeseg.spec import ModelSpec


def load_model(path: Path, *, threads: int | None = None, delegate: str = "auto", runtime: str = "auto",
               spec: Path | None = None, threshold: float = 0.5):
    path = Path(path)
    if not path.is_file():
        raise ModelError(f"{path}: no such model file")
    given = ModelSpec.load(spec) if spec else None
    if path.suffix == ".keras":
        from edgeseg.training.predict import KerasSegmenter  # says what to install when TensorFlow is absent

        return KerasSegmenter(path, given)
    from edgeseg.runtime import Segmenter

    return Segmenter(path, num_threads=threads, delegate=delegate, runtime=runtime, spec=given, threshold=threshold)
