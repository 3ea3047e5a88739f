"""The Python API: load_model -> a Model that predicts one frame, streams a camera, and describes itself.

A Model holds a Predictor (edgeseg.predictors: one class per runtime) and adds what a program wants beside it,
stream() from edgeseg.camera; this module sits above both, so that neither the predictors nor the device core
import the camera.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np

from edgeseg.models import open_model
from edgeseg.predictors import Predictor
from edgeseg.result import Result
from edgeseg.spec import ModelSpec


class Model:
    """One model, ready to run frames through: predict(), segment(), stream(), describe(). What load_model
    returns. The predictor behind it (`model.predictor`: its interpreter, session or Keras model) is there for
    what only one runtime has."""

    def __init__(self, predictor: Predictor):
        self.predictor = predictor

    @property
    def spec(self) -> ModelSpec:
        """The model's spec: input size, classes and their colours, normalisation, backbone, decoder."""
        return self.predictor.spec

    @property
    def path(self) -> Path:
        """The model's file."""
        return self.predictor.path

    @property
    def timings(self) -> dict[str, float]:
        """Milliseconds per stage (preprocess, invoke, postprocess) of the last predict() or segment()."""
        return self.predictor.timings

    def predict(self, frame: np.ndarray, scores: bool = False) -> Result:
        """Segment one BGR uint8 frame (any size): a Result with the mask at the frame's size, and with
        scores=True the per-class confidence where the model's output carries it."""
        return self.predictor.predict(frame, scores=scores)

    def segment(self, frame: np.ndarray) -> np.ndarray:
        """The mask alone (H x W class indices at the frame's size), as eval and bench use it."""
        return self.predictor.segment(frame)

    def stream(
        self,
        source: int | str | Path,
        *,
        max_frames: int | None = None,
        reconnect: bool = True,
        size_wh: tuple[int, int] | None = None,
        zones: Path | str | None = None,
    ) -> Iterator[Result]:
        """Results for the frames of a source, from the same pipelined capture as `edgeseg run`: a thread reads
        and prepares the next frame while this one runs. A live source yields its newest frame (stale ones are
        dropped); a file yields every frame in order.

        Args:
            source: a camera index (int), a video file, an image folder or glob, an rtsp:// or http:// URL,
                "picamera" (the Raspberry Pi camera), or "synthetic[:WxH]".
            max_frames: stop after this many frames (default: when the source ends).
            reconnect: reopen a live source that stops delivering.
            size_wh: ask a camera for this (width, height).
            zones: a zones.json: each Result's to_dict() then carries its zones' class shares, as
                `edgeseg run --zones` publishes them.

        Each Result's to_dict() is the JSON object `edgeseg run --publish/--jsonl` sends for a frame.
        """
        from edgeseg.camera.stream import source_kind, stream

        source_kind(source)  # a wrong kind of source is said now, not at the first next()
        z = None
        if zones is not None:
            from edgeseg.zones import load_zones

            z = load_zones(zones, self.spec.classes)  # a bad file is said now, not at the first next()
        return stream(self.predictor, source, max_frames=max_frames, reconnect=reconnect, size_wh=size_wh, zones=z)

    def describe(self) -> dict:
        """Runtime, delegate, threads, input and output tensors, classes, GMACs and params per frame."""
        return self.predictor.describe()

    def __repr__(self) -> str:
        return f"Model({self.path.name!r}, runtime={self.predictor.runtime_name!r})"


def load_model(
    path: Path | str,
    *,
    threads: int | None = None,
    delegate: str = "auto",
    runtime: str = "auto",
    spec: ModelSpec | Path | None = None,
    threshold: float = 0.5,
    labels: Path | list[str] | None = None,
) -> Model:
    """Open a model: a shipped one by name ("nano", "small"), a .tflite (any segmentation model: ours, Coral's,
    MediaPipe's), an .onnx, or a .keras file (needs TensorFlow).

    Args:
        path: the model file, or a shipped model's name.
        threads: the runtime's threads (default: the runtime's choice).
        delegate: "auto" (the Edge TPU for an _edgetpu.tflite), "cpu" or "edgetpu".
        runtime: "auto" (by the file's suffix), "litert", "tflite-runtime", "tensorflow", "onnx" or "keras".
        spec: a ModelSpec, or a spec JSON file, for a model that carries none (class names, colours,
            normalisation).
        threshold: the foreground cut for a one-channel probability output.
        labels: a labels file (one class name per line, as Coral and Picamera2 ship them), or the names.

    Returns:
        a Model: predict(frame) -> Result, stream(source) -> Results, segment(frame) -> mask, describe().
    """
    return Model(
        open_model(
            path, threads=threads, delegate=delegate, runtime=runtime, spec=spec, threshold=threshold, labels=labels
        )
    )
