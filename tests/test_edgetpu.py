import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from edgeseg.cli import app
from edgeseg.converters.edgetpu import INSTALL_HINT, parse_compiler_log
from edgeseg.edgetpu import lint
from tests.conftest import shared_path

FIX = Path(__file__).parent / "fixtures" / "edgetpu"
runner = CliRunner()


def _tconv_model(tmp_path, activation: bool) -> Path:
    import keras

    from tests import toy

    L = keras.layers
    inp = keras.Input((16, 16, 3))
    x = L.BatchNormalization()(L.Conv2DTranspose(8, 3, strides=2, padding="same")(L.Conv2D(8, 3)(inp)))
    if activation:
        x = L.ReLU()(x)
    p = tmp_path / f"tconv_{activation}.tflite"
    p.write_bytes(toy._convert(keras.Model(inp, L.Conv2D(3, 1)(x)), (16, 16), "int8"))
    return p


@pytest.mark.slow
def test_lint_flags_transpose_conv_v4_and_passes_our_unet(tmp_path, tiny_tflite):
    bad = lint(_tconv_model(tmp_path, activation=True))
    err = [f for f in bad.findings if f.severity == "error"]
    assert not bad.ready and err and err[0].op == "TRANSPOSE_CONV" and "version 4" in err[0].reason
    assert lint(_tconv_model(tmp_path, activation=False)).ready  # TRANSPOSE_CONV v2 maps
    ours = lint(tiny_tflite["int8"])
    assert ours.ready and ours.findings == [] and ours.ops > 50


@pytest.mark.slow
def test_lint_flags_float_graphs(tiny_tflite):
    rep = lint(tiny_tflite["float"]).to_dict()
    assert not rep["ready"] and rep["first_cpu_op"] == 0 and "float32" in rep["findings"][0]["reason"]


def test_lint_predicts_the_coral_compilers_partition_exactly():
    """The truth: the ops Coral's compiler left beside edgetpu-custom-op in the _edgetpu build of the same model."""
    from edgeseg.tflite_file import read_graph, read_model_bytes

    cpu_build = shared_path("models", "peers", "deeplabv3_mnv2_pascal_quant.tflite")
    compiled = shared_path("models", "peers", "deeplabv3_mnv2_pascal_quant_edgetpu.tflite")
    truth = [op.name for op in read_graph(read_model_bytes(compiled))[0] if op.name != "edgetpu-custom-op"]
    assert sorted(truth) == sorted(["RESIZE_BILINEAR"] * 3 + ["CONV_2D"] * 2 + ["CONCATENATION", "QUANTIZE", "ARG_MAX"])
    rep = lint(cpu_build).to_dict()
    assert rep["cpu_ops"] == truth  # the same ops, in the same order
    assert rep["partition"] == {"cpu-prefix": 0, "edgetpu": 64, "cpu-suffix": 8}
    assert not rep["ready"] and not rep["compiled"]
    # ops 62 and 63 (two 1x1 convs) sit after the CPU's first op in dependency terms only: they stay on the TPU
    placement = lint(cpu_build).placement
    assert placement[62] == placement[63] == "edgetpu" and placement[64] == "cpu-suffix"
    # the compiled file reports the compiler's own split
    done = lint(compiled).to_dict()
    assert done["compiled"] and not done["ready"] and done["cpu_ops"] == truth
    assert done["partition"] == {"cpu-prefix": 0, "edgetpu": 1, "cpu-suffix": 8}
    r = runner.invoke(app, ["edgetpu", str(compiled)])
    assert r.exit_code == 0 and "already compiled" in r.output and "8 after it" in r.output


def _ops(*spec):
    """GraphOps from (name, inputs, outputs) triples."""
    from edgeseg.tflite_file import GraphOp

    return [GraphOp(i, name, 1, tuple(ins), tuple(outs)) for i, (name, ins, outs) in enumerate(spec)]


def test_partition_follows_data_dependencies_not_op_order():
    from edgeseg.edgetpu import partition

    # 0: CPU-only op on the graph input (prefix); 1, 2: TPU; 3: unmapped after TPU (suffix); 4 depends on 3
    # (suffix); 5 depends only on TPU ops and stays on the TPU although it comes after 3 and 4 in op order
    ops = _ops(
        ("QUANTIZE", [0], [1]),
        ("CONV_2D", [1], [2]),
        ("CONV_2D", [2], [3]),
        ("ARG_MAX", [3], [4]),
        ("ADD", [4, 2], [5]),
        ("CONV_2D", [2], [6]),
    )
    assert partition(ops, {0, 3}) == ["cpu-prefix", "edgetpu", "edgetpu", "cpu-suffix", "cpu-suffix", "edgetpu"]
    # an unmapped op that no Edge TPU op feeds is a prefix even when it comes late in op order
    ops = _ops(("CONV_2D", [0], [1]), ("GATHER", [0], [2]), ("ADD", [1, 2], [3]))
    assert partition(ops, {1}) == ["edgetpu", "cpu-prefix", "edgetpu"]
    # nothing unmapped: one segment
    assert partition(ops, set()) == ["edgetpu"] * 3


@pytest.mark.slow
def test_lint_float_io_quantize_is_a_cpu_prefix_and_dequantize_a_suffix(tmp_path):
    import keras

    from tests import toy

    inp = keras.Input((16, 16, 3))
    p = tmp_path / "float_io.tflite"
    p.write_bytes(
        toy._convert(keras.Model(inp, keras.layers.Conv2D(4, 3, padding="same")(inp)), (16, 16), "float32")
    )  # int8 inside, float input and output
    from edgeseg.tflite_file import read_graph, read_model_bytes

    ops = [op.name for op in read_graph(read_model_bytes(p))[0]]
    assert ops[0] == "QUANTIZE" and ops[-1] == "DEQUANTIZE", ops
    rep = lint(p)
    assert rep.cpu_ops == ["QUANTIZE", "DEQUANTIZE"]
    assert rep.placement[0] == "cpu-prefix" and rep.placement[-1] == "cpu-suffix"
    assert set(rep.placement[1:-1]) == {"edgetpu"}


def test_lint_keeps_large_upscales_on_the_cpu(tmp_path):
    """A resize that enlarges more than 8x is predicted on the CPU (inferred from the Coral pair); 2x maps."""
    from edgeseg.edgetpu import check_op
    from edgeseg.tflite_file import GraphOp, GraphTensor

    def tensors(h_in, h_out):
        return [
            GraphTensor(0, "x", "int8", (1, h_in, h_in, 8), (1, h_in, h_in, 8)),
            GraphTensor(1, "size", "int32", (2,), (2,), True),
            GraphTensor(2, "y", "int8", (1, h_out, h_out, 8), (1, h_out, h_out, 8)),
        ]

    op = GraphOp(0, "RESIZE_BILINEAR", 3, (0, 1), (2,))
    assert [f.severity for f in check_op(op, tensors(1, 33))] == ["cpu"]
    assert check_op(op, tensors(16, 32)) == [] and check_op(op, tensors(4, 32)) == []  # 2x and exactly 8x map


def test_parse_partly_mapped_log():
    r = parse_compiler_log((FIX / "partly_mapped.log").read_text())
    assert r["compiled"] and r["compiler_version"] == "16.0.384591198"
    assert r["ops_on_tpu"] == 2 and r["ops_on_cpu"] == 153 and r["total_ops"] == 155 and r["tpu_subgraphs"] == 1
    assert r["on_chip_used_bytes"] == 80 * 1024 and r["off_chip_used_bytes"] == 0
    assert len(r["operators"]) == 10 and r["operators"][0] == {
        "operator": "TRANSPOSE",
        "count": 70,
        "status": "Operation not supported",
        "on_tpu": False,
    }
    assert sum(o["count"] for o in r["operators"] if o["on_tpu"]) == 2


def test_parse_refused_model_log():
    r = parse_compiler_log((FIX / "transpose_conv_v4.log").read_text())
    assert not r["compiled"] and "TRANSPOSE_CONV' version '4'" in r["errors"][0] and r["operators"] == []


def test_parse_all_mapped_log():
    r = parse_compiler_log((FIX / "all_mapped.log").read_text())
    assert r["compiled"] and r["ops_on_cpu"] == 0 and r["ops_on_tpu"] == 90 and r["on_chip_remaining"] == "4.48MiB"


def test_edgetpu_command_without_compiler_says_how_to_get_it(tmp_path):
    m = shared_path("models", "peers", "deeplabv3_mnv2_pascal_quant.tflite")
    r = runner.invoke(app, ["edgetpu", str(m), "--json", str(tmp_path / "e.json")])
    assert r.exit_code == 0, r.output
    d = json.loads((tmp_path / "e.json").read_text())
    assert d["lint"]["first_cpu_op"] == 64 and d["compiler"]["skipped"] == INSTALL_HINT
    assert d["lint"]["cpu_ops"][0] == "RESIZE_BILINEAR" and len(d["lint"]["cpu_ops"]) == 8
    assert "8 after it: RESIZE_BILINEAR, QUANTIZE" in r.output and "edgetpu_compiler is not installed" in r.output
    assert "coral.ai/docs/edgetpu/models-intro" in r.output


def test_edgetpu_command_parses_a_compiler_run(tmp_path, monkeypatch, toy_models):
    """A stand-in edgetpu_compiler on PATH that prints a real log: the command runs it and reports its JSON."""
    fake = tmp_path / "bin" / "edgetpu_compiler"
    fake.parent.mkdir()
    fake.write_text(f"#!/bin/sh\ncat {FIX / 'all_mapped.log'}\n")
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{fake.parent}:/usr/bin:/bin")
    r = runner.invoke(app, ["edgetpu", str(toy_models["scores_int8"]), "--json", str(tmp_path / "e.json")])
    assert r.exit_code == 0, r.output
    d = json.loads((tmp_path / "e.json").read_text())
    assert d["compiler"]["compiled"] and d["compiler"]["ops_on_tpu"] == 90
