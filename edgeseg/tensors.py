"""TensorInfo: what edgeseg needs to know of a model's input or output tensor, whatever runtime holds it.

Each runtime describes its tensors in its own way (LiteRT's detail dicts, ONNX Runtime's NodeArg, a Keras
KerasTensor); each predictor turns its own into a TensorInfo once, and preprocessing, postprocessing and
describe() read only this. A dynamic dimension is None, never a guess.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class TensorInfo:
    """One tensor: name, shape (None for a dynamic dimension), dtype, and its affine quantisation (scale 0 when
    it has none: real = (q - zero_point) * scale)."""

    name: str
    shape: tuple[int | None, ...]
    dtype: np.dtype
    scale: float = 0.0
    zero_point: int = 0

    def __post_init__(self) -> None:
        object.__setattr__(self, "dtype", np.dtype(self.dtype))
        object.__setattr__(self, "shape", tuple(None if d is None else int(d) for d in self.shape))

    @property
    def quantized(self) -> bool:
        """An integer tensor with quantisation parameters (its integers stand for real values)."""
        return self.dtype != np.float32 and bool(self.scale)

    @property
    def static(self) -> bool:
        """Every dimension is known."""
        return None not in self.shape

    def with_shape(self, shape: tuple[int | None, ...]) -> TensorInfo:
        """The same tensor at another shape (a dynamic input fixed to the spec's size)."""
        return TensorInfo(self.name, tuple(shape), self.dtype, self.scale, self.zero_point)

    def to_dict(self) -> dict:
        """Shape, dtype and quantisation as JSON values (what describe() reports)."""
        return {
            "name": self.name,
            "shape": list(self.shape),
            "dtype": self.dtype.name,
            "quantization": [float(self.scale), int(self.zero_point)],
        }


def float_tensor(name: str = "image", shape: tuple[int | None, ...] = (1, None, None, 3)) -> TensorInfo:
    """A float32 tensor that takes real values as they are (a Keras model's input, calibration)."""
    return TensorInfo(name, shape, np.dtype(np.float32))


FLOAT_INPUT = float_tensor()
