"""The CamVid models shipped in edgeseg/assets (nano and small): each loads with the device extra alone, is
all int8, names the CamVid classes, costs what its card says, and (with ../shared) still segments CamVid val
above a floor. A regression guard; the full figures come from benchmarks/camvid.py."""

import subprocess
import sys

import pytest

from edgeseg.assets import DEFAULT_MODEL, SHIPPED, default_model, shipped_model
from edgeseg.datasets import CAMVID_CLASSES
from tests.conftest import ROOT, shared_path

MODEL = default_model()
pytestmark = pytest.mark.skipif(MODEL is None, reason=f"edgeseg/assets/{DEFAULT_MODEL} is not in this checkout")


def test_loads_and_runs_without_tensorflow():
    code = (
        "import sys; sys.modules['tensorflow'] = None; sys.modules['keras'] = None\n"
        "import numpy as np\n"
        "from edgeseg.assets import default_model\n"
        "from edgeseg.predictors.tflite import Segmenter\n"
        "m = Segmenter(default_model(), threads=2)\n"
        "mask = m.segment(np.zeros((360, 480, 3), np.uint8))\n"
        "assert mask.shape == (360, 480) and m.runtime.name == 'litert'\n"
        "print('OK', m.spec.input_hw)"
    )
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and "OK (288, 384)" in proc.stdout, proc.stderr[-2000:]


# name -> (input HxW, GMACs per frame, resizes, mIoU floor on the first 12 val frames); the cards in docs/models/
CARDS = {"small": ((288, 384), 2.077, 4, 0.45), "nano": ((192, 256), 0.379, 3, 0.40)}


def _shipped(name):
    path = shipped_model(name)
    if path is None:
        pytest.skip(f"edgeseg/assets/{SHIPPED[name]} is not in this checkout")
    return path


def test_the_family_is_what_the_cards_list():
    assert set(SHIPPED) == set(CARDS) and DEFAULT_MODEL == SHIPPED["small"]


@pytest.mark.parametrize("name", sorted(CARDS))
def test_only_int8_ops_camvid_classes_and_the_cost_of_its_card(name):
    from edgeseg.converters.verify import op_report
    from edgeseg.cost import model_cost
    from edgeseg.predictors.tflite import Segmenter

    path = _shipped(name)
    hw, gmacs, resizes, _ = CARDS[name]
    seg = Segmenter(path)
    rep = op_report(seg.interpreter)
    assert rep.fully_int8, rep.non_int8_ops[:5]
    assert seg.spec.classes == CAMVID_CLASSES and seg.spec.ignore_index == 11 and seg.spec.input_hw == hw
    assert path.stat().st_size < 5_000_000
    # Dense decoders: MobileNetV2's own 17 depthwise convolutions and none in the decoder, whose depthwise
    # blocks int8 runs slower than float on x86 (docs/models/).
    assert rep.ops["DEPTHWISE_CONV_2D"] == 17, dict(rep.ops)
    assert rep.ops["RESIZE_BILINEAR"] == resizes, dict(rep.ops)
    assert model_cost(path).gmacs == pytest.approx(gmacs, abs=0.001)
    if name == "nano":
        assert model_cost(path).gmacs <= 0.4  # the Pi-4-class budget


@pytest.mark.parametrize("name", sorted(CARDS))
def test_val_miou_on_a_few_frames_stays_above_a_floor(name):
    from edgeseg.datasets import open_dataset
    from edgeseg.evaluate import evaluate
    from edgeseg.predictors.tflite import Segmenter

    path = _shipped(name)
    ds = open_dataset(shared_path("data", "camvid"), "val")
    res = evaluate(Segmenter(path, threads=2), ds, limit=12)
    assert res["miou"] > CARDS[name][3], res["per_class_iou"]  # the full val figures are in docs/models/


def test_run_and_bench_default_to_the_shipped_model(tmp_path):
    from typer.testing import CliRunner

    from edgeseg.cli import app

    r = CliRunner().invoke(app, ["bench", "--runs", "3", "--warmup", "1", "--json", str(tmp_path / "b.json")])
    assert r.exit_code == 0 and DEFAULT_MODEL in r.output, r.output
    r = CliRunner().invoke(app, ["run", "--source", "synthetic:160x120", "--no-show", "--max-frames", "3"])
    assert r.exit_code == 0 and "3 frames" in r.output, r.output


def test_commands_take_the_shipped_names(tmp_path):
    from typer.testing import CliRunner

    from edgeseg.cli import app

    _shipped("nano")
    r = CliRunner().invoke(
        app, ["bench", "nano", "--model", "small", "--runs", "2", "--warmup", "0", "--json", str(tmp_path / "b.json")]
    )
    assert r.exit_code == 0, r.output
    import json

    got = [
        (r["model"].rsplit("/", 1)[-1], r["gmacs"]) for r in json.loads((tmp_path / "b.json").read_text())["results"]
    ]
    assert [g[0] for g in got] == [SHIPPED["nano"], SHIPPED["small"]] and got[0][1] < 0.4 < got[1][1]
    r = CliRunner().invoke(
        app, ["run", "--model", "nano", "--source", "synthetic:160x120", "--no-show", "--max-frames", "2"]
    )
    assert r.exit_code == 0 and SHIPPED["nano"] in r.output and "2 frames" in r.output, r.output
