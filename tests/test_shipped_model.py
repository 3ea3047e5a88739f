"""The CamVid model shipped in edgeseg/assets: loads with the device extra alone, is all int8, names the
CamVid classes, and (with ../shared) still segments CamVid val above a floor. A regression guard; the full
figures come from benchmarks/camvid.py."""

import subprocess
import sys

import pytest

from edgeseg.assets import DEFAULT_MODEL, default_model
from edgeseg.datasets import CAMVID_CLASSES
from tests.conftest import ROOT, shared_path

MODEL = default_model()
pytestmark = pytest.mark.skipif(MODEL is None, reason=f"edgeseg/assets/{DEFAULT_MODEL} is not in this checkout")


def test_loads_and_runs_without_tensorflow():
    code = ("import sys; sys.modules['tensorflow'] = None; sys.modules['keras'] = None\n"
            "import numpy as np\n"
            "from edgeseg.assets import default_model\n"
            "from edgeseg.runtime import Segmenter\n"
            "m = Segmenter(default_model(), num_threads=2)\n"
            "mask = m.predict(np.zeros((360, 480, 3), np.uint8))\n"
            "assert mask.shape == (360, 480) and m.runtime.name == 'litert'\n"
            "print('OK', m.spec.input_hw)")
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and "OK (288, 384)" in proc.stdout, proc.stderr[-2000:]


def test_only_int8_ops_and_camvid_classes_in_order():
    from converters.verify import op_report
    from edgeseg.runtime import Segmenter

    seg = Segmenter(MODEL)
    rep = op_report(seg.interpreter)
    assert rep.fully_int8, rep.non_int8_ops[:5]
    assert seg.spec.classes == CAMVID_CLASSES and seg.spec.ignore_index == 11
    assert MODEL.stat().st_size < 5_000_000
    # The dense (int8) decoder: MobileNetV2's own 17 depthwise convolutions and none in the decoder, whose
    # depthwise blocks int8 runs slower than float on x86 (README, "What int8 buys on this CPU").
    assert rep.ops["DEPTHWISE_CONV_2D"] == 17, dict(rep.ops)
    assert rep.ops["RESIZE_BILINEAR"] == 4, dict(rep.ops)


def test_val_miou_on_a_few_frames_stays_above_a_floor():
    from edgeseg.datasets import open_dataset
    from edgeseg.evaluate import evaluate
    from edgeseg.runtime import Segmenter

    ds = open_dataset(shared_path("data", "camvid"), "val")
    res = evaluate(Segmenter(MODEL, num_threads=2), ds, limit=12)
    assert res["miou"] > 0.45, res["per_class_iou"]  # the full val figure is in the README's model card


def test_run_and_bench_default_to_the_shipped_model(tmp_path):
    from typer.testing import CliRunner

    from edgeseg.cli import app

    r = CliRunner().invoke(app, ["bench", "--runs", "3", "--warmup", "1", "--json", str(tmp_path / "b.json")])
    assert r.exit_code == 0 and DEFAULT_MODEL in r.output, r.output
    r = CliRunner().invoke(app, ["run", "--source", "synthetic:160x120", "--no-show", "--max-frames", "3"])
    assert r.exit_code == 0 and "3 frames" in r.output, r.output
