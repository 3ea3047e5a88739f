"""Activation equalisation before int8 (edgeseg.converters.equalize): which spots it finds, that the float
function is unchanged and the weights come back, and that the int8 model lands closer to float with it."""

from __future__ import annotations

import numpy as np
import pytest

keras = pytest.importorskip("keras")

from edgeseg.converters.equalize import equalized, find_pairs  # noqa: E402

H, W = 32, 32


def _bn(name: str, gammas: np.ndarray, rng) -> keras.layers.BatchNormalization:
    """A BatchNorm whose channels come out on very different scales (gamma spread over two decades)."""
    layer = keras.layers.BatchNormalization(name=name)
    layer.build((None, H, W, len(gammas)))
    c = len(gammas)
    layer.set_weights([gammas.astype("float32"), rng.normal(0, 0.1, c).astype("float32"), np.zeros(c), np.ones(c)])
    return layer


def _encoder(rng) -> keras.Model:
    """conv -> BN -> ReLU6 -> pad -> depthwise -> BN -> ReLU6 -> 1x1 conv, plus a skip read by the caller."""
    x = inp = keras.Input((H, W, 3))
    x = keras.layers.Conv2D(8, 3, padding="same", use_bias=False, name="stem")(x)
    x = _bn("stem_bn", np.geomspace(0.02, 2.0, 8), rng)(x)
    x = keras.layers.ReLU(6.0, name="stem_relu")(x)
    x = keras.layers.ZeroPadding2D(1, name="pad")(x)
    x = keras.layers.DepthwiseConv2D(3, use_bias=False, name="dw")(x)
    x = _bn("dw_bn", np.geomspace(0.01, 3.0, 8), rng)(x)
    skip = keras.layers.ReLU(6.0, name="dw_relu")(x)  # read by project and by the outer model: left alone
    x = keras.layers.Conv2D(16, 1, use_bias=False, name="project")(skip)
    x = _bn("project_bn", np.geomspace(0.05, 1.0, 16), rng)(x)
    x = keras.layers.Activation("relu", name="project_relu")(x)
    x = keras.layers.Conv2D(16, 1, name="expand")(x)
    return keras.Model(inp, [skip, x], name="encoder")


def _model(seed: int = 0) -> keras.Model:
    """An outer model around the nested encoder, as edgeseg's U-Nets are built."""
    rng = np.random.default_rng(seed)
    keras.utils.set_random_seed(seed)
    inp = keras.Input((H, W, 3))
    x = keras.layers.Rescaling(1 / 127.5, offset=-1, name="scale_pixels")(inp)
    skip, x = _encoder(rng)(x)
    x = keras.layers.Conv2D(8, 1, use_bias=False, name="head_conv")(x)
    x = _bn("head_bn", np.geomspace(0.02, 2.0, 8), rng)(x)
    x = keras.layers.ReLU(6.0, name="head_relu")(x)
    x = keras.layers.Concatenate(name="concat")([x, skip])
    out = keras.layers.Conv2D(4, 1, name="logits")(x)
    return keras.Model(inp, out)


def _frames(n: int, seed: int = 1) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.uniform(0, 255, (1, H, W, 3)).astype("float32") for _ in range(n)]


def test_it_finds_the_bn_relu_conv_spots_inside_nested_models_and_leaves_a_shared_activation_alone():
    found = {(p.bn.name, p.relu.name, p.conv.name, p.cap) for p in find_pairs(_model())}
    assert found == {
        ("stem_bn", "stem_relu", "dw", 6.0),  # through the ZeroPadding2D
        ("project_bn", "project_relu", "expand", None),  # a plain ReLU: no cap
    }
    # dw_relu is read twice (project and the outer concat); head_relu feeds a Concatenate, not a convolution


def test_the_float_function_is_unchanged_inside_and_the_weights_come_back_after():
    model, frames = _model(), _frames(6)
    before = [model(f).numpy() for f in frames]
    weights = [w.copy() for w in model.get_weights()]
    with equalized(model, frames) as summary:
        inside = [model(f).numpy() for f in frames]
        changed = [not np.array_equal(a, b) for a, b in zip(weights, model.get_weights(), strict=True)]
    assert summary.pairs == 2 and summary.changed == 2
    assert summary.channels > 0 and 1.0 < summary.largest_scale <= 16.0
    assert any(changed), "equalisation changed no weight"
    for a, b in zip(before, inside, strict=True):
        np.testing.assert_allclose(b, a, rtol=1e-4, atol=1e-4 * float(np.abs(a).max()))
    for a, b in zip(weights, model.get_weights(), strict=True):
        assert np.array_equal(a, b)


def test_a_scaled_relu6_channel_stays_under_the_cap_on_the_calibration_frames():
    model, frames = _model(), _frames(6)
    with equalized(model, frames):
        enc = model.get_layer("encoder")
        probe = keras.Model(enc.input, enc.get_layer("stem_bn").output)
        feed = keras.Model(model.input, model.get_layer("scale_pixels").output)
        top = max(float(probe(feed(f)).numpy().max(axis=(0, 1, 2)).max()) for f in frames)
    assert top <= 6.0 * 0.8 + 1e-3


def test_weights_are_put_back_when_the_block_raises():
    model, frames = _model(), _frames(3)
    weights = [w.copy() for w in model.get_weights()]
    with pytest.raises(RuntimeError), equalized(model, frames):
        raise RuntimeError("the conversion failed")
    assert all(np.array_equal(a, b) for a, b in zip(weights, model.get_weights(), strict=True))


def _spread_model() -> keras.Model:
    """conv -> BN (channels two decades apart) -> ReLU6 -> 1x1 conv whose weights undo the spread, so every
    channel carries as much of the output (as a trained network's next layer does)."""
    rng = np.random.default_rng(3)
    keras.utils.set_random_seed(3)
    gammas = np.geomspace(0.05, 3.0, 8)  # one channel never passes 0: its 1x1 weights are the largest
    inp = keras.Input((H, W, 3))
    x = keras.layers.Rescaling(1 / 127.5, offset=-1)(inp)
    x = keras.layers.Conv2D(8, 3, padding="same", use_bias=False)(x)
    x = _bn("bn", gammas, rng)(x)
    x = keras.layers.ReLU(6.0)(x)
    last = keras.layers.Conv2D(4, 1)
    out = last(x)
    w, b = last.get_weights()
    last.set_weights([(w / gammas.reshape(1, 1, -1, 1)).astype("float32"), b])
    return keras.Model(inp, out)


def test_int8_lands_closer_to_float_with_equalisation():
    from edgeseg.converters.tflite import int8_settings, keras_converter

    model, frames = _spread_model(), _frames(24)
    test = _frames(8, seed=7)
    float_out = [model(f).numpy() for f in test]

    def int8_error() -> float:
        conv = keras_converter(model)
        int8_settings(conv, lambda: ([f] for f in frames), "float32")
        from edgeseg.predictors.tflite import import_runtime

        it = import_runtime("tensorflow").interpreter_cls(model_content=conv.convert())
        it.allocate_tensors()
        i, o = it.get_input_details()[0]["index"], it.get_output_details()[0]["index"]
        err = []
        for f, ref in zip(test, float_out, strict=True):
            it.set_tensor(i, f)
            it.invoke()
            err.append(np.sqrt(np.mean((it.get_tensor(o) - ref) ** 2)))
        return float(np.mean(err))

    plain = int8_error()
    with equalized(model, frames):
        even = int8_error()
    assert even < 0.8 * plain, (plain, even)


def test_equalize_on_a_target_that_does_not_calibrate_is_said_and_skipped():
    from edgeseg.converters.pipeline import ConvertOptions
    from edgeseg.converters.targets import target_for

    said = ConvertOptions(equalize=True, edgetpu=True).steps_that_do_not_apply(target_for("tflite", "fp16"))
    assert said == [
        "--equalize prepares a model for int8 calibration: ignored for tflite fp16",
        "--edgetpu checks an int8 TFLite model: ignored for tflite fp16",
    ]
    # every calibrated target takes it: int8 TFLite and ONNX int8 say nothing about it
    for fmt in ("tflite", "onnx"):
        assert ConvertOptions(equalize=True).steps_that_do_not_apply(target_for(fmt, "int8")) == []


def test_a_subclassed_model_has_no_graph_to_read_and_is_left_as_it_is():
    class Net(keras.Model):
        def __init__(self):
            super().__init__()
            self.conv, self.bn = keras.layers.Conv2D(4, 3, padding="same"), keras.layers.BatchNormalization()
            self.relu, self.out = keras.layers.ReLU(6.0), keras.layers.Conv2D(2, 1)

        def call(self, x):
            return self.out(self.relu(self.bn(self.conv(x))))

    net, frames = Net(), _frames(2)
    net(frames[0])
    weights = [w.copy() for w in net.get_weights()]
    with equalized(net, frames) as summary:
        assert summary.pairs == 0 and summary.changed == 0
    assert all(np.array_equal(a, b) for a, b in zip(weights, net.get_weights(), strict=True))


def test_auto_builds_both_and_keeps_the_one_closer_to_keras(tiny_run, synthetic_data, tmp_path):
    from edgeseg.converters.pipeline import AUTO_CHECK_IMAGES, convert
    from edgeseg.predictors.keras import KerasSegmenter
    from edgeseg.predictors.tflite import Segmenter

    said = []
    res = convert(
        tiny_run / "model.keras",
        tmp_path / "auto.tflite",
        precision="int8",
        calibration=synthetic_data,
        num_calibration=16,
        equalize="auto",
        progress=False,
        log=said.append,
    )
    eq = res.to_dict()["equalized"]
    a = eq["agreement"]
    assert eq["mode"] == "auto" and eq["changed"] > 0 and set(a) == {"equalized", "plain"}
    assert eq["applied"] == (a["equalized"] > a["plain"]) and res.agreement == max(a.values())
    # compared on more held-out images than the default check's 8 (all there are here, up to AUTO_CHECK_IMAGES)
    assert 8 < res.verify_images <= AUTO_CHECK_IMAGES
    kept = "equalised" if eq["applied"] else "plain"
    assert sum(f"--equalize auto: kept the {kept} build" in line for line in said) == 1, said
    # the file written is the build kept: its argmax agrees with Keras' as often as the result says
    from edgeseg.converters.calibration import calibration_set, verification_frames

    keras_seg, tfl = KerasSegmenter(tiny_run / "model.keras"), Segmenter(res.path)
    cal = calibration_set(synthetic_data, keras_seg.spec, 16)
    frames, _ = verification_frames([synthetic_data], keras_seg.spec, AUTO_CHECK_IMAGES, exclude=cal)
    same = sum(int((keras_seg.segment(f) == tfl.segment(f)).sum()) for f in frames)
    assert same / sum(f.shape[0] * f.shape[1] for f in frames) == pytest.approx(res.agreement, abs=1e-9)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["auto.tflite"]  # one file, the kept one


def test_an_unknown_equalize_mode_is_one_line_before_any_work():
    from edgeseg.converters.pipeline import ConvertOptions
    from edgeseg.errors import EdgesegError

    assert ConvertOptions(equalize=False).equalize_mode == "off" and ConvertOptions(equalize="auto").equalize_mode
    with pytest.raises(EdgesegError, match="unknown --equalize mode 'sometimes': choose one of off, on, auto"):
        ConvertOptions(precision="int8", equalize="sometimes").check()
