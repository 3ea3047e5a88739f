"""bench --profile (where one inference spends its time) and the CPU's roof (issue 37)."""

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from edgeseg.cli import app
from edgeseg.cost import graph_cost, model_cost
from edgeseg.profile import ProfileUnavailable, block_of
from edgeseg.profilers import litert_profile, profile_model
from edgeseg.roof import PROBE_MACS, measure_roof, model_precision, probe_model, roof_share
from edgeseg.tflite_file import read_model_graph

runner = CliRunner()
NANO = Path(__file__).parent.parent / "edgeseg" / "assets" / "camvid_nano_int8.tflite"


def conv_stack(folder: Path, hw=(96, 128), channels=48, layers=6, classes=5) -> dict[str, Path]:
    """A float ONNX conv stack (encoder/convK, head/conv; NHWC at its edges) and its OpenVINO IR."""
    import onnx
    import openvino as ov
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    nodes = [helper.make_node("Transpose", ["input"], ["x0"], perm=[0, 3, 1, 2], name="input_nchw")]
    inits, cin, prev = [], 3, "x0"
    for k in range(layers):
        inits += [
            numpy_helper.from_array((rng.standard_normal((channels, cin, 3, 3)) * 0.1).astype(np.float32), f"w{k}"),
            numpy_helper.from_array(np.zeros(channels, np.float32), f"b{k}"),
        ]
        nodes += [
            helper.make_node("Conv", [prev, f"w{k}", f"b{k}"], [f"c{k}"], pads=[1, 1, 1, 1], name=f"encoder/conv{k}"),
            helper.make_node("Relu", [f"c{k}"], [f"r{k}"], name=f"encoder/relu{k}"),
        ]
        cin, prev = channels, f"r{k}"
    inits.append(numpy_helper.from_array((rng.standard_normal((classes, cin, 1, 1)) * 0.1).astype(np.float32), "wh"))
    nodes += [
        helper.make_node("Conv", [prev, "wh"], ["logits"], name="head/conv"),
        helper.make_node("Transpose", ["logits"], ["output"], perm=[0, 2, 3, 1], name="output_nhwc"),
    ]
    graph = helper.make_graph(
        nodes,
        "stack",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, *hw, 3])],
        [helper.make_tensor_value_info("output", TensorProto.FLOAT, [1, *hw, classes])],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    out = {"onnx": folder / "stack.onnx", "openvino": folder / "stack.xml"}
    onnx.save(model, out["onnx"])
    ov.save_model(ov.convert_model(str(out["onnx"])), str(out["openvino"]))
    return out


def test_bench_profile_of_nano_on_litert_accounts_for_its_invoke_and_its_macs(tmp_path):
    r = runner.invoke(
        app,
        ["bench", "nano", "--threads", "1", "--runs", "30", "--profile"]
        + ["--json", str(tmp_path / "b.json"), "--markdown", str(tmp_path / "b.md")],
    )
    assert r.exit_code == 0, r.output
    for heading in ("by op type:", "by block:", "costliest ops:", "Roof (LiteRT probe"):
        assert heading in r.output
    row = json.loads((tmp_path / "b.json").read_text())["results"][0]
    prof = row["profile"]
    graph = read_model_graph(NANO.read_bytes())
    # every op of the graph, once, with its type and its MACs as `info` counts them
    assert [o["index"] for o in prof["ops"]] == list(range(len(graph.ops)))
    assert [o["type"] for o in prof["ops"]] == [op.name for op in graph.ops]
    assert sum(o["macs"] or 0 for o in prof["ops"]) == model_cost(NANO).macs
    assert sum(g["count"] for g in prof["by_type"]) == len(graph.ops) == sum(g["count"] for g in prof["by_block"])
    assert sum(g["share"] for g in prof["by_type"]) == pytest.approx(1.0)
    # the op times, each measured alone, add up to the whole model's invoke measured in the same run
    assert 0.9 <= prof["ops_ms"] / prof["invoke_p50_ms"] <= 1.1, prof["ops_ms"] / prof["invoke_p50_ms"]
    assert all(o["ms"] > 0 for o in prof["ops"])
    # blocks by name and resolution: the stem at 1/2, the decoder, the head, the last resize to the input's size
    blocks = {o["index"]: o["block"] for o in prof["ops"]}
    assert blocks[0] == "input 1/1" and blocks[2] == "encoder 1/2" and blocks[len(graph.ops) - 1] == "output 1/1"
    assert {"decoder 1/8", "head 1/8"} <= set(blocks.values())
    # the roof share is the invoke's GMAC/s over the int8 roof measured in the same run
    (int8,) = [rf for rf in json.loads((tmp_path / "b.json").read_text())["roofs"] if rf["precision"] == "int8"]
    assert row["precision"] == "int8"
    expected = row["gmacs"] / (row["invoke"]["p50_ms"] / 1e3) / int8["gmacs_per_s"]
    assert row["roof_share"] == pytest.approx(expected, rel=1e-3) and 0.05 < row["roof_share"] < 1.5
    md = (tmp_path / "b.md").read_text()
    assert "| op type | count | ms | share | GMACs | GMAC/s |" in md and "roof share" in md


def test_onnx_runtime_and_openvino_profiles_account_for_their_runs(tmp_path):
    from edgeseg.models import open_model

    models = conv_stack(tmp_path)
    for runtime, path in models.items():
        model = open_model(path, threads=1)
        prof = profile_model(model, runs=20)
        assert prof.runtime == model.runtime_name
        if runtime == "onnx":  # what ONNX Runtime runs: its optimiser fuses each ReLU into its Conv (and renames it)
            assert sum(o.type == "Conv" for o in prof.ops) == 7 and "Relu" not in {o.type for o in prof.ops}
        else:  # OpenVINO fuses the ReLUs too, and keeps the convolutions' names: the blocks come from them
            convs = [o for o in prof.ops if o.type.startswith("Convolution")]
            assert [o.name.split("/")[:2] for o in convs] == [["encoder", f"conv{k}"] for k in range(6)] + [
                ["head", "conv"]
            ]
            assert [o.block for o in convs] == ["encoder"] * 6 + ["head"]
        assert all(o.ms >= 0 for o in prof.ops) and prof.ops_ms > 0
        # the nodes' times add up to the run they were measured in (the plain invoke, timed in other runs, is
        # reported beside it: on a loaded machine it can differ from the profiled runs more than the nodes do)
        assert 0.9 <= prof.coverage <= 1.1, (runtime, prof.coverage)
        assert prof.invoke_ms > 0 and prof.profiled_ms > 0
        assert model_precision(model) == "float"


def test_a_runtime_with_no_profiler_says_so_and_bench_goes_on(tmp_path, toy_models):
    class EdgeTpu:  # what the Edge TPU delegate's predictor looks like to the profiler
        delegate = "edgetpu"
        path = Path("m_edgetpu.tflite")

    with pytest.raises(ProfileUnavailable, match="Edge TPU runs the model as one op"):
        litert_profile(EdgeTpu(), np.zeros(1))

    class Other:
        runtime_name = "ncnn"
        path = Path("m.param")

    with pytest.raises(ProfileUnavailable, match="ncnn has no profiler edgeseg can read"):
        profile_model(Other())
    # a .tflite with no MAC op still profiles: the shares are of its time, its GMACs unknown
    r = runner.invoke(app, ["bench", str(toy_models["prob_float"]), "--runs", "6", "--profile", "--no-roof"])
    assert r.exit_code == 0, r.output
    assert "by op type:" in r.output and "Roof" not in r.output


def test_the_roof_probe_is_the_gemm_it_says_and_runs_without_a_file():
    for precision, dtype in (("int8", "int8"), ("float", "float32")):
        buf = probe_model(precision)
        graph = read_model_graph(buf)
        assert [op.name for op in graph.ops] == ["CONV_2D", "CONV_2D"]
        assert graph.tensors[graph.ops[0].inputs[1]].dtype == dtype
        assert graph_cost(graph).macs == PROBE_MACS == 2 * 64 * 64 * 512 * 512
    roof = measure_roof(1, "int8")
    assert roof["gmacs_per_s"] > 1 and roof["runs"] >= 3
    assert roof["gmacs_per_s"] * roof["p50_ms"] / 1e3 == pytest.approx(PROBE_MACS / 1e9)
    assert roof_share(1.0, 10.0, {"gmacs_per_s": 200.0}) == pytest.approx(0.5)  # 1 GMAC in 10 ms = 100 GMAC/s
    assert roof_share(None, 10.0, roof) is None and roof_share(1.0, 10.0, {"unavailable": "x"}) is None


@pytest.mark.parametrize(
    "name, out_h, in_h, is_output, block",
    [
        (
            "unet_mobilenet_v2_1/encoder_1/block_3_expand_relu_1/Relu6;unet_mobilenet_v2_1/x",
            48,
            192,
            False,
            "encoder 1/4",
        ),
        ("unet_mobilenet_v2_1/decoder2a_conv_relu_1/Relu6", 24, 192, False, "decoder 1/8"),
        ("unet_mobilenet_v2_1/head_logits_1/BiasAdd", 24, 192, False, "head 1/8"),
        ("unet_mobilenet_v2_1/scale_pixels_1/mul", 192, 192, False, "input 1/1"),
        ("Identity", 192, 192, True, "output 1/1"),
        ("Conv__277", None, None, False, "other"),
        ("lraspp/upsample", 96, 48, False, "decoder x2"),
    ],
)
def test_blocks_by_name_and_resolution(name, out_h, in_h, is_output, block):
    assert block_of(name, out_h, in_h, is_output) == block
