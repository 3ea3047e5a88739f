"""RKNN (Rockchip NPUs): `convert --to rknn` through rknn-toolkit2 in a Python of its own, the simulator that
checks the build, the .rknn predictor for the board, and their failures. The plumbing runs against a stand-in
for both toolkits (tests/fixtures/fake_rknn: their API, ONNX Runtime underneath); the real toolkit's build and
simulator run in the last test, where scripts/setup-rknn.sh (or EDGESEG_RKNN_PYTHON) has provided it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from edgeseg.cli import app
from edgeseg.errors import EdgesegError, ModelError, RuntimeUnavailable

pytest.importorskip("tf2onnx", reason="needs the onnx extra")
pytest.importorskip("onnxoptimizer", reason="needs the ncnn extra (onnxoptimizer)")

ROOT = Path(__file__).resolve().parents[1]
FAKE = ROOT / "tests" / "fixtures" / "fake_rknn"
runner = CliRunner()


@pytest.fixture
def fake_toolkit(monkeypatch):
    """This Python as the toolkit's, with the stand-in toolkits importable (here and in the worker)."""
    monkeypatch.setenv("EDGESEG_RKNN_PYTHON", sys.executable)
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(FAKE), os.environ.get("PYTHONPATH")])))
    monkeypatch.syspath_prepend(str(FAKE))
    monkeypatch.delenv("FAKE_RKNN_FAIL", raising=False)
    yield


@pytest.fixture(scope="module")
def fake_converted(tiny_run, synthetic_data, tmp_path_factory) -> dict:
    """The tiny model as int8 and fp16 .rknn files, by `edgeseg convert` with the stand-in toolkit."""
    mp = pytest.MonkeyPatch()
    mp.setenv("EDGESEG_RKNN_PYTHON", sys.executable)
    mp.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(FAKE), os.environ.get("PYTHONPATH")])))
    mp.delenv("FAKE_RKNN_FAIL", raising=False)
    folder = tmp_path_factory.mktemp("rknn")
    model = tiny_run / "model.keras"
    out = {}
    try:
        for name, flags in (("int8", ["--int8", "--platform", "rk3566"]), ("fp16", ["--fp16"])):
            js = folder / f"{name}.json"
            args = ["convert", str(model), "--to", "rknn", *flags, "--calibration", str(synthetic_data)]
            r = runner.invoke(app, [*args, "--num-calibration", "12", "--json", str(js)])
            assert r.exit_code == 0, r.output
            out[name], out[f"{name}_output"] = json.loads(js.read_text()), r.output
    finally:
        mp.undo()
    return out


def test_convert_to_rknn_writes_the_model_and_its_spec_and_checks_it_in_the_simulator(fake_converted, tiny_run):
    from edgeseg.spec import ModelSpec

    for name, platform in (("int8", "rk3566"), ("fp16", "rk3588")):
        r = fake_converted[name]
        main = Path(r["path"])
        assert main == tiny_run / f"model_rknn_{name}.rknn" and main.read_bytes().startswith(b"RKNN")
        assert r["files"] == [str(main), str(tiny_run / f"model_rknn_{name}.spec.json")]
        assert r["target"] == f"rknn {name}"
        assert r["argmax_agreement"] is not None and r["argmax_agreement"] >= 0.99  # the stand-in runs float
        assert r["verify_images"] > 0 and "held-out" in r["verified_on"]
        spec = ModelSpec.load(tiny_run / f"model_rknn_{name}.spec.json")
        assert spec.classes == ModelSpec.load(tiny_run / "spec.json").classes
        assert spec.extra["rknn"]["platform"] == platform and spec.extra["rknn"]["precision"] == name
        assert spec.extra["cost"]["gmacs"] > 0  # Keras' count travels, as for every converted format
        assert "Conv" in r["ops"]["ops"]  # the ONNX graph the build started from
    assert fake_converted["int8"]["calibration_images"] == 12 and not fake_converted["fp16"]["calibration_images"]
    assert "building for rk3566 (int8)" in fake_converted["int8_output"]


def test_the_board_predictor_runs_the_file_with_its_sidecar_spec(fake_converted, tiny_run, fake_toolkit):
    from edgeseg import load_model
    from edgeseg.predictors.keras import KerasSegmenter

    path = Path(fake_converted["fp16"]["path"])
    model = load_model(path)
    d = model.describe()
    assert d["runtime"] == "rknn" and d["spec_source"] == "sidecar" and d["gmacs"] > 0
    assert d["input"]["shape"] == [1, *model.predictor.input_hw, 3]
    keras = KerasSegmenter(tiny_run / "model.keras")
    frame = np.random.default_rng(0).integers(0, 255, (90, 120, 3), dtype=np.uint8)
    assert np.mean(model.predictor.segment(frame) == keras.segment(frame)) > 0.99


def test_bad_rknn_files_and_a_missing_runtime_are_one_line(fake_converted, tmp_path, fake_toolkit, monkeypatch):
    from edgeseg import load_model

    good = Path(fake_converted["fp16"]["path"])
    not_rknn = tmp_path / "m.rknn"
    not_rknn.write_bytes(b"\x00" * 64)
    with pytest.raises(ModelError, match="not an RKNN model"):
        load_model(not_rknn)
    alone = tmp_path / "alone.rknn"
    alone.write_bytes(good.read_bytes())
    with pytest.raises(ModelError, match=r"no alone\.spec\.json beside it"):
        load_model(alone)
    monkeypatch.setenv("FAKE_RKNN_FAIL", "lite_init")
    with pytest.raises(RuntimeUnavailable, match="NPU runtime did not start"):
        load_model(good)
    monkeypatch.delenv("FAKE_RKNN_FAIL")
    monkeypatch.setitem(sys.modules, "rknnlite", None)  # as on a machine without rknn-toolkit-lite2
    monkeypatch.setitem(sys.modules, "rknnlite.api", None)
    r = runner.invoke(app, ["bench", str(good), "--runs", "1", "--warmup", "0"])
    assert r.exit_code != 0 and "rknn-toolkit-lite2" in r.output and "Traceback" not in r.output


def test_rknn_choices_are_checked_before_any_work(tiny_run, fake_toolkit):
    model = str(tiny_run / "model.keras")
    r = runner.invoke(app, ["convert", model, "--to", "rknn"])
    assert r.exit_code != 0 and "give --int8 or --fp16" in r.output
    r = runner.invoke(app, ["convert", model, "--to", "rknn", "--fp16", "--platform", "rk9999"])
    assert r.exit_code != 0 and "rk9999" in r.output and "Traceback" not in r.output


@pytest.mark.parametrize("step", ["load_onnx", "build", "init_runtime"])
def test_a_failing_toolkit_step_is_one_line_and_writes_nothing(step, tiny_run, tmp_path, fake_toolkit, monkeypatch):
    import tempfile

    monkeypatch.setenv("FAKE_RKNN_FAIL", step)
    before = set(Path(tempfile.gettempdir()).glob("edgeseg-rknn-*"))
    out = tmp_path / "m.rknn"
    r = runner.invoke(app, ["convert", str(tiny_run / "model.keras"), "--to", "rknn", "--fp16", "--out", str(out)])
    assert r.exit_code != 0 and "Traceback" not in r.output
    assert f"{step}" in r.output and f"fake {step} failure" in r.output
    assert not list(tmp_path.iterdir())  # neither the model nor its spec
    assert set(Path(tempfile.gettempdir()).glob("edgeseg-rknn-*")) == before  # the worker's folder is gone


def test_without_the_toolkit_convert_says_how_to_get_it(tiny_run, monkeypatch, tmp_path):
    from edgeseg.converters import rknn

    monkeypatch.delenv("EDGESEG_RKNN_PYTHON", raising=False)
    monkeypatch.setattr(rknn, "LOCAL_VENV", tmp_path / "no-venv" / "bin" / "python")
    if __import__("importlib").util.find_spec("rknn") is not None:
        pytest.skip("this Python has rknn-toolkit2 itself")
    with pytest.raises(EdgesegError, match="setup-rknn.sh"):
        rknn.rknn_python()
    monkeypatch.setenv("EDGESEG_RKNN_PYTHON", str(tmp_path / "nope"))
    with pytest.raises(EdgesegError, match="no such Python"):
        rknn.rknn_python()


def test_the_worker_protocol_round_trips_arrays():
    import io

    from edgeseg.converters.rknn_worker import pack_array, read_frame, unpack_array, write_frame

    a = np.arange(24, dtype=np.float32).reshape(1, 2, 3, 4)
    buf = io.BytesIO()
    write_frame(buf, pack_array(a))
    write_frame(buf, b"")
    buf.seek(0)
    assert np.array_equal(unpack_array(read_frame(buf)), a) and read_frame(buf) is None


def _real_toolkit() -> str | None:
    from edgeseg.converters import rknn

    if os.environ.get("EDGESEG_RKNN_PYTHON") or rknn.LOCAL_VENV.is_file():
        python = rknn.rknn_python()
        ok = subprocess.run([python, "-c", "import rknn.api"], capture_output=True, timeout=300).returncode == 0
        return python if ok else None
    return None


@pytest.mark.slow
def test_the_real_toolkit_builds_int8_and_its_simulator_agrees_with_keras(tiny_run, synthetic_data, tmp_path):
    python = _real_toolkit()
    if python is None:
        pytest.skip("rknn-toolkit2 is not installed (scripts/setup-rknn.sh makes .venv-rknn)")
    from edgeseg.converters.pipeline import convert

    out = tmp_path / "m.rknn"
    r = convert(
        tiny_run / "model.keras",
        out,
        format="rknn",
        precision="int8",
        calibration=synthetic_data,
        num_calibration=16,
        progress=False,
        log=lambda _: None,
    )
    assert out.read_bytes()[:4] == b"RKNN" and (tmp_path / "m.spec.json").is_file()
    assert r.agreement is not None and r.agreement >= 0.95, r.agreement
