"""KerasSegmenter: a trained .keras model behind the same predict(frame) -> mask call as the runtime's
Segmenter, so `eval` and the converter's verification score both the same way. Workstation only."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from edgeseg.errors import ModelError
from edgeseg.postprocess import OutputKind
from edgeseg.preprocess import FLOAT_INPUT
from edgeseg.runtime import StagedPredictor
from edgeseg.spec import ModelSpec, spec_path_for


def load_keras(path: Path):
    path = Path(path)
    if not path.is_file():
        raise ModelError(f"{path}: no such model")
    try:
        import keras
    except ImportError:
        raise ModelError(
            f"{path.name}: a .keras model needs TensorFlow: pip install 'edgeseg[train]', "
            "or convert it to .tflite on a workstation"
        ) from None
    try:
        return keras.saving.load_model(path, compile=False)
    except Exception as e:  # keras raises many kinds for a file that is not a model
        raise ModelError(f"{path}: not a loadable Keras model ({str(e).splitlines()[0][:160]})") from None


def load_spec_for(path: Path, spec: ModelSpec | Path | None = None) -> ModelSpec:
    if isinstance(spec, ModelSpec):
        return spec
    p = Path(spec) if spec else spec_path_for(Path(path))
    if not p.is_file():
        raise ModelError(f"{path}: no spec.json beside the model; give one with --spec")
    return ModelSpec.load(p)


class KerasSegmenter(StagedPredictor):
    def __init__(self, model: Path, spec: ModelSpec | Path | None = None):
        t0 = time.perf_counter_ns()
        self.path = Path(model)
        self.model = load_keras(self.path)
        self.spec = load_spec_for(self.path, spec)
        shape = tuple(self.model.inputs[0].shape)
        if len(shape) != 4 or shape[3] != 3 or None in shape[1:3]:
            raise ModelError(f"{self.path.name}: input {shape} is not a fixed-size [B, H, W, 3] image")
        if tuple(shape[1:3]) != self.spec.input_hw:
            self.spec = self.spec.with_input_hw(tuple(shape[1:3]))
        self.input_detail = dict(FLOAT_INPUT, shape=[1, *shape[1:]])
        out = tuple(self.model.outputs[0].shape)
        self.output_detail = {"name": "logits", "shape": [1, *out[1:]], "dtype": np.float32, "quantization": (0.0, 0)}
        self.kind = OutputKind.SCORES
        if len(out) != 4 or out[3] != self.spec.num_classes:
            raise ModelError(
                f"{self.path.name}: output {out} has {out[-1]} classes but its spec names {self.spec.num_classes}"
            )
        self.spec_source = "given" if spec is not None else "embedded"
        self.timings: dict[str, float] = {}
        self._input: np.ndarray | None = None
        self.init_ms = (time.perf_counter_ns() - t0) / 1e6
        self._fn = None

    def logits(self, tensor: np.ndarray) -> np.ndarray:
        if self._fn is None:
            import tensorflow as tf

            self._fn = tf.function(lambda x: self.model(x, training=False), jit_compile=False)
        return np.asarray(self._fn(tensor))

    def invoke(self, tensor: np.ndarray) -> np.ndarray:
        return self.logits(tensor)

    def set_input(self, tensor: np.ndarray) -> None:
        self._input = tensor

    def invoke_only(self) -> None:
        self.logits(self._input)

    def describe(self) -> dict:
        macs, params = keras_cost(self.model)
        return {
            "model": str(self.path),
            "size_bytes": self.path.stat().st_size,
            "runtime": "keras",
            "delegate": "cpu",
            "threads": None,
            "init_ms": round(self.init_ms, 3),
            "input": {"shape": self.input_detail["shape"], "dtype": "float32"},
            "classes": list(self.spec.classes),
            "gmacs": round(macs / 1e9, 4),
            "params": params,
        }


def keras_cost(model) -> tuple[int, int]:
    """(multiply-accumulates per frame, parameters) of a Keras model, by the rules edgeseg.cost applies to a
    .tflite graph (convolutions, depthwise, transposed and dense layers). Parameters are Keras' own count, which
    includes BatchNormalization's four per channel: the converter folds those into the convolutions, so the
    .tflite has fewer."""
    import keras

    from edgeseg.training.model import all_layers

    def elems(shape) -> int:
        n = 1
        for d in shape[1:]:  # batch 1
            n *= int(d or 1)
        return n

    macs = 0
    for layer in all_layers(model):
        if isinstance(layer, keras.layers.DepthwiseConv2D):
            kh, kw = layer.kernel_size
            macs += elems(layer.output.shape) * kh * kw
        elif isinstance(layer, keras.layers.Conv2DTranspose):
            kh, kw = layer.kernel_size
            macs += elems(layer.input.shape) * kh * kw * layer.filters
        elif isinstance(layer, keras.layers.Conv2D):  # SeparableConv2D is not used by edgeseg's models
            kh, kw = layer.kernel_size
            macs += elems(layer.output.shape) * kh * kw * int(layer.input.shape[-1]) // layer.groups
        elif isinstance(layer, keras.layers.Dense):
            macs += elems(layer.output.shape) * int(layer.input.shape[-1])
    return macs, int(model.count_params())
