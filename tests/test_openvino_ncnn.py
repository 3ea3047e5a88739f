"""OpenVINO and ncnn beside LiteRT and ONNX Runtime: `convert --to openvino|ncnn`, their predictors in run, bench,
eval and load_model, one bench across runtimes, and the bad files each format can arrive as."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from typer.testing import CliRunner

from edgeseg.cli import app
from edgeseg.errors import EdgesegError, ModelError, RuntimeUnavailable

pytest.importorskip("openvino", reason="needs the openvino extra")
pytest.importorskip("ncnn", reason="needs the ncnn extra")
pytest.importorskip("tf2onnx", reason="needs the onnx extra")

runner = CliRunner()


@pytest.fixture(scope="module")
def converted(tiny_run, synthetic_data, tmp_path_factory) -> dict:
    """The tiny model in OpenVINO float32 and int8 and ncnn float32 and fp16, by `edgeseg convert`."""
    from edgeseg.converters.ncnn import pnnx_binary

    try:
        pnnx_binary()
    except EdgesegError as e:
        pytest.skip(str(e))
    folder = tmp_path_factory.mktemp("converted")
    model = tiny_run / "model.keras"
    cal = ["--calibration", str(synthetic_data), "--num-calibration", "24"]
    out = {}
    for name, flags in (
        ("ov", ["--to", "openvino"]),
        ("ov_int8", ["--to", "openvino", "--int8"]),
        ("ncnn", ["--to", "ncnn"]),
        ("ncnn_fp16", ["--to", "ncnn", "--fp16"]),
    ):
        suffix = ".xml" if name.startswith("ov") else ".param"
        path = folder / f"{name}{suffix}"
        js = folder / f"{name}.json"
        r = runner.invoke(app, ["convert", str(model), *flags, *cal, "--out", str(path), "--json", str(js)])
        assert r.exit_code == 0, r.output
        out[name], out[f"{name}_output"], out[f"{name}_json"] = path, r.output, json.loads(js.read_text())
    return out


@pytest.mark.slow
def test_openvino_and_ncnn_files_carry_the_spec_and_agree_with_keras(converted, tiny_run, tiny_tflite):
    from edgeseg import load_model
    from edgeseg.spec import ModelSpec

    ov, nc = converted["ov"], converted["ncnn"]
    assert ov.is_file() and ov.with_suffix(".bin").is_file()
    assert {"ncnn.param", "ncnn.bin", "ncnn.spec.json"} <= {p.name for p in nc.parent.glob("ncnn.*")}
    assert f"and {ov.with_suffix('.bin')} beside it" in converted["ov_output"]
    assert converted["ncnn_json"]["files"] == [str(nc), str(nc.with_suffix(".bin")), str(nc.parent / "ncnn.spec.json")]
    assert converted["ov_json"]["size_bytes"] == ov.stat().st_size + ov.with_suffix(".bin").stat().st_size
    for name in ("ov", "ov_int8", "ncnn", "ncnn_fp16"):
        agree = converted[f"{name}_json"]["argmax_agreement"]
        assert agree is not None and agree >= (0.95 if name == "ov_int8" else 0.99), (name, agree)
    keras_spec = ModelSpec.load(tiny_run / "spec.json")
    for name, source in (("ov", "embedded"), ("ncnn", "sidecar")):
        model = load_model(converted[name], threads=1)
        d = model.describe()
        assert d["spec_source"] == source and tuple(d["classes"]) == keras_spec.classes
        assert model.predictor.input_hw == keras_spec.input_hw and d["threads"] == 1
        assert d["gmacs"] is not None and d["gmacs"] > 0 and d["params"] > 0  # from the spec: Keras' count
    tfl = load_model(tiny_tflite["float"]).describe()
    assert set(load_model(converted["ov"]).describe()) == set(tfl) == set(load_model(converted["ncnn"]).describe())
    assert load_model(converted["ov"]).describe()["gmacs"] == pytest.approx(tfl["gmacs"], rel=0.02)


@pytest.mark.slow
def test_eval_scores_openvino_and_ncnn_within_a_point_of_float_tflite(converted, tiny_tflite, synthetic_data, tmp_path):
    scores = {}
    for name, path in (("tflite", tiny_tflite["float"]), *((n, converted[n]) for n in ("ov", "ov_int8", "ncnn"))):
        js = tmp_path / f"{name}.json"
        r = runner.invoke(app, ["eval", str(path), "--data", str(synthetic_data), "--json", str(js)])
        assert r.exit_code == 0, r.output
        scores[name] = json.loads(js.read_text())["miou"]
    for name in ("ov", "ov_int8", "ncnn"):
        assert abs(scores[name] - scores["tflite"]) <= 0.01, scores


@pytest.mark.slow
def test_one_bench_times_every_runtime_and_marks_the_fastest(converted, tiny_tflite, tmp_path):
    js, md = tmp_path / "b.json", tmp_path / "b.md"
    models = [str(tiny_tflite["float"]), str(converted["ov"]), str(converted["ncnn"])]
    args = [
        "bench",
        *models,
        "--runs",
        "3",
        "--warmup",
        "1",
        "--threads",
        "1",
        "--json",
        str(js),
        "--markdown",
        str(md),
    ]
    r = runner.invoke(app, args)
    assert r.exit_code == 0, r.output
    res = json.loads(js.read_text())["results"]
    assert [x["runtime"] for x in res] == ["litert", "openvino", "ncnn"]
    assert all(x["gmacs"] and x["gmacs"] > 0 for x in res)
    assert r.output.count("<- fastest") == 1 and md.read_text().count("**(fastest)**") == 1
    names = {"ov.xml": "openvino", "ncnn.param": "ncnn", tiny_tflite["float"].name: "litert"}
    shown = {ln.split()[0]: ln.split()[1] for ln in r.output.splitlines() if ln.split()[:1] and ln.split()[0] in names}
    assert shown == names  # each row names its runtime


def test_ncnn_int8_is_refused_with_the_reason():
    from edgeseg.converters.targets import target_for

    with pytest.raises(EdgesegError, match="ncnn2table and ncnn2int8, C\\+\\+ tools its pip wheel does not carry"):
        target_for("ncnn", "int8")
    r = runner.invoke(app, ["convert", "missing.keras", "--to", "ncnn", "--int8"])
    assert r.exit_code != 0


def test_model_files_write_the_companions_first_and_clean_up_on_failure(tmp_path, monkeypatch):
    from edgeseg.converters import files as files_mod
    from edgeseg.converters.files import ModelFiles
    from edgeseg.errors import OutputError

    f = ModelFiles(b"graph", {".bin": b"weights", ".spec.json": b"{}"})
    order = []
    real = files_mod.atomic_write_bytes
    monkeypatch.setattr(files_mod, "atomic_write_bytes", lambda p, d: order.append(p.name) or real(p, d))
    f.write(tmp_path / "m.param")
    assert order == ["m.bin", "m.spec.json", "m.param"] and f.size == 5 + 7 + 2
    assert (tmp_path / "m.bin").read_bytes() == b"weights"

    def fail_on_main(p, d):
        if p.suffix == ".param":
            raise OutputError(f"{p}: cannot write (No space left on device)")
        return real(p, d)

    monkeypatch.setattr(files_mod, "atomic_write_bytes", fail_on_main)
    with pytest.raises(OutputError, match="No space left"):
        f.write(tmp_path / "n.param")
    assert not list(tmp_path.glob("n.*"))  # nothing half-written


@pytest.mark.slow
def test_bad_openvino_and_ncnn_files_are_one_line_each(converted, tmp_path, synthetic_data):
    from edgeseg.predictors import open_predictor, predictor_class

    ov, nc = converted["ov"], converted["ncnn"]

    def copy(src, stem, cut_main=None, cut_bin=None, spec=True):
        main = tmp_path / f"{stem}{src.suffix}"
        data = src.read_bytes()
        if cut_main:
            data = data[:cut_main]
            data = data[: data.rfind(b"\n") + 1] if src.suffix == ".param" else data  # whole lines: layers missing
        main.write_bytes(data)
        weights = src.with_suffix(".bin").read_bytes()
        main.with_suffix(".bin").write_bytes(weights[:cut_bin] if cut_bin else weights)
        side = src.parent / f"{src.stem}.spec.json"
        if spec and side.exists():
            shutil.copyfile(side, tmp_path / f"{stem}.spec.json")
        return main

    cases = {
        copy(ov, "ov_short_xml", cut_main=3000): "the .xml is not well-formed XML",
        copy(ov, "ov_short_bin", cut_bin=1000): "its .bin is shorter than the .xml says",
        copy(nc, "nc_short_param", cut_main=1500): "layers but holds",
        copy(nc, "nc_short_bin", cut_bin=1000): "not this model's weights (or truncated)",
        copy(nc, "nc_no_spec", spec=False): "carries no spec: put nc_no_spec.spec.json next to it",
    }
    gone = copy(ov, "ov_no_bin")
    gone.with_suffix(".bin").unlink()
    cases[gone] = "its weights (ov_no_bin.bin) are not beside it"
    other = copy(nc, "nc_other_bin")
    other.with_suffix(".bin").write_bytes(ov.with_suffix(".bin").read_bytes())  # another model's weights
    cases[other] = "not this model's weights"
    not_param = tmp_path / "text.param"
    not_param.write_text("hello\n")
    not_param.with_suffix(".bin").write_bytes(b"\0" * 64)
    cases[not_param] = "not an ncnn .param file"
    for path, said in cases.items():
        r = runner.invoke(app, ["eval", str(path), "--data", str(synthetic_data), "--limit", "1"])
        assert r.exit_code == 1 and said in r.output, (path.name, r.output)
        assert "Traceback" not in r.output and len(r.output.strip().splitlines()) == 1, r.output
    with pytest.raises(ModelError, match="two files \\(.xml and .bin\\): give the .xml file's path"):
        predictor_class(ov)(ov.read_bytes())
    with pytest.raises(ModelError, match="--runtime openvino runs .xml models, not .param"):
        open_predictor(nc, runtime="openvino")
    with pytest.raises(RuntimeUnavailable, match="unknown runtime 'mnn'"):
        open_predictor(nc, runtime="mnn")
    with pytest.raises(ModelError, match="the Edge TPU runs compiled .tflite models, not ncnn"):
        open_predictor(nc, delegate="edgetpu")


def test_doctor_names_the_runtimes_installed():
    from edgeseg.doctor import other_runtimes

    c = other_runtimes()
    assert "openvino" in c.detail and "(.xml)" in c.detail and "ncnn" in c.detail and "(.param)" in c.detail
    if __import__("platform").machine() != "aarch64":  # RKNN's runtime has aarch64 wheels only: not suggested
        assert "rknn" not in c.detail and "rknn" not in c.hint


def test_an_nchw_openvino_model_gets_nhwc_at_its_edges():
    """An IR whose input is [1, 3, H, W] (as from PyTorch) runs like ours: OpenVINO's own preprocessing turns
    the NHWC tensor edgeseg prepares, and the NCHW output, around. A 1x1 convolution of known weights makes the
    expected mask computable by hand."""
    import openvino as ov
    import openvino.opset13 as ops

    from edgeseg.predictors.openvino import OpenVinoSegmenter
    from edgeseg.spec import ModelSpec

    h, w = 8, 12
    weights = np.random.default_rng(2).normal(size=(4, 3, 1, 1)).astype(np.float32)
    image = ops.parameter([1, 3, h, w], ov.Type.f32, name="image")
    scores = ops.convolution(image, ops.constant(weights), [1, 1], [0, 0], [0, 0], [1, 1])
    model = ov.Model([scores], [image], "nchw")
    spec = ModelSpec(input_hw=(h, w), classes=("a", "b", "c", "d"))
    model.set_rt_info(spec.to_json(), ["edgeseg_spec"])
    import tempfile
    from pathlib import Path

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "nchw.xml"
        ov.save_model(model, path, compress_to_fp16=False)
        seg = OpenVinoSegmenter(path)
        assert seg.input.shape == (1, h, w, 3) and seg.output.shape == (1, h, w, 4)
        frame = np.random.default_rng(1).integers(0, 256, (h, w, 3), dtype=np.uint8)
        tensor, _ = seg.prepare(frame)
        expected = np.einsum("ck,hwk->hwc", weights[:, :, 0, 0], tensor[0]).argmax(-1)
        np.testing.assert_array_equal(seg.segment(frame), expected)
