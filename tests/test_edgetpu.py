import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from converters.edgetpu import INSTALL_HINT, lint, parse_compiler_log
from edgeseg.cli import app
from tests.conftest import shared_path

FIX = Path(__file__).parent / "fixtures" / "edgetpu"
runner = CliRunner()


def _tconv_model(tmp_path, activation: bool) -> Path:
    import keras
    import tensorflow as tf

    from tests import toy

    L = keras.layers
    inp = keras.Input((16, 16, 3))
    x = L.BatchNormalization()(L.Conv2DTranspose(8, 3, strides=2, padding="same")(L.Conv2D(8, 3)(inp)))
    if activation:
        x = L.ReLU()(x)
    p = tmp_path / f"tconv_{activation}.tflite"
    p.write_bytes(toy._convert(keras.Model(inp, L.Conv2D(3, 1)(x)), (16, 16), tf.int8))
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


def test_lint_on_the_coral_deeplab_names_its_cpu_ops():
    rep = lint(shared_path("models", "peers", "deeplabv3_mnv2_pascal_quant.tflite")).to_dict()
    cpu = [f for f in rep["findings"] if f["severity"] == "cpu"]
    assert [f["op"] for f in cpu] == ["ARG_MAX"]  # Coral's own _edgetpu build leaves ARG_MAX on the CPU too
    assert any(f["op"] == "RESIZE_BILINEAR" and f["severity"] == "warn" for f in rep["findings"])
    from edgeseg.tflite_file import read_opcodes

    compiled = shared_path("models", "peers", "deeplabv3_mnv2_pascal_quant_edgetpu.tflite").read_bytes()
    assert 56 in {op.builtin for op in read_opcodes(compiled)}  # ARG_MAX (56) outside the Edge TPU op


def test_parse_partly_mapped_log():
    r = parse_compiler_log((FIX / "partly_mapped.log").read_text())
    assert r["compiled"] and r["compiler_version"] == "16.0.384591198"
    assert r["ops_on_tpu"] == 2 and r["ops_on_cpu"] == 153 and r["total_ops"] == 155 and r["tpu_subgraphs"] == 1
    assert r["on_chip_used_bytes"] == 80 * 1024 and r["off_chip_used_bytes"] == 0
    assert len(r["operators"]) == 10 and r["operators"][0] == {
        "operator": "TRANSPOSE", "count": 70, "status": "Operation not supported", "on_tpu": False}
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
    assert d["lint"]["first_cpu_op"] == 71 and d["compiler"]["skipped"] == INSTALL_HINT
    assert "ARG_MAX" in r.output and "edgetpu_compiler is not installed" in r.output
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
