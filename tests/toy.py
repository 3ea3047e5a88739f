"""Toy .tflite models, one per output convention a user may bring, built with TensorFlow for the tests.

Each maps a pixel's colour to a class in a known way, so the tests can say which class a pixel must get:
class = argmax over (R, G, B) of the input (so a pure red frame is class 0, green 1, blue 2).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

HW = (24, 40)


def _convert(model, hw, int_type=None, io=None):
    from edgeseg.converters.tflite import int8_settings, keras_converter

    conv = keras_converter(model)
    if int_type is not None:

        def gen():
            rng = np.random.default_rng(0)
            for _ in range(16):
                yield [rng.uniform(0, 255, (1, *hw, model.inputs[0].shape[-1])).astype(np.float32)]

        int8_settings(conv, gen, int_type, io or int_type)
    return conv.convert()


def _scores_model(hw, classes=3, channels=3):
    import keras

    inp = keras.Input((*hw, channels))
    # 1x1 conv with the identity on RGB: class c's score is channel c (minus a constant), so negative scores
    # appear in int8 and argmax must work on the raw signed integers.
    conv = keras.layers.Conv2D(classes, 1, use_bias=True)
    out = conv(keras.layers.Rescaling(1 / 255.0)(inp))
    w = np.zeros((1, 1, channels, classes), np.float32)
    for c in range(min(channels, classes)):
        w[0, 0, c, c] = 4.0
    conv.set_weights([w, np.full(classes, -2.0, np.float32)])
    return keras.Model(inp, out)


def build_all(folder: Path) -> dict[str, Path]:
    import keras
    import tensorflow as tf

    folder = Path(folder)
    out = {}

    def save(name: str, data: bytes) -> None:
        p = folder / f"{name}.tflite"
        p.write_bytes(data)
        out[name] = p

    scores = _scores_model(HW)
    save("scores_float", _convert(scores, HW))
    save("scores_int8", _convert(scores, HW, "int8"))
    save("scores_uint8", _convert(scores, HW, "uint8"))

    inp = keras.Input((*HW, 3))
    idx = keras.layers.Lambda(lambda t: tf.argmax(t, axis=-1))(scores(inp))
    save("index_int64", _convert(keras.Model(inp, idx), HW))

    def prob_model(slope: float):
        # probability that red dominates: sigmoid(slope * (R - max(G, B)))
        inp = keras.Input((*HW, 3))
        r = keras.layers.Lambda(
            lambda t: tf.sigmoid(slope * (t[..., :1] - tf.reduce_max(t[..., 1:], -1, keepdims=True)))
        )(inp)
        return keras.Model(inp, r)

    # A float input gets [0, 1] by the default spec; a quantised one gets raw pixels 0..255.
    save("prob_float", _convert(prob_model(50.0), HW))
    save("prob_int8", _convert(prob_model(0.05), HW, "int8"))

    grey = _scores_model(HW, classes=2, channels=1)
    save("grey_input", _convert(grey, HW))
    inp = keras.Input((*HW, 3))
    save(
        "classifier", _convert(keras.Model(inp, keras.layers.Dense(4)(keras.layers.GlobalAveragePooling2D()(inp))), HW)
    )
    return out


def solid(colour_bgr: tuple[int, int, int], hw=(30, 70)) -> np.ndarray:
    f = np.zeros((*hw, 3), np.uint8)
    f[:] = colour_bgr
    return f
