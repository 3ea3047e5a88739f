"""The fault catalogue, round 2 (issue "Faults round 2"), by class: no silent wrong answer, training that survives
a crash, outputs, bounded inputs, the viewer under abuse, the Python API, and the rough edges a new user met.

Each asserts what the user sees (one line, the exit code, no traceback) and what is left behind."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
from typer.testing import CliRunner

from edgeseg.cli import app
from edgeseg.errors import DataError, ModelError
from tests.conftest import ROOT
from tests.test_faults import one_line_error
from tests.toy import solid

runner = CliRunner()


def invoke(*args):
    return runner.invoke(app, [str(a) for a in args])


# ---------------------------------------------------------------------------------- 1. no silent wrong answer
@pytest.mark.parametrize(
    "frame, said",
    [
        (np.full((24, 40, 3), 0.5, np.float32), "not float32"),
        (np.full((24, 40, 3), 40000, np.uint16), "not uint16"),
        (np.zeros((24, 40, 2), np.uint8), "not shape"),
        (np.zeros((0, 40, 3), np.uint8), "not shape"),
        ([[0, 0, 0]], "not list"),
    ],
)
def test_a_frame_that_is_not_bgr_uint8_is_refused_not_misread(toy_models, frame, said):
    from edgeseg import load_model

    seg = load_model(toy_models["scores_float"])
    for call in (seg.predict, seg.segment):
        with pytest.raises(DataError, match=said):
            call(frame)
    assert seg.predict(solid((0, 0, 255), (24, 40))[..., :1].copy()).mask.shape == (24, 40)  # H x W x 1 is grey


def _dynamic_onnx(path: Path, classes: int = 3) -> Path:
    """An NHWC ONNX model whose height and width are dynamic: a 1x1 convolution, class c's score = channel c."""
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper, numpy_helper

    w = np.zeros((classes, 3, 1, 1), np.float32)
    for c in range(min(3, classes)):
        w[c, c] = 1.0
    nodes = [
        helper.make_node("Transpose", ["image"], ["nchw"], perm=[0, 3, 1, 2]),
        helper.make_node("Conv", ["nchw", "w"], ["y"]),
        helper.make_node("Transpose", ["y"], ["scores"], perm=[0, 2, 3, 1]),
    ]
    graph = helper.make_graph(
        nodes,
        "dynamic",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, [1, "h", "w", 3])],
        [helper.make_tensor_value_info("scores", TensorProto.FLOAT, [1, "h", "w", classes])],
        [numpy_helper.from_array(w, "w")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, path)
    return path


def test_an_onnx_model_with_a_dynamic_size_runs_at_its_specs_size_or_is_refused(tmp_path):
    pytest.importorskip("onnxruntime")
    from edgeseg.models import open_model
    from edgeseg.spec import ModelSpec

    path = _dynamic_onnx(tmp_path / "dyn.onnx")
    with pytest.raises(ModelError, match="dynamic and the model carries no spec: give one with --spec"):
        open_model(path)
    spec = tmp_path / "spec.json"
    ModelSpec(input_hw=(32, 48), classes=("red", "green", "blue"), mean=(0.0,) * 3, std=(255.0,) * 3).save(spec)
    seg = open_model(path, spec=spec)
    assert seg.input.shape == (1, 32, 48, 3) and seg.describe()["input"]["shape"] == [1, 32, 48, 3]
    frame = np.zeros((60, 90, 3), np.uint8)
    frame[:, :45] = (0, 255, 0)  # green on the left, blue on the right (BGR)
    frame[:, 45:] = (255, 0, 0)
    mask = seg.segment(frame)
    assert mask.shape == (60, 90) and (mask[:, :40] == 1).all() and (mask[:, 50:] == 2).all()  # not one class


@pytest.mark.parametrize("mean, std", [([float("nan")], [255.0]), ([0.0], [float("inf")]), ([0.0], [0.0])])
def test_normalisation_from_metadata_must_be_finite(mean, std):
    from edgeseg.postprocess import OutputKind
    from edgeseg.predictors.spec_source import default_spec
    from edgeseg.tensors import TensorInfo

    inp = TensorInfo("image", (1, 8, 8, 3), np.float32)
    out = TensorInfo("scores", (1, 8, 8, 2), np.float32)
    with pytest.raises(ModelError, match="must be finite, std at least"):
        default_spec(inp, out, OutputKind.SCORES, {"mean": mean, "std": std})


def test_a_source_named_like_the_generator_is_read_not_replaced(toy_models, tmp_path):
    from edgeseg.camera.sources import CaptureSource, ImageFolderSource, SyntheticSource, open_source
    from edgeseg.synthetic import write_video

    clip = write_video(tmp_path / "synthetic_clip.mp4", frames=3, hw=(48, 64))
    folder = tmp_path / "synthetic"
    folder.mkdir()
    cv2.imwrite(str(folder / "a.png"), solid((0, 0, 255), (20, 30)))
    os.chdir(tmp_path)
    try:
        assert isinstance(open_source(source=str(clip)), CaptureSource)
        assert isinstance(open_source(source="synthetic"), ImageFolderSource)  # a folder of that name is a folder
        assert isinstance(open_source(source="synthetic:64x48"), SyntheticSource)
    finally:
        os.chdir(ROOT)


def test_an_exif_turned_image_and_its_mask_stay_on_one_grid(tmp_path):
    """A JPEG stored 40x20 with EXIF orientation 6 (turn 90 degrees) shows as 20x40. Its mask, drawn on the
    stored grid, stays 40x20: the image is read as stored. A mask drawn on the turned view (20x40) gets the
    image turned. One of the two is never turned alone."""
    from PIL import Image

    from edgeseg.datasets import open_dataset

    root = tmp_path / "ds"
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    stored = np.zeros((20, 40, 3), np.uint8)
    stored[:, :20] = (255, 0, 0)  # RGB: red on the left of the stored grid
    exif = Image.Exif()
    exif[0x0112] = 6
    for name, mask_hw in (("stored", (20, 40)), ("turned", (40, 20))):
        Image.fromarray(stored).save(root / "images" / f"{name}.jpg", exif=exif, quality=95)
        Image.fromarray(np.zeros(mask_hw, np.uint8)).save(root / "masks" / f"{name}.png")
    (root / "classes.json").write_text(json.dumps({"classes": ["a", "b"]}))
    ds = open_dataset(root, "all")
    by_name = {s.image.stem: i for i, s in enumerate(ds.samples)}
    image, mask = ds.read(by_name["stored"])
    assert image.shape[:2] == mask.shape == (20, 40) and image[10, 5, 2] > 200  # red stays on the left
    image, mask = ds.read(by_name["turned"])
    assert image.shape[:2] == mask.shape == (40, 20)


def test_save_masks_gives_images_that_share_a_stem_a_mask_each(toy_models, tmp_path):
    root = tmp_path / "ds"
    for split in ("train", "val"):
        (root / split / "images").mkdir(parents=True)
        (root / split / "masks").mkdir(parents=True)
        for ext in (".png", ".jpg"):
            colour = (0, 0, 255) if split == "train" else (0, 255, 0)
            cv2.imwrite(str(root / split / "images" / f"a{ext}"), solid(colour, (24, 40)))
        cv2.imwrite(str(root / split / "masks" / "a.png"), np.zeros((24, 40), np.uint8))
    (root / "classes.json").write_text(json.dumps({"classes": ["r", "g", "b"]}))
    out = tmp_path / "masks"
    r = invoke("eval", toy_models["scores_float"], "--data", root, "--split", "all", "--save-masks", out)
    assert r.exit_code == 0, r.output
    written = sorted(p.name for p in out.iterdir())
    assert len(written) == 4 and len(set(written)) == 4, written  # no mask overwrote another


# ------------------------------------------------------------------------------- 2. training that survives a crash
def _tiny_cfg(data, out, **kw):
    from edgeseg.training.config import TrainConfig

    return TrainConfig(data=str(data), out=str(out), input_hw=(32, 64), alpha=0.35, decoder="tiny", batch_size=12, **kw)


@pytest.mark.slow
def test_a_sigkill_while_the_backup_is_written_leaves_one_that_resumes(synthetic_data, tmp_path):
    """The process dies (SIGKILL) half-way through writing epoch 2's backup weights: the backup on disk is still
    epoch 1's, whole, and --resume finishes the run."""
    out = tmp_path / "r"
    code = f"""
import os, signal, keras
from edgeseg.training.config import TrainConfig
from edgeseg.training.train import train
real, partial = keras.Model.save_weights, []
def dying(self, filepath, *a, **kw):
    if "partial" in str(filepath):
        partial.append(filepath)
        if len(partial) == 2:
            open(filepath, "wb").write(b"half a weights file")
            os.kill(os.getpid(), signal.SIGKILL)
    return real(self, filepath, *a, **kw)
keras.Model.save_weights = dying
train(TrainConfig(data={str(synthetic_data)!r}, out={str(out)!r}, input_hw=(32, 64), alpha=0.35, decoder="tiny",
                  batch_size=12, epochs=3), log=lambda *_: None)
"""
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert proc.returncode == -9, proc.stderr[-2000:]
    assert (out / "backup" / "latest.weights.h5").stat().st_size > 1000
    r = invoke("train", "--data", synthetic_data, "--out", out, "--resume")
    assert r.exit_code == 0, r.output
    with (out / "history.csv").open() as f:
        epochs = [int(line.split(",")[0]) for line in f.readlines()[1:]]
    assert epochs[-1] == 2 and (out / "model.keras").is_file()


@pytest.mark.parametrize(
    "change, said",
    [
        ({"epochs": "many"}, "epochs: 'many' is not a whole number"),
        ({"augment": {"scale": ["a", 1], "flip": True, "jitter": 0.2}}, "augment"),
        ({"input_hw": [1e999, 32]}, "OverflowError"),
        ({"backbone": "resnet"}, "unknown backbone 'resnet'"),
        ({"class_weights": "nan,1"}, "class weights"),
        ({"data": ["a", "list"]}, "data"),
    ],
)
def test_an_edited_or_hostile_config_is_one_line_on_resume(synthetic_data, tmp_path, change, said):
    out = tmp_path / "r"
    out.mkdir()
    cfg = _tiny_cfg(synthetic_data, out, epochs=2).to_dict(relative_to=out)
    (out / "config.json").write_text(json.dumps({**cfg, **change}).replace("Infinity", "1e999"))
    (out / "backup").mkdir()
    one_line_error(invoke("train", "--data", synthetic_data, "--out", out, "--resume"), said)


def test_resume_refuses_options_that_would_change_the_run_and_finds_its_data_from_anywhere(synthetic_data, tmp_path):
    from edgeseg.training.config import TrainConfig

    out = tmp_path / "runs" / "r"
    out.mkdir(parents=True)
    cfg = _tiny_cfg(os.path.relpath(synthetic_data, ROOT), out, epochs=2)
    (out / "config.json").write_text(json.dumps(cfg.to_dict(relative_to=out)))
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    os.chdir(elsewhere)
    try:
        loaded = TrainConfig.load(out)
    finally:
        os.chdir(ROOT)
    assert Path(loaded.data).resolve() == synthetic_data.resolve() and loaded.out == str(out)
    (out / "backup").mkdir()
    for extra, named in ((["--epochs", "50"], "--epochs"), (["--size", "96x64", "--lr", "0.1"], "--size, --lr")):
        line = one_line_error(invoke("train", "--data", synthetic_data, "--out", out, "--resume", *extra), named)
        assert "would change it: start a new run, with --init" in line


@pytest.mark.slow
def test_two_runs_into_one_folder_the_second_is_refused(synthetic_data, tmp_path):
    out = tmp_path / "r"
    first = subprocess.Popen(
        [sys.executable, "-m", "edgeseg", "train", "--data", str(synthetic_data), "--out", str(out)]
        + ["--size", "64x32", "--alpha", "0.35", "--decoder", "tiny", "--epochs", "200"],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.time() + 120
        while not (out / "config.json").exists() and time.time() < deadline:
            time.sleep(0.5)
        assert (out / "config.json").exists(), "the first run did not start"
        r = invoke("train", "--data", synthetic_data, "--out", out, "--size", "64x32")
        assert r.exit_code == 1 and "Traceback" not in r.output
        assert (
            r.output.strip()
            .splitlines()[-1]
            .endswith("another edgeseg train is writing into this folder; give another --out")
        )
    finally:
        first.kill()
        first.wait()
