"""One module per runtime behind one base (edgeseg.predictors.base.Predictor), and open_predictor, which picks
the module for a model from the table of runtimes in edgeseg.choices (RUNTIME_TABLE). Adding a runtime is a
module here with one Predictor subclass named in its PREDICTOR, and one entry in that table.

- base.py: what every predictor shares (the input check, the spec, the stages, describe)
- spec_source.py: what a model without an edgeseg spec is taken to be (metadata, labels files, tensors)
- tflite.py: LiteRT, tflite-runtime, TensorFlow's interpreter; the Edge TPU delegate
- onnx.py: ONNX Runtime
- keras.py: Keras (the workstation's runtime: TensorFlow is imported when a .keras model is opened)
"""

from __future__ import annotations

import importlib
from pathlib import Path

from edgeseg.choices import RUNTIME_TABLE, RUNTIMES, SUFFIXES
from edgeseg.errors import ModelError, RuntimeUnavailable
from edgeseg.predictors.base import Predictor
from edgeseg.spec import ModelSpec


def predictor_class(path: Path, runtime: str = "auto") -> type[Predictor]:
    """The Predictor subclass that runs `path` with `runtime` ("auto": the one its suffix calls for)."""
    if runtime not in RUNTIMES:
        raise RuntimeUnavailable(f"unknown runtime {runtime!r}: choose one of {', '.join(RUNTIMES)}")
    suffix = Path(path).suffix.lower()
    if runtime == "auto":
        entry = next((e for e in RUNTIME_TABLE.values() if suffix in e.suffixes), None)
        if entry is None:
            raise ModelError(f"{Path(path).name}: not a model edgeseg runs (it runs {', '.join(SUFFIXES)} files)")
    else:
        entry = RUNTIME_TABLE[runtime]
        if suffix not in entry.suffixes:
            takes = ", ".join(entry.suffixes)
            raise ModelError(f"{Path(path).name}: --runtime {runtime} runs {takes} models, not {suffix or 'this'}")
    return importlib.import_module(entry.module).PREDICTOR


def open_predictor(
    path: Path | str,
    *,
    threads: int | None = None,
    delegate: str = "auto",
    runtime: str = "auto",
    spec: ModelSpec | None = None,
    threshold: float = 0.5,
    labels: list[str] | tuple[str, ...] | None = None,
) -> Predictor:
    """A model file on the runtime that runs it: its suffix picks the module (RUNTIME_TABLE), or `runtime` names
    one.

    Args:
        path: the model file.
        threads: the runtime's CPU threads (None: its own choice).
        delegate: "auto", "cpu" or "edgetpu".
        runtime: one of edgeseg.choices.RUNTIMES.
        spec: a ModelSpec that overrides what the model carries.
        threshold: the foreground cut for a one-channel probability output.
        labels: class names that replace the spec's.
    """
    cls = predictor_class(Path(path), runtime)
    return cls(
        Path(path),
        threads=threads,
        delegate=delegate,
        runtime=runtime,
        spec=spec,
        threshold=threshold,
        labels=labels,
    )


__all__ = ["Predictor", "open_predictor", "predictor_class"]
