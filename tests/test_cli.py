import json
import os
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from edgeseg.cli import app
from tests.conftest import shared_path

runner = CliRunner()


def invoke(*args):
    return runner.invoke(app, [str(a) for a in args])


def assert_one_line_error(result, pattern, code=1):
    import re

    assert result.exit_code == code, result.output
    assert "Traceback" not in result.output
    lines = [ln for ln in result.output.strip().splitlines() if ln.strip()]
    assert len(lines) == 1, result.output
    assert re.search(pattern, lines[0]), lines[0]


COMMANDS = [
    "train",
    "convert",
    "run",
    "bench",
    "eval",
    "quant-report",
    "edgetpu",
    "info",
    "doctor",
    "synth",
    "pack",
    "demo",
]


def test_every_option_has_help_and_a_plain_metavar_and_there_is_a_version():
    """The CLI reads as one tool (issue 34): no option without help, no Python type as a metavar, sizes as WxH
    everywhere, and --version."""
    from importlib.metadata import version

    import typer.main

    r = invoke("--version")
    assert r.exit_code == 0 and r.output.strip() == f"edgeseg {version('edgeseg')}"
    for command in COMMANDS:
        r = runner.invoke(app, [command, "--help"], env={"COLUMNS": "200"})
        assert r.exit_code == 0, r.output
        for bad in ("range>", "list[", "<str>", "<float>", "<bool>"):
            assert bad not in r.output, (command, bad, r.output)
        params = typer.main.get_command(app).commands[command].params
        for p in params:
            assert (p.help or "").strip(), f"{command} {p.opts} has no help"
        for name in ("--size", "--frame-size", "--camera-size"):
            if f"\n  {name} " in r.output:
                assert f"\n  {name} WxH " in r.output, (command, name)


def test_help_lists_exactly_the_commands_in_order_each_with_one_red_line_errors():
    import re

    from edgeseg.cli import app

    r = invoke("--help")
    assert r.exit_code == 0
    listed = re.findall(r"^  ([a-z][a-z-]+) ", r.output.split("Commands:")[1], flags=re.M)
    assert listed == COMMANDS, listed
    names = [c.name or c.callback.__name__ for c in app.registered_commands]
    assert names == COMMANDS
    for c in app.registered_commands:  # every command turns domain errors into one line (handles_errors)
        assert getattr(c.callback, "__wrapped__", None) is not None, c.callback.__name__


@pytest.mark.slow
def test_bench_json_figures(tiny_tflite, tmp_path):
    r = invoke(
        "bench",
        tiny_tflite["int8"],
        "--runs",
        30,
        "--warmup",
        3,
        "--threads",
        1,
        "--frame-size",
        "200x100",
        "--json",
        tmp_path / "b.json",
    )
    assert r.exit_code == 0, r.output
    assert "inv p50" in r.output and "e2e p50" in r.output and f"wrote {tmp_path / 'b.json'}" in r.output
    d = json.loads((tmp_path / "b.json").read_text())["results"][0]
    for key in ("invoke", "end_to_end"):
        s = d[key]
        assert s["runs"] == 30 and 0 < s["p50_ms"] <= s["p90_ms"] <= s["p99_ms"] <= s["max_ms"]
    assert d["end_to_end"]["p50_ms"] > d["invoke"]["p50_ms"] * 0.5
    assert d["threads"] == 1 and d["runtime"] == "litert" and d["frame_hw"] == [100, 200]
    assert d["size_bytes"] == tiny_tflite["int8"].stat().st_size and d["init_ms"] > 0
    from edgeseg.cost import model_cost

    cost = model_cost(tiny_tflite["int8"])
    assert d["gmacs"] == round(cost.gmacs, 4) > 0 and d["params"] == cost.params > 0
    r = invoke(
        "bench",
        tiny_tflite["int8"],
        "--runs",
        2,
        "--warmup",
        0,
        "--csv",
        tmp_path / "b.csv",
        "--markdown",
        tmp_path / "b.md",
    )
    assert r.exit_code == 0, r.output
    assert f"{cost.gmacs:6.3f}" in r.output and "GMACs" in r.output
    header, row = (tmp_path / "b.csv").read_text().splitlines()[:2]
    assert header.split(",")[1:3] == ["gmacs", "params_m"] and row.split(",")[1] == str(round(cost.gmacs, 4))
    assert "| GMACs | params (M) |" in (tmp_path / "b.md").read_text()


@pytest.mark.slow
def test_eval_json_matches_the_library(tiny_tflite, synthetic_data, tmp_path):
    from edgeseg.datasets import open_dataset
    from edgeseg.evaluate import evaluate
    from edgeseg.predictors.tflite import Segmenter

    r = invoke(
        "eval",
        tiny_tflite["int8"],
        "--data",
        synthetic_data,
        "--json",
        tmp_path / "e.json",
        "--save-masks",
        tmp_path / "masks",
    )
    assert r.exit_code == 0, r.output
    d = json.loads((tmp_path / "e.json").read_text())
    ds = open_dataset(synthetic_data, "val")
    seg = Segmenter(tiny_tflite["int8"])
    ref = evaluate(seg, ds)
    assert d["miou"] == pytest.approx(ref["miou"]) and d["images"] == 4
    # --save-masks: one 8-bit index PNG per image, named after it, equal to the model's prediction
    import cv2
    import numpy as np

    saved = sorted(p.name for p in (tmp_path / "masks").iterdir())
    assert saved == sorted(f"{s.image.stem}.png" for s in ds.samples)
    for i, s in enumerate(ds.samples):
        m = cv2.imread(str(tmp_path / "masks" / f"{s.image.stem}.png"), cv2.IMREAD_UNCHANGED)
        assert m.dtype == np.uint8 and m.ndim == 2
        assert np.array_equal(m, seg.segment(ds.read(i)[0]))
    assert set(d["per_class_iou"]) == {"background", "disc", "box", "triangle", "bar"}
    assert f"mIoU {100 * ref['miou']:.2f}" in r.output
    from edgeseg.cost import model_cost

    assert d["gmacs"] == round(model_cost(tiny_tflite["int8"]).gmacs, 4) and d["params"] > 0


@pytest.mark.slow
def test_eval_keras_and_float_agree(tiny_run, tiny_tflite, synthetic_data, tmp_path):
    out = {}
    for name, model in (("keras", tiny_run / "model.keras"), ("float", tiny_tflite["float"])):
        r = invoke("eval", model, "--data", synthetic_data, "--json", tmp_path / f"{name}.json")
        assert r.exit_code == 0, r.output
        out[name] = json.loads((tmp_path / f"{name}.json").read_text())["miou"]
    assert out["keras"] == pytest.approx(out["float"], abs=0.005)


@pytest.mark.slow
def test_run_records_a_playable_overlay(tiny_tflite, tmp_path):
    from edgeseg.synthetic import write_video

    video = write_video(tmp_path / "in.mp4", frames=20, hw=(60, 80))
    r = invoke(
        "run",
        tiny_tflite["int8"],
        "--source",
        video,
        "--no-show",
        "--record",
        tmp_path / "out.mp4",
        "--max-frames",
        12,
        "--stats",
        tmp_path / "s.json",
    )
    assert r.exit_code == 0, r.output
    cap = cv2.VideoCapture(str(tmp_path / "out.mp4"))
    frames = []
    while True:
        ok, f = cap.read()
        if not ok:
            break
        frames.append(f)
    cap.release()
    assert len(frames) == 12 and frames[0].shape == (60, 80, 3)
    s = json.loads((tmp_path / "s.json").read_text())
    assert s["frames"] == 12 and s["stages"]["invoke"]["runs"] == 12


def test_synth_writes_a_dataset(tmp_path):
    r = invoke("synth", tmp_path / "d", "--count", 5, "--size", "64x48")
    assert r.exit_code == 0, r.output
    assert len(list((tmp_path / "d" / "masks").iterdir())) == 5
    assert cv2.imread(str(next((tmp_path / "d" / "images").iterdir()))).shape == (48, 64, 3)


# ------------------------------------------------------------------------------------------- bad input
def test_not_a_tflite(tmp_path):
    junk = tmp_path / "model.tflite"
    junk.write_bytes(b"hello world, not a flatbuffer" * 10)
    assert_one_line_error(invoke("bench", junk), r"^error: .*model.tflite: not a TFLite model")


def test_missing_model_is_one_line_naming_the_shipped_ones(tmp_path):
    for cmd in ("bench", "run", "eval"):
        r = (
            invoke(cmd, tmp_path / "nope.tflite", "--data", tmp_path)
            if cmd == "eval"
            else invoke(cmd, tmp_path / "nope.tflite")
        )
        assert_one_line_error(r, r"nope\.tflite: no such model file .*shipped model: nano, small")
    assert_one_line_error(invoke("bench", "--model", "tiny"), r"tiny: no such model file")
    assert_one_line_error(invoke("eval", "--data", tmp_path), r"no model given")
    assert_one_line_error(invoke("run", "small", "--model", "nano", "--no-show"), r"give the model once")


def test_shipped_names_resolve_to_the_packaged_files(monkeypatch, tmp_path):
    import edgeseg.assets as assets

    for name, file in assets.SHIPPED.items():
        if assets.shipped_model(name) is not None:
            assert assets.resolve_model(name) == assets.HERE / file
    monkeypatch.setattr(assets, "HERE", tmp_path)  # an install without the files
    with pytest.raises(Exception, match=r"shipped model 'nano' \(camvid_nano_int8.tflite\) is not in this install"):
        assets.resolve_model("nano")
    local = tmp_path / "small"
    local.write_bytes(b"x")
    monkeypatch.chdir(tmp_path)
    assert assets.resolve_model("small") == Path("small")  # a file of that name in the working folder wins


def test_wrong_shape_model(toy_models):
    assert_one_line_error(invoke("bench", toy_models["grey_input"]), r"expected \[1, H, W, 3\]")
    assert_one_line_error(invoke("bench", toy_models["classifier"]), r"expected \[1,H,W,C\] scores")


def test_unknown_runtime_and_missing_delegate(toy_models):
    r = invoke("bench", toy_models["scores_float"], "--runtime", "tvm")
    assert r.exit_code == 2 and "Traceback" not in r.output and "Invalid value" in r.output
    assert_one_line_error(invoke("bench", toy_models["scores_float"], "--runtime", "onnx"), "runs .onnx models")
    assert_one_line_error(
        invoke("bench", toy_models["scores_float"], "--delegate", "edgetpu"), "Edge TPU delegate .* does not load"
    )


def test_edgetpu_peer_without_edge_tpu():
    p = shared_path("models", "peers", "deeplabv3_mnv2_pascal_quant_edgetpu.tflite")
    assert_one_line_error(invoke("bench", p), "compiled for the Edge TPU")


def _dataset_with(tmp_path, image_bytes=None, mask=None):
    root = tmp_path / "ds"
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    img = root / "images" / "a.png"
    if image_bytes is None:
        cv2.imwrite(str(img), np.zeros((24, 40, 3), np.uint8))
    else:
        img.write_bytes(image_bytes)
    Image.fromarray(mask if mask is not None else np.zeros((24, 40), np.uint8)).save(root / "masks" / "a.png")
    (root / "classes.json").write_text('{"classes": ["red", "green", "blue"]}')  # what the toy models predict
    return root


def test_corrupt_image_in_dataset(toy_models, tmp_path):
    root = _dataset_with(tmp_path, image_bytes=b"\x89PNG\r\n\x1a\n broken")
    assert_one_line_error(
        invoke("eval", toy_models["scores_float"], "--data", root, "--split", "all"), r"a\.png: not a readable image"
    )


def test_mask_that_does_not_fit(toy_models, tmp_path):
    root = _dataset_with(tmp_path, mask=np.zeros((20, 40), np.uint8))
    assert_one_line_error(
        invoke("eval", toy_models["scores_float"], "--data", root, "--split", "all"),
        r"a\.png: mask is 40x20 but its image a\.png is 40x24",
    )


def test_mask_values_that_do_not_fit(toy_models, tmp_path):
    root = _dataset_with(tmp_path)
    (root / "classes.json").write_text('{"classes": ["a", "b", "c"]}')
    Image.fromarray(np.full((24, 40), 9, np.uint8)).save(root / "masks" / "a.png")
    assert_one_line_error(
        invoke("eval", toy_models["scores_float"], "--data", root, "--split", "all"),
        r"a\.png: mask value 9 is not a class",
    )


def test_model_and_dataset_classes_differ(toy_models, tmp_path):
    root = _dataset_with(tmp_path)
    (root / "classes.json").write_text('{"classes": ["a", "b"]}')
    assert_one_line_error(
        invoke("eval", toy_models["scores_float"], "--data", root, "--split", "all"),
        "predicts 3 classes but the dataset has 2",
    )


def test_absent_camera_and_bad_sources(toy_models, tmp_path):
    m = toy_models["scores_float"]
    assert_one_line_error(invoke("run", m, "--camera", 7, "--no-show"), r"no camera at index 7")
    assert_one_line_error(invoke("run", m, "--source", tmp_path / "missing.mp4", "--no-show"), "no such file")
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"\x00\x00\x00\x18ftypmp42" + bytes(300))
    assert_one_line_error(invoke("run", m, "--source", bad, "--no-show"), r"bad\.mp4: (cannot open|no frame)")
    assert_one_line_error(invoke("run", m, "--no-show"), "exactly one of --camera")
    assert not (tmp_path / "out.mp4").exists()


def test_bad_sizes_and_options(toy_models, tmp_path):
    assert_one_line_error(invoke("bench", toy_models["scores_float"], "--frame-size", "big"), "WIDTHxHEIGHT")
    assert_one_line_error(invoke("synth", tmp_path / "d", "--size", "0x10"), "WIDTHxHEIGHT")


@pytest.mark.slow
def test_convert_bad_inputs(tmp_path, tiny_run):
    fake = tmp_path / "m.keras"
    fake.write_bytes(b"junk")
    assert_one_line_error(invoke("convert", fake, "--spec", tiny_run / "spec.json"), "not a loadable Keras model")
    assert_one_line_error(invoke("convert", tiny_run / "model.keras", "--int8", "--dynamic"), "choose one precision")
    lonely = tmp_path / "lonely"
    lonely.mkdir()
    (lonely / "model.keras").write_bytes((tiny_run / "model.keras").read_bytes())
    assert_one_line_error(
        invoke("convert", lonely / "model.keras"), r"no spec beside the model: put model\.spec\.json \(or spec\.json\)"
    )
    assert sorted(p.name for p in lonely.iterdir()) == ["model.keras"]


@pytest.mark.slow
def test_eval_refuses_a_keras_model_whose_classes_do_not_fit_the_dataset(tiny_run, tmp_path):
    """The .keras model predicts the synthetic data's 5 classes; a 3-class dataset cannot score it."""
    root = _dataset_with(tmp_path)  # 3 classes
    assert_one_line_error(
        invoke("eval", tiny_run / "model.keras", "--data", root, "--split", "all"),
        "predicts 5 classes but the dataset has 3",
    )


def test_equalize_takes_a_mode(tiny_run, tmp_path):
    out = tmp_path / "x.tflite"
    r = invoke("convert", tiny_run / "model.keras", "--int8", "--equalize", "sometimes", "--out", out)
    assert r.exit_code == 2 and "Traceback" not in r.output and "Invalid value" in r.output, r.output
    assert "sometimes" in r.output and "auto" in r.output  # names what it got and the choices
    r = invoke("convert", tiny_run / "model.keras", "--int8", "--out", out, "--equalize")  # the old flag form
    assert r.exit_code == 2 and "requires an argument" in r.output, r.output
    assert not out.exists()
    # issue 34: quant-report's flag says what the int8 model is (--equalized), not the mode convert takes
    help_text = invoke("quant-report", "--help").output
    assert "  --equalized " in help_text and "  --equalize " not in help_text and "--no-equalize" not in help_text


def test_quiet_by_default_and_the_libraries_lines_with_verbose(tmp_path):
    """Issue 34: LiteRT's 'INFO: Created TensorFlow Lite XNNPACK delegate' line on every command is held back;
    `edgeseg -v` shows it. A subprocess, since the line is written by C++ to the process's stderr."""
    import subprocess
    import sys

    from edgeseg.assets import default_model

    if default_model() is None:
        pytest.skip("no shipped model in this checkout")
    cmd = [sys.executable, "-m", "edgeseg", "bench", "nano", "--runs", "2", "--warmup", "0", "--rounds", "1"]
    quiet = subprocess.run(cmd, capture_output=True, text=True, cwd=tmp_path, env={**os.environ, "EDGESEG_VERBOSE": ""})
    assert quiet.returncode == 0, quiet.stderr
    assert "camvid_nano_int8.tflite" in quiet.stdout and "XNNPACK" not in quiet.stderr + quiet.stdout
    loud = subprocess.run([*cmd[:3], "-v", *cmd[3:]], capture_output=True, text=True, cwd=tmp_path)
    assert loud.returncode == 0 and "Created TensorFlow Lite XNNPACK delegate" in loud.stderr, loud.stderr
    # FFmpeg's and OpenCV's own lines about a corrupt file stay off the terminal: our one line says it
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(np.random.default_rng(0).integers(0, 256, 5000, dtype=np.uint8).tobytes())
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPENCV_") and k != "EDGESEG_VERBOSE"}
    run = [sys.executable, "-m", "edgeseg", "run", "nano", "--source", str(bad), "--no-show", "--max-frames", "2"]
    quiet = subprocess.run(run, capture_output=True, text=True, cwd=tmp_path, env=env)
    lines = [ln for ln in (quiet.stdout + quiet.stderr).splitlines() if ln.strip()]
    assert quiet.returncode == 1 and lines == [f"error: {bad}: cannot open as a video (corrupt file, unsupported "
                                               "codec or unreachable stream)"], lines  # fmt: skip
    loud = subprocess.run([*run[:3], "-v", *run[3:]], capture_output=True, text=True, cwd=tmp_path, env=env)
    assert "moov atom not found" in loud.stderr, loud.stderr
