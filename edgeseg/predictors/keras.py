"""KerasSegmenter: a trained .keras model behind the same interface as every runtime, so that `eval`, `bench`
and the converters' verification score it the same way. The workstation's runtime: TensorFlow and Keras are
imported when such a model is opened, never by the device path. Its spec is the spec.json beside the model
(train writes one), or one given."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from edgeseg.errors import ModelError, first_sentence
from edgeseg.host import installed_version
from edgeseg.predictors.base import Predictor
from edgeseg.tensors import TensorInfo


def load_keras(path: Path):
    """A .keras file as a Keras model (compile=False); ModelError for what is not one or without TensorFlow."""
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
        said = first_sentence(str(e))
        if "safe_mode" in str(e) or "unsafe_deserialization" in str(e):
            said += " edgeseg loads .keras files in Keras' safe mode and never runs code from them"
        raise ModelError(f"{path}: not a loadable Keras model ({said})") from None


class KerasSegmenter(Predictor):
    """A .keras segmentation model (float logits [1, H, W, C]) run by Keras on the CPU or GPU. See Predictor
    for the arguments; threads and delegate are TensorFlow's own business here."""

    suffix = ".keras"
    needs_spec = True

    def _open(self, model: Path | bytes, *, delegate: str, runtime: str) -> None:
        if isinstance(model, bytes):
            raise ModelError("a Keras model is opened from its .keras file, not from bytes")
        if delegate == "edgetpu":
            raise ModelError(f"{self.path.name}: the Edge TPU runs compiled .tflite models, not Keras")
        self.model = load_keras(Path(model))
        shape = tuple(self.model.inputs[0].shape)
        if len(self.model.inputs) != 1 or len(shape) != 4 or None in shape[1:]:
            raise ModelError(f"{self.path.name}: input {shape} is not a fixed-size [B, H, W, 3] image")
        out = tuple(self.model.outputs[0].shape)
        self.input = TensorInfo("image", (1, *shape[1:]), np.dtype(np.float32))
        self.output = TensorInfo("logits", (1, *out[1:]), np.dtype(np.float32))
        self.runtime_name, self.delegate = "keras", "cpu"
        self.runtime_version = installed_version("keras") or "unknown"
        self.size_bytes = Path(model).stat().st_size
        self._fn = None

    def _embedded_spec(self) -> tuple[str | None, str]:
        return self._sidecar_spec()

    def _cost(self) -> tuple[float | None, int | None, list[str]]:
        macs, params = keras_cost(self.model)
        return macs / 1e9, params, []

    def logits(self, tensor: np.ndarray) -> np.ndarray:
        """The model's float logits for one prepared input tensor (on TensorFlow a traced tf.function, built once;
        on JAX and PyTorch the model's own call)."""
        import keras

        if self._fn is None:
            if keras.backend.backend() == "tensorflow":
                import tensorflow as tf

                self._fn = tf.function(lambda x: self.model(x, training=False), jit_compile=False)
            else:
                self._fn = lambda x: self.model(x, training=False)
        return keras.ops.convert_to_numpy(self._fn(tensor))

    def invoke(self, tensor: np.ndarray) -> np.ndarray:
        """Run one prepared input tensor; return the float logits."""
        return self.logits(tensor)


PREDICTOR = KerasSegmenter


def all_layers(model):
    """Every layer of a Keras model, nested models' layers included (and the nested models themselves)."""
    import keras

    for layer in model.layers:
        yield layer
        if isinstance(layer, keras.Model):
            yield from all_layers(layer)


def keras_cost(model) -> tuple[int, int]:
    """(multiply-accumulates per frame, parameters) of a Keras model, by the rules edgeseg.cost applies to a
    .tflite graph (convolutions, depthwise, transposed and dense layers). Parameters are Keras' own count, which
    includes BatchNormalization's four per channel: the converter folds those into the convolutions, so the
    .tflite has fewer."""
    import keras

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
