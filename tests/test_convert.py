import json
from pathlib import Path

import numpy as np
import pytest

from edgeseg.errors import EdgesegError, ModelError
from edgeseg.predictors.tflite import Segmenter
from edgeseg.spec import ModelSpec
from edgeseg.tflite_file import read_spec_json

pytestmark = pytest.mark.slow


def test_int8_model_is_fully_int8_with_int8_io(tiny_tflite):
    seg = Segmenter(tiny_tflite["int8"])
    assert seg.input.dtype == np.int8 and seg.output.dtype == np.int8
    res = tiny_tflite["int8_result"]
    assert res.ops.fully_int8, res.ops.non_int8_ops
    assert res.ops.ops["CONV_2D"] > 10 and "RESIZE_BILINEAR" in res.ops.ops
    for banned in ("TILE", "TRANSPOSE_CONV", "SHAPE", "STRIDED_SLICE", "QUANTIZE", "DEQUANTIZE"):
        assert banned not in res.ops.ops
    assert seg.input.shape == (1, 64, 96, 3)  # static batch of one
    assert seg.input.scale == pytest.approx(1.0, rel=0.02)  # raw pixels in


def test_spec_is_embedded_and_read_without_flags(tiny_tflite, tiny_run):
    spec = ModelSpec.load(tiny_run / "spec.json")
    for target in ("float", "int8"):
        assert ModelSpec.from_json(read_spec_json(tiny_tflite[target].read_bytes())) == spec
        assert Segmenter(tiny_tflite[target]).spec.classes == spec.classes


def test_int8_agrees_with_the_float_model(tiny_tflite):
    res = tiny_tflite["int8_result"]
    assert res.verify_images == 8 and res.agreement > 0.9
    assert tiny_tflite["float_result"].agreement > 0.995
    assert res.calibration_images == 24 and res.class_pixels["background"] > 0
    assert any("24 calibration images" in w for w in res.warnings)
    assert res.to_dict()["equalized"] is None  # equalisation is asked for (--equalize on|auto), not the default


def test_uint8_dynamic_and_strict(tiny_run, tiny_tflite, synthetic_data, tmp_path):
    from edgeseg.converters.pipeline import convert

    quiet = dict(progress=False, log=lambda *_: None)
    u8 = convert(
        tiny_run / "model.keras",
        tmp_path / "u8.tflite",
        precision="int8",
        io_dtype="uint8",
        calibration=synthetic_data,
        num_calibration=8,
        verify_images=2,
        strict=True,
        equalize=True,
        **quiet,
    )
    seg = Segmenter(u8.path)
    assert seg.input.dtype == np.uint8 and u8.ops.fully_int8
    # the U-Net's BatchNorm-ReLU activations, inside the nested encoder too, were equalised before calibrating
    eq = u8.to_dict()["equalized"]
    assert eq["pairs"] >= 10 and 0 < eq["changed"] <= eq["pairs"] and eq["channels"] > 0
    assert eq["mode"] == "on" and eq["applied"] and "agreement" not in eq  # True means "on": one build, no choice
    dyn = convert(tiny_run / "model.keras", tmp_path / "dyn.tflite", precision="dynamic", verify_images=2, **quiet)
    assert not dyn.ops.fully_int8 and dyn.size_bytes < 0.5 * tiny_tflite["float"].stat().st_size
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dyn.tflite", "u8.tflite"]  # no temp files left


def test_conversion_errors(tiny_run, tmp_path):
    from edgeseg.converters.pipeline import convert

    quiet = dict(progress=False, log=lambda *_: None)
    trained = ModelSpec.load(tiny_run / "spec.json")
    no_data = ModelSpec(input_hw=trained.input_hw, classes=trained.classes)  # records no training data
    with pytest.raises(EdgesegError, match="int8 needs calibration images"):
        convert(tiny_run / "model.keras", tmp_path / "x.tflite", precision="int8", spec=no_data, **quiet)
    bad = tmp_path / "bad.keras"
    bad.write_bytes(b"PK\x03\x04 not really a zip")
    with pytest.raises(ModelError, match="not a loadable Keras model"):
        convert(bad, **quiet)
    with pytest.raises(EdgesegError, match="unknown precision 'bf16'"):
        convert(tiny_run / "model.keras", precision="bf16", **quiet)
    with pytest.raises(EdgesegError, match="onnx has no fp16 target: choose one of float32, int8"):
        convert(tiny_run / "model.keras", format="onnx", precision="fp16", **quiet)
    assert not (tmp_path / "x.tflite").exists()


def test_fp16_halves_the_weights_and_keeps_the_argmax(tiny_run, tiny_tflite, tmp_path):
    from typer.testing import CliRunner

    from edgeseg.cli import app
    from edgeseg.cost import model_cost
    from edgeseg.tflite_file import read_model_graph

    out = tmp_path / "m16.tflite"
    r = CliRunner().invoke(
        app, ["convert", str(tiny_run / "model.keras"), "--fp16", "--out", str(out), "--verify", "4"]
    )
    assert r.exit_code == 0, r.output
    assert f"wrote {out}" in r.output and "fp16" in r.output
    f32 = tiny_tflite["float"]
    assert 0.4 < out.stat().st_size / f32.stat().st_size < 0.65  # float16 weights: about half
    graph = read_model_graph(out.read_bytes())
    consts = [t for t in graph.tensors if t.constant and t.dtype.startswith("float")]
    assert consts and {t.dtype for t in consts} == {"float16"}  # every float weight stored as float16
    assert any(op.name == "DEQUANTIZE" for op in graph.ops)  # widened at load where fp16 arithmetic is absent
    seg16, seg32 = Segmenter(out), Segmenter(f32)
    assert seg16.input.dtype == np.float32  # float in and out, like the float32 model
    assert model_cost(out).macs == model_cost(f32).macs and model_cost(out).params == model_cost(f32).params
    agree = float(r.output.split("argmax agreement with the Keras model: ")[1].split("%")[0])
    assert agree > 99.0, r.output
    frame = np.random.default_rng(0).integers(0, 256, (72, 96, 3), dtype=np.uint8)
    assert (seg16.segment(frame) == seg32.segment(frame)).mean() > 0.99
    r = CliRunner().invoke(app, ["convert", str(tiny_run / "model.keras"), "--fp16", "--int8"])
    assert r.exit_code == 1 and "choose one precision: --int8 and --fp16 were both given" in r.output


@pytest.mark.slow
def test_onnx_export_matches_keras_and_runs_in_run_bench_and_eval(tiny_run, tiny_tflite, synthetic_data, tmp_path):
    """convert --onnx (tf2onnx) writes the spec into the ONNX metadata; ONNX Runtime then serves eval, bench
    (side by side with the .tflite files of the same model) and the Python API."""
    pytest.importorskip("onnxruntime", reason="needs the onnx extra")
    from typer.testing import CliRunner

    from edgeseg import load_model
    from edgeseg.cli import app

    out = tmp_path / "tiny.onnx"
    r = CliRunner().invoke(
        app,
        ["convert", str(tiny_run / "model.keras"), "--onnx", "--out", str(out), "--calibration", str(synthetic_data)],
    )
    assert r.exit_code == 0, r.output
    assert "argmax agreement with the Keras model: 100.00% of pixels on 8 held-out images of" in r.output
    seg = load_model(out)
    assert seg.describe()["spec_source"] == "embedded" and seg.spec == load_model(tiny_tflite["float"]).spec
    assert seg.describe()["runtime"] == "onnxruntime"
    runner = CliRunner()
    e_onnx = runner.invoke(app, ["eval", str(out), "--data", str(synthetic_data), "--json", str(tmp_path / "o.json")])
    e_tfl = runner.invoke(
        app, ["eval", str(tiny_tflite["float"]), "--data", str(synthetic_data), "--json", str(tmp_path / "t.json")]
    )
    assert e_onnx.exit_code == 0 and e_tfl.exit_code == 0, e_onnx.output + e_tfl.output
    m_onnx = json.loads((tmp_path / "o.json").read_text())["miou"]
    assert m_onnx == pytest.approx(json.loads((tmp_path / "t.json").read_text())["miou"], abs=0.005)
    b = runner.invoke(
        app,
        [
            "bench",
            str(tiny_tflite["float"]),
            str(tiny_tflite["int8"]),
            str(out),
            "--runs",
            "5",
            "--warmup",
            "1",
            "--frame-size",
            "160x120",
            "--json",
            str(tmp_path / "b.json"),
        ],
    )
    assert b.exit_code == 0, b.output
    runtimes = [r["runtime"] for r in json.loads((tmp_path / "b.json").read_text())["results"]]
    assert runtimes == ["litert", "litert", "onnxruntime"]
    bad = runner.invoke(app, ["eval", str(tiny_tflite["float"]), "--data", str(synthetic_data), "--runtime", "onnx"])
    assert bad.exit_code == 1 and "--runtime onnx runs .onnx models" in bad.output


@pytest.mark.slow
def test_int8_onnx_is_quantised_calibrated_and_close_to_float(tiny_run, synthetic_data, tmp_path):
    """convert --onnx --int8: onnxruntime's static quantisation (QDQ) on the same calibration images; it keeps
    the spec, runs on ONNX Runtime, and scores close to the float export."""
    onnx = pytest.importorskip("onnx", reason="needs the onnx extra")
    from typer.testing import CliRunner

    from edgeseg.cli import app

    runner = CliRunner()
    keras_path = str(tiny_run / "model.keras")
    f32, q8 = tmp_path / "f.onnx", tmp_path / "q.onnx"
    cal = ["--calibration", str(synthetic_data)]
    r = runner.invoke(app, ["convert", keras_path, "--onnx", "--out", str(f32), *cal, "--verify", "0"])
    assert r.exit_code == 0, r.output
    r = runner.invoke(
        app, ["convert", keras_path, "--onnx", "--int8", "--out", str(q8), *cal, "--num-calibration", "24"]
    )
    assert r.exit_code == 0, r.output
    assert "onnx int8" in r.output and "calibrated on 24 images" in r.output
    agree = float(r.output.split("argmax agreement with the Keras model: ")[1].split("%")[0])
    assert agree > 95.0, r.output
    graph = onnx.load(q8).graph
    ops = {n.op_type for n in graph.node}
    assert {"QuantizeLinear", "DequantizeLinear"} <= ops
    int8_weights = [t for t in graph.initializer if t.data_type == onnx.TensorProto.INT8]
    assert len(int8_weights) >= 10  # every convolution's weights
    # per output channel: each weight's DequantizeLinear has one scale per channel (a per-tensor recipe cost the
    # shipped small 10 points of mIoU; converters/onnx.py)
    dims = {t.name: list(t.dims) for t in graph.initializer}
    weight_dq = [
        n for n in graph.node if n.op_type == "DequantizeLinear" and n.input[0] in {t.name for t in int8_weights}
    ]
    assert weight_dq and all(dims[n.input[1]] == [dims[n.input[0]][0]] for n in weight_dq if len(dims[n.input[0]]) == 4)
    assert sum(dims[n.input[1]][0] > 1 for n in weight_dq if len(dims[n.input[0]]) == 4) >= 10
    assert q8.stat().st_size < 0.5 * f32.stat().st_size
    scores = {}
    for name, path in (("float", f32), ("int8", q8)):
        e = runner.invoke(
            app, ["eval", str(path), "--data", str(synthetic_data), "--json", str(tmp_path / f"{name}.json")]
        )
        assert e.exit_code == 0, e.output
        scores[name] = json.loads((tmp_path / f"{name}.json").read_text())["miou"]
    assert scores["int8"] == pytest.approx(scores["float"], abs=0.03), scores
    bad = runner.invoke(app, ["convert", keras_path, "--onnx", "--fp16"])
    assert bad.exit_code == 1 and "onnx has no fp16 target: choose one of float32, int8" in bad.output


def test_an_agreement_below_the_floor_is_warned_in_the_result_and_on_the_terminal(
    tiny_run, synthetic_data, tmp_path, monkeypatch
):
    """convert compares the argmax with Keras' and warns below the floor: the warning used to be replaced by
    the calibration's before it reached the result (an ONNX int8 small at 85% agreement said nothing)."""
    from typer.testing import CliRunner

    from edgeseg.cli import app
    from edgeseg.converters import pipeline

    monkeypatch.setitem(pipeline.AGREEMENT_FLOOR, "float32", 1.01)  # nothing can reach it
    out = tmp_path / "m.tflite"
    r = CliRunner().invoke(
        app, ["convert", str(tiny_run / "model.keras"), "--out", str(out), "--calibration", str(synthetic_data)]
    )
    assert r.exit_code == 0, r.output
    assert "agrees with Keras on only" in r.output and "expected at least 101% for float32" in r.output


def test_convert_takes_a_shipped_name_and_writes_under_the_working_folder_never_into_the_package(tmp_path, monkeypatch):
    """`edgeseg convert nano` converts the shipped nano's Keras weights (issue 34): its output goes to
    runs/convert/ under the working folder, since the default for other models (beside the model) would write
    into the installed package."""
    from typer.testing import CliRunner

    from converters.targets import target_for
    from edgeseg.assets import HERE, resolve_keras, shipped_keras
    from edgeseg.cli import app

    keras_nano = shipped_keras("nano")
    if keras_nano is None:
        pytest.skip("this install has no camvid_nano.keras")
    assert resolve_keras("nano") == keras_nano
    with pytest.raises(ModelError, match="no such model file .*shipped model: nano, small"):
        resolve_keras(tmp_path / "missing.keras")
    target = target_for("openvino", "float32")
    assert target.default_output(keras_nano) == Path("runs/convert/camvid_nano_openvino.xml")
    assert target.default_output(tmp_path / "run" / "model.keras") == tmp_path / "run" / "model_openvino.xml"
    half = target_for("tflite", "int8").default_output(keras_nano, "int8", "half")  # not the full-size one's name
    assert half == Path("runs/convert/camvid_nano_int8_half.tflite")
    before = sorted(p.name for p in HERE.iterdir())
    monkeypatch.chdir(tmp_path)
    r = CliRunner().invoke(app, ["convert", "nano", "--verify", "2"])
    assert r.exit_code == 0, r.output
    out = Path("runs/convert/camvid_nano_float32.tflite")
    assert f"wrote {out}" in r.output and (tmp_path / out).is_file()
    assert sorted(p.name for p in HERE.iterdir()) == before  # nothing new inside the package
    r = CliRunner().invoke(app, ["convert", "tiny", "--verify", "2"])
    assert r.exit_code == 1 and "tiny: no such model file" in r.output


def test_a_float_convert_with_no_images_to_check_on_says_so(tiny_run, tmp_path):
    """Issue 34: a float conversion whose spec's training data is not there skipped its accuracy check silently."""
    import shutil

    from typer.testing import CliRunner

    from edgeseg.cli import app

    moved = tmp_path / "a" / "b" / "c"  # deeper than the run: its relative data path leads nowhere from here
    moved.mkdir(parents=True)
    for name in ("model.keras", "spec.json"):
        shutil.copy(tiny_run / name, moved / name)  # the spec's data path, relative to the run, now leads nowhere
    r = CliRunner().invoke(app, ["convert", str(moved / "model.keras")])
    assert r.exit_code == 0, r.output
    assert "argmax agreement with the Keras model: not checked, no images (give --calibration DATASET)" in r.output


def test_output_size_half_stops_the_last_resize_at_half_the_input(tiny_run, tiny_tflite, synthetic_data, tmp_path):
    """issue 37: --output-size half. The same trained weights, the last resize at half the input size: the output
    tensor is half as high and wide, its argmax still agrees with the float model's, the mask comes back at the
    frame's size, and a model that does not end in edgeseg's "logits" resize is refused in one line."""
    import keras
    from typer.testing import CliRunner

    from edgeseg.cli import app
    from edgeseg.converters.pipeline import convert
    from edgeseg.models import open_model
    from edgeseg.synthetic import scene

    quiet = dict(progress=False, log=lambda *_: None)
    res = convert(
        tiny_run / "model.keras", tmp_path / "half.tflite", precision="int8", output_size="half",
        calibration=synthetic_data, num_calibration=24, **quiet,
    )  # fmt: skip
    full, half = Segmenter(tiny_tflite["int8"]), Segmenter(res.path)
    (h, w) = full.spec.input_hw
    assert full.output.shape[1:3] == (h, w) and half.output.shape[1:3] == (h // 2, w // 2)
    assert res.agreement > 0.9 and res.ops.fully_int8
    frame = scene(5, (90, 130))[0]
    a, b = full.segment(frame), half.segment(frame)
    assert a.shape == b.shape == (90, 130) and (a == b).mean() > 0.85
    assert half.describe()["gmacs"] == pytest.approx(full.describe()["gmacs"])  # a resize has no MACs
    assert open_model(res.path).input_hw == (h, w)
    # a model that ends in something else
    inp = keras.Input((16, 16, 3))
    plain = keras.Model(inp, keras.layers.Conv2D(2, 1, name="logits")(inp))
    plain.save(tmp_path / "plain.keras")
    (tmp_path / "plain.spec.json").write_text(ModelSpec(input_hw=(16, 16), classes=("a", "b")).to_json())
    with pytest.raises(ModelError, match="--output-size half needs a model that ends in an UpSampling2D by an even"):
        convert(tmp_path / "plain.keras", tmp_path / "p.tflite", output_size="half", **quiet)
    r = CliRunner().invoke(app, ["convert", str(tiny_run / "model.keras"), "--output-size", "quarter"])
    assert r.exit_code != 0 and "quarter" in r.output and "Traceback" not in r.output
    assert not (tmp_path / "p.tflite").exists()


def test_a_missing_toolkit_is_said_before_anything_loads_or_calibrates(monkeypatch):
    """issue 35: `convert --to openvino --int8` with no NNCF calibrated for minutes, then said it was missing.
    Every target checks what it needs first (find_spec, nothing imported): one line, exit 1, TensorFlow not loaded."""
    import importlib.util
    import sys

    from typer.testing import CliRunner

    from edgeseg.cli import app

    real = importlib.util.find_spec
    gone = {"nncf", "tf2onnx", "onnxoptimizer"}
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name in gone else real(name, *a))
    monkeypatch.delitem(sys.modules, "tensorflow", raising=False)  # to see whether this command loads it
    for args, said in (
        (["--to", "openvino", "--int8"], "nncf (for OpenVINO int8) is not installed: pip install 'edgeseg[openvino]'"),
        (["--to", "onnx"], "tf2onnx and onnx (for ONNX) is not installed: pip install 'edgeseg[onnx]'"),
        (["--to", "ncnn"], "is not installed: pip install 'edgeseg[onnx]'"),
    ):
        r = CliRunner().invoke(app, ["convert", "nano", *args])
        lines = [ln for ln in r.output.splitlines() if ln.strip()]
        assert r.exit_code == 1 and len(lines) == 1 and said in lines[0], r.output
        assert "calibrat" not in r.output and "tensorflow" not in sys.modules
