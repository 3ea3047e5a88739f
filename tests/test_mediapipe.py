"""convert --mediapipe: standard TFLite Metadata that MediaPipe's ImageSegmenter reads. The metadata is checked
with edgeseg's own reader here, and with Google's mediapipe package (in .venv-mediapipe, made by
scripts/setup-mediapipe.sh) in the second test, which skips with the reason when that venv is absent."""

from __future__ import annotations

import dataclasses
import os
import subprocess
from pathlib import Path

import cv2
import numpy as np
import pytest
from typer.testing import CliRunner

from tests.conftest import ROOT

MEDIAPIPE_PYTHON = Path(os.environ.get("EDGESEG_MEDIAPIPE_PYTHON", ROOT / ".venv-mediapipe" / "bin" / "python"))


def _convert(tiny_run: Path, out: Path, *args: str) -> str:
    from edgeseg.cli import app

    r = CliRunner().invoke(app, ["convert", str(tiny_run / "model.keras"), "--mediapipe", "--verify", "2", *args])
    assert r.exit_code == 0, r.output
    assert f"wrote {out}" in r.output
    return r.output


@pytest.fixture(scope="module")
def uint8_model(tiny_run, synthetic_data) -> Path:
    out = tiny_run / "model_uint8.tflite"  # --int8 --mediapipe: uint8 in and out, named so by default
    _convert(tiny_run, out, "--int8", "--calibration", str(synthetic_data), "--num-calibration", "16")
    return out


def test_mediapipe_metadata_is_standard_and_int8_gets_uint8_io(tiny_run, uint8_model, synthetic_data):
    from edgeseg.cli import app
    from edgeseg.predictors.tflite import Segmenter
    from edgeseg.spec import ModelSpec
    from edgeseg.tflite_file import read_metadata
    from edgeseg.tflite_metadata import read_standard_metadata

    spec = ModelSpec.load(tiny_run / "spec.json")
    out = uint8_model
    buf = out.read_bytes()
    meta = read_standard_metadata(buf)
    assert meta["labels"] == list(spec.classes)
    assert meta["mean"] == list(spec.mean) and meta["std"] == list(spec.std)
    raw = read_metadata(buf)["TFLITE_METADATA"]
    assert raw[4:8] == b"M001" and b"SEGMENTER_METADATA" in raw and b"V001" in raw
    seg = Segmenter(out)
    assert seg.input.dtype == np.uint8 and seg.spec_source == "embedded"
    frame = cv2.imread(str(sorted((synthetic_data / "images").iterdir())[0]))
    assert seg.segment(frame).shape == frame.shape[:2]

    runner = CliRunner()
    bad = runner.invoke(app, ["convert", str(tiny_run / "model.keras"), "--int8", "--io", "int8", "--mediapipe"])
    assert bad.exit_code == 1 and "use --io uint8 with --int8" in bad.output and "Traceback" not in bad.output
    bad = runner.invoke(app, ["convert", str(tiny_run / "model.keras"), "--onnx", "--mediapipe"])
    assert bad.exit_code == 1 and "cannot go with --to onnx" in bad.output


def _mediapipe_segment(model: Path, images: list[Path], out: Path) -> dict:
    r = subprocess.run(
        [str(MEDIAPIPE_PYTHON), str(ROOT / "tests" / "mediapipe_segment.py"), str(model), str(out), *map(str, images)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert r.returncode == 0, r.stderr[-3000:]
    return dict(np.load(out))


def test_mediapipe_image_segmenter_matches_edgeseg(tiny_run, uint8_model, synthetic_data, tmp_path):
    """MediaPipe's own ImageSegmenter loads what convert --mediapipe writes: its labels, its normalisation (a float
    model with mean = std = 127.5, so a wrong reading shows) and its activation (softmax confidences)."""
    if not MEDIAPIPE_PYTHON.exists():
        pytest.skip(f"needs {MEDIAPIPE_PYTHON}: run scripts/setup-mediapipe.sh (it installs Google's mediapipe)")
    from edgeseg.predictors.tflite import Segmenter
    from edgeseg.spec import ModelSpec

    spec = ModelSpec.load(tiny_run / "spec.json")
    odd = dataclasses.replace(spec, mean=(127.5, 127.5, 127.5), std=(127.5, 127.5, 127.5))
    (tmp_path / "odd.json").write_text(odd.to_json())
    models = {"uint8": uint8_model, "float": tmp_path / "f32.tflite"}
    _convert(tiny_run, models["float"], "--spec", str(tmp_path / "odd.json"), "--out", str(models["float"]))

    h, w = spec.input_hw
    images = []
    for i, src in enumerate(sorted((synthetic_data / "images").iterdir())[:3]):
        frame = cv2.imread(str(src))
        images.append(tmp_path / f"model_size_{i}.png")
        cv2.imwrite(str(images[-1]), cv2.resize(frame, (w, h), interpolation=cv2.INTER_AREA))
        images.append(tmp_path / f"large_{i}.png")  # non-square, larger than the model: both sides resample
        cv2.imwrite(str(images[-1]), cv2.resize(frame, (3 * w + 7, 2 * h + 5), interpolation=cv2.INTER_CUBIC))

    for kind, model in models.items():
        got = _mediapipe_segment(model, images, tmp_path / f"{kind}.npz")
        assert list(got["labels"]) == list(spec.classes), kind
        seg = Segmenter(model)
        for i, path in enumerate(images):
            ours = seg.predict(cv2.imread(str(path)), scores=True)
            theirs, conf = got[f"mask_{i}"], got[f"conf_{i}"]
            assert theirs.shape == ours.mask.shape and conf.shape == ours.scores.shape, (kind, path.name)
            agree = float((theirs == ours.mask).mean())
            if path.name.startswith("model_size"):  # the same tensor in, so the same mask and confidences out
                assert agree >= 0.999, (kind, path.name, agree)
                assert np.abs(conf - ours.scores).max() < 1e-3, (kind, path.name)
            else:
                # Both sides resample: MediaPipe resizes the image bilinearly and upsamples the confidences; edgeseg
                # resizes with OpenCV and upsamples the mask. Measured with the 10-epoch tiny model: the float
                # model's confidences differ by 5e-4 to 8e-4 on average and its masks agree on 99.8%; the uint8
                # model's inputs differ by a step here and there, which its int8 layers carry through, so its
                # confidences differ by 0.017 to 0.020 (four to five of its 1/256 output steps) and its masks
                # agree on 96.6 to 99.9%. (The 3-epoch model's near-uniform outputs had kept both under 5e-3.)
                assert agree >= 0.95, (kind, path.name, agree)
                bound = 5e-3 if kind == "float" else 8 / 256  # float: resampling alone; uint8: eight output steps
                assert np.abs(conf - ours.scores).mean() < bound, (kind, path.name)
