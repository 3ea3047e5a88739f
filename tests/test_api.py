"""The Python API as a program uses it: `from edgeseg import load_model`, predict() -> Result, stream(), and the
runnable scripts in examples/."""

import subprocess
import sys

import numpy as np
import pytest

from tests.conftest import ROOT
from tests.toy import solid


def test_the_package_root_stays_light_and_exports_the_api():
    code = "import sys, edgeseg; assert 'numpy' not in sys.modules; from edgeseg import Result, Segmenter, load_model"
    proc = subprocess.run([sys.executable, "-c", code + "; print('ok')"], cwd=ROOT, capture_output=True, text=True)
    assert proc.stdout.strip() == "ok", proc.stderr


def test_predict_returns_a_result_with_mask_scores_timings_and_overlay(toy_models):
    from edgeseg import Result, load_model

    seg = load_model(toy_models["scores_float"], threads=1)
    frame = solid((0, 0, 255), (30, 50))  # red in BGR: the toy model's class 0
    r = seg.predict(frame, scores=True)
    assert isinstance(r, Result) and r.mask.shape == (30, 50) and (r.mask == 0).all()
    assert r.classes == seg.spec.classes and len(r.colours) == len(r.classes)
    assert r.scores.shape == (30, 50, 3) and np.allclose(r.scores.sum(-1), 1.0, atol=1e-4)
    assert (r.scores.argmax(-1) == r.mask).all()
    assert set(r.timings) == {"preprocess", "invoke", "postprocess"} and r.timings["invoke"] > 0
    assert r.class_pixels() == {r.classes[0]: 30 * 50}
    over = r.overlay(alpha=1.0, legend=False)
    assert over.shape == (30, 50, 3) and (over[15, 25] == np.array(r.colours[0][::-1])).all()
    assert seg.predict(frame).scores is None  # only when asked for


def test_an_index_map_model_has_no_scores(toy_models):
    from edgeseg import load_model

    r = load_model(toy_models["index_int64"]).predict(solid((0, 0, 255), (24, 40)), scores=True)
    assert r.scores is None and r.mask.shape == (24, 40)


def test_stream_yields_results_from_a_source(toy_models, tmp_path):
    from edgeseg import load_model
    from edgeseg.synthetic import write_video

    video = write_video(tmp_path / "v.mp4", frames=7, hw=(48, 64))
    seg = load_model(toy_models["scores_int8"])
    results = list(seg.stream(str(video)))
    assert [r.index for r in results] == list(range(7))  # a file: every frame, in order
    assert all(r.mask.shape == (48, 64) and r.frame.shape == (48, 64, 3) for r in results)
    assert {"capture", "preprocess", "invoke", "postprocess"} <= set(results[0].timings)
    assert len(list(seg.stream("synthetic:64x48", max_frames=4))) == 4


def test_load_model_takes_a_shipped_name_and_refuses_what_is_not_there():
    from edgeseg import load_model
    from edgeseg.assets import default_model
    from edgeseg.errors import ModelError

    with pytest.raises(ModelError, match="no such model file .*shipped model: nano, small"):
        load_model("nope.tflite")
    if default_model() is None:
        pytest.skip("no shipped model in this checkout")
    assert load_model("nano").spec.input_hw == (192, 256)


@pytest.mark.parametrize(
    "script, args, expect",
    [
        ("robot_loop.py", ["--model", "nano", "--frames", "3"], "frame    2: "),
        ("segment_image.py", ["--model", "nano", "--out", "OUT/o.png"], "wrote OUT/o.png"),
    ],
)
def test_the_examples_run(script, args, expect, tmp_path):
    from edgeseg.assets import default_model

    if default_model() is None:
        pytest.skip("no shipped model in this checkout")
    args = [a.replace("OUT", str(tmp_path)) for a in args]
    proc = subprocess.run(
        [sys.executable, str(ROOT / "examples" / script), *args],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert expect.replace("OUT", str(tmp_path)) in proc.stdout, proc.stdout
