"""MACs and parameters read from a .tflite graph, held against counts worked out by hand for tiny graphs."""

from __future__ import annotations

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from edgeseg.cli import app
from edgeseg.cost import graph_cost, model_cost
from edgeseg.tflite_file import read_model_graph
from tests.conftest import shared_path

runner = CliRunner()


def _tflite(model, int8: bool = False) -> bytes:
    import tensorflow as tf

    conv = tf.lite.TFLiteConverter.from_keras_model(model)
    if int8:
        shape = (1, *model.inputs[0].shape[1:])

        def rep():
            rng = np.random.default_rng(0)
            for _ in range(4):
                yield [rng.uniform(0, 255, shape).astype(np.float32)]

        conv.optimizations = [tf.lite.Optimize.DEFAULT]
        conv.representative_dataset = rep
        conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        conv.inference_input_type = conv.inference_output_type = tf.int8
    return bytes(conv.convert())


@pytest.fixture(scope="module")
def conv_stack():
    """8x10x3 -> 3x3 conv (4) -> 3x3 depthwise -> 2x2 stride-2 transposed conv (2): 16x20x2."""
    import keras

    inp = keras.Input((8, 10, 3), batch_size=1)
    x = keras.layers.Conv2D(4, 3, padding="same")(inp)
    x = keras.layers.DepthwiseConv2D(3, padding="same")(x)
    x = keras.layers.Conv2DTranspose(2, 2, strides=2)(x)
    model = keras.Model(inp, x)
    # random, distinct weights and biases: the converter stores identical constants once (Keras' zero biases
    # would share one tensor, and a zero transposed-conv bias is dropped), which a hand count does not expect
    rng = np.random.default_rng(1)
    model.set_weights([rng.normal(size=w.shape).astype(np.float32) for w in model.get_weights()])
    return model


# by hand: conv 8*10 pixels * 4 outputs * (3*3*3) = 8640 MACs, 4*27 weights + 4 biases = 112 params;
# depthwise 80 pixels * 4 channels * 9 = 2880 MACs, 36 + 4 = 40 params;
# transposed conv: each of the 8*10*4 input values is scattered through a 2x2 kernel into 2 outputs:
# 320 * 2*2 * 2 = 2560 MACs, 2*2*2*4 + 2 = 34 params.
CONV_STACK_MACS = {"CONV_2D": 8640, "DEPTHWISE_CONV_2D": 2880, "TRANSPOSE_CONV": 2560}
CONV_STACK_PARAMS = 112 + 40 + 34


@pytest.mark.slow
@pytest.mark.parametrize("int8", [False, True], ids=["float", "int8"])
def test_macs_and_params_of_a_tiny_conv_stack_match_the_hand_count(conv_stack, int8):
    cost = graph_cost(read_model_graph(_tflite(conv_stack, int8)))
    assert cost.macs_by_op == CONV_STACK_MACS
    assert cost.macs == sum(CONV_STACK_MACS.values()) == 14080
    assert cost.params == CONV_STACK_PARAMS  # the transposed conv's int32 output-shape constant is not a parameter
    assert cost.uncounted == []
    if int8:  # every op of a full-integer graph, QUANTIZE at the float boundary excepted (int8 in and out here)
        assert cost.integer_ops == cost.op_count and cost.int8_share == 1.0
    else:
        assert cost.integer_ops == 0


@pytest.mark.slow
def test_fully_connected_counts_rows_times_units_times_features():
    import keras

    inp = keras.Input((5, 6), batch_size=1)  # 5 rows of 6 features -> 4 units: 5*4*6 = 120 MACs, 24 + 4 params
    model = keras.Model(inp, keras.layers.Dense(4)(inp))
    model.set_weights([np.full(w.shape, 0.5, np.float32) for w in model.get_weights()])
    cost = graph_cost(read_model_graph(_tflite(model)))
    assert cost.macs_by_op == {"FULLY_CONNECTED": 120} and cost.params == 28


@pytest.mark.slow
def test_keras_model_is_counted_like_its_tflite(tiny_run, tiny_tflite):
    from edgeseg.predictors.keras import KerasSegmenter, keras_cost

    keras_seg = KerasSegmenter(tiny_run / "model.keras")
    macs, params = keras_cost(keras_seg.model)
    assert macs == model_cost(tiny_tflite["float"]).macs == model_cost(tiny_tflite["int8"]).macs > 0
    # Keras counts BatchNorm's 4 values per channel, which the converter folds into the convolutions
    assert params > model_cost(tiny_tflite["float"]).params > 0
    assert keras_seg.describe()["gmacs"] == round(macs / 1e9, 4)


def test_shipped_small_model_costs_what_its_card_says():
    from edgeseg.assets import shipped_model

    path = shipped_model("small")
    if path is None:
        pytest.skip("the shipped small model is not in this checkout")
    cost = model_cost(path)
    assert abs(cost.gmacs - 2.077) < 0.001 and cost.params == 3_398_229
    assert cost.macs_by_op["CONV_2D"] > cost.macs_by_op["DEPTHWISE_CONV_2D"] > 0


@pytest.mark.shared
def test_third_party_models_compiled_and_custom_ops():
    tpu = model_cost(shared_path("models", "peers", "deeplabv3_mnv2_pascal_quant_edgetpu.tflite"))
    assert tpu.uncounted == ["edgetpu-custom-op #0"]  # its work is compiled: never reported as a full count
    cpu = model_cost(shared_path("models", "peers", "deeplabv3_mnv2_pascal_quant.tflite"))
    assert cpu.uncounted == [] and 2.7 < cpu.gmacs < 2.8  # DeepLabV3 MobileNetV2 at 513x513: 2.75 GMACs published
    selfie = model_cost(shared_path("models", "peers", "selfie_segmentation.tflite"))
    assert selfie.uncounted == [] and "Convolution2DTransposeBias" in selfie.macs_by_op
    assert selfie.params > 50_000 and selfie.integer_ops == 0  # float16 weights, float graph


@pytest.mark.shared
def test_info_command_on_a_compiled_model_says_what_it_cannot_count(tmp_path):
    path = shared_path("models", "peers", "deeplabv3_mnv2_pascal_quant_edgetpu.tflite")
    r = runner.invoke(app, ["info", str(path), "--json", str(tmp_path / "i.json")])
    assert r.exit_code == 0, r.output
    assert "counted outside edgetpu-custom-op #0" in r.output
    d = json.loads((tmp_path / "i.json").read_text())
    assert d["spec"] is None and d["outputs"][0]["dtype"] == "int64" and d["ops"]["RESIZE_BILINEAR"] == 3
    assert d["edgetpu"]["compiled"] and len(d["edgetpu"]["cpu_ops"]) == 8 and not d["edgetpu"]["ready"]
    assert "compiled for the Edge TPU; 8 op(s) beside it run on the CPU" in r.output


def test_info_command_reports_the_shipped_model(tmp_path):
    from edgeseg.assets import default_model

    if default_model() is None:
        pytest.skip("no shipped model in this checkout")
    r = runner.invoke(app, ["info", "--json", str(tmp_path / "i.json")])
    assert r.exit_code == 0, r.output
    d = json.loads((tmp_path / "i.json").read_text())
    assert d["gmacs"] == pytest.approx(2.0766, abs=1e-4) and d["params"] == 3_398_229
    assert d["int8_op_share"] == 1.0 and d["edgetpu"]["ready"] is True
    assert d["spec"]["classes"][0] == "Sky" and d["inputs"][0]["shape"] == [1, 288, 384, 3]
    assert d["ops"]["CONV_2D"] == 46 and sum(d["ops"].values()) == d["op_count"] == 82
    assert "2.077 GMACs per frame" in r.output and "82 of 82 ops (100%)" in r.output
    # issue 34: the figure it leads with is on frames the model never saw; val is said to be trained on
    lines = r.output.splitlines()
    score = next(i for i, ln in enumerate(lines) if ln.startswith("  score"))
    assert score == next(i for i, ln in enumerate(lines) if ln.startswith("  spec")) + 1
    assert lines[score] == (
        "  score   mIoU 58.69 on CamVid test (233 frames, scored independently); "
        "val mIoU 78.00 (frames it trained on: not a test)"
    ), lines[score]
    assert d["score"]["held_out"]["miou"] == 58.69 and d["score"]["val_trained_on"] is True


def test_info_refuses_what_is_not_a_tflite(tmp_path):
    bad = tmp_path / "bad.tflite"
    bad.write_bytes(b"not a model at all")
    r = runner.invoke(app, ["info", str(bad)])
    assert r.exit_code == 1 and "Traceback" not in r.output
    assert "not a TFLite model" in r.output.strip().splitlines()[-1]
    r = runner.invoke(app, ["info", "no-such-model"])
    assert r.exit_code == 1 and "no such model file" in r.output and "nano, small" in r.output
