"""convert --output-size half: the converted model's last resize stops at half the input size.

Profiled on nano (docs/benchmarks.md), the last bilinear resize of 11 class scores to the full 256x192 input was
11% of the invoke, and the host's argmax over that many scores a further 0.3 ms per frame. At half the size both
cost a quarter, and the mask still comes back at the frame's size (edgeseg.preprocess.restore_mask). The resize
has no weights, so the same trained model converts either way: edgeseg's decoders all end in a bilinear
UpSampling2D named "logits", which is rebuilt here with half its factor (or dropped at factor 2).
"""

from __future__ import annotations

import numpy as np

from edgeseg.errors import ModelError
from edgeseg.tensors import TensorInfo


def halve_output(keras_model) -> None:
    """Rebuild a KerasSegmenter's model so that its output is half the input's size (ModelError where the model
    does not end in an even bilinear "logits" resize)."""
    import keras

    model = keras_model.model
    try:
        last = model.get_layer("logits")
    except ValueError:
        last = None
    size = tuple(getattr(last, "size", ()) or ())
    if (
        last is None
        or not isinstance(last, keras.layers.UpSampling2D)
        or last.output is not model.outputs[0]
        or len(size) != 2
        or any(f % 2 for f in size)
    ):
        raise ModelError(
            f"{keras_model.path.name}: --output-size half needs a model that ends in an UpSampling2D by an even "
            "factor named 'logits', as edgeseg's decoders do"
        )
    half = (size[0] // 2, size[1] // 2)
    x = last.input
    if half != (1, 1):
        x = keras.layers.UpSampling2D(half, interpolation=last.interpolation, name="logits", dtype="float32")(x)
    keras_model.model = keras.Model(model.inputs, x, name=model.name)
    keras_model.output = TensorInfo("logits", (1, *keras_model.model.outputs[0].shape[1:]), np.dtype(np.float32))
    keras_model._fn = None  # the traced call was the old model's
