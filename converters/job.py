"""Job: what one conversion target works from: the Keras model (behind its predictor), its spec, the calibration
set for a calibrated target, and the target's options. Every target function takes one and returns bytes."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

from edgeseg.converters.calibration import CalibrationSet
from edgeseg.predictors.keras import KerasSegmenter
from edgeseg.spec import ModelSpec


@dataclass
class Job:
    """One conversion's inputs.

    Attributes:
        keras: the float model (its .model is the Keras model).
        spec: the spec that travels with the result.
        calibration: the calibration set of a calibrated target (int8), else None.
        io_dtype: an int8 TFLite model's input and output type ("int8" or "uint8").
        mediapipe: also write MediaPipe's ImageSegmenter metadata (TFLite only).
        platform: the Rockchip SoC an RKNN model is built for (edgeseg.choices.RKNN_PLATFORMS).
        progress: show a bar while calibrating.
        log: where progress lines and warnings go.
    """

    keras: KerasSegmenter
    spec: ModelSpec
    calibration: CalibrationSet | None = None
    io_dtype: str = "int8"
    mediapipe: bool = False
    progress: bool = False
    platform: str = "rk3588"
    log: Callable[[str], None] = print

    def calibration_tensors(self) -> Iterator:
        """The calibration images as float32 [1, H, W, 3] tensors, through edgeseg.preprocess (with a bar)."""
        tensors = self.calibration.tensors(self.spec)
        if self.progress:
            from tqdm import tqdm

            tensors = tqdm(tensors, total=len(self.calibration), desc="calibrating", unit="img", leave=False)
        return tensors

    def representative(self) -> Iterator[list]:
        """The TFLite converter's representative dataset: one list (the model's one input) per image."""
        for t in self.calibration_tensors():
            yield [t]
