import json

import pytest
from typer.testing import CliRunner

from edgeseg.cli import app

pytestmark = pytest.mark.slow
runner = CliRunner()


def test_report_for_an_existing_pair(tiny_run, tiny_tflite, synthetic_data, tmp_path):
    r = runner.invoke(
        app,
        [
            "quant-report",
            str(tiny_run / "model.keras"),
            str(tiny_tflite["int8"]),
            "--data",
            str(synthetic_data),
            "--calibration",
            str(synthetic_data),
            "--out",
            str(tmp_path / "q"),
        ],
    )
    assert r.exit_code == 0, r.output
    d = json.loads((tmp_path / "q" / "report.json").read_text())
    assert d["images"] == 4 and 0 <= d["pixel_disagreement"] < 0.2
    assert d["delta_miou"] == pytest.approx(d["int8_miou"] - d["float_miou"])
    assert set(d["per_class"]) == {"background", "disc", "box", "triangle", "bar"}
    assert len(d["layers"]) == 10 and d["layers"][0]["rmse_over_scale"] >= d["layers"][-1]["rmse_over_scale"]
    assert d["calibration_images"] == 36 and d["coverage"]["background"]["dataset_share"] > 0.5
    assert any("Calibrate on more images" in s for s in d["suggestions"])  # 36 < 100
    md = (tmp_path / "q" / "report.md").read_text()
    assert "## Per-class IoU" in md and "## Layers that lose most" in md
    assert d["images_written"] and all("/" not in img for img in d["images_written"])  # relative to the report
    for img in d["images_written"]:
        assert f"]({img})" in md and (tmp_path / "q" / img).stat().st_size > 1000


def test_convert_writes_the_report(tiny_run, synthetic_data, tmp_path):
    r = runner.invoke(
        app,
        [
            "convert",
            str(tiny_run / "model.keras"),
            "--int8",
            "--calibration",
            str(synthetic_data),
            "--num-calibration",
            "12",
            "--out",
            str(tmp_path / "m.tflite"),
            "--report",
            str(tmp_path / "rep"),
            "--verify",
            "2",
        ],
    )
    assert r.exit_code == 0, r.output
    assert (tmp_path / "rep" / "report.md").exists() and "pixels that disagree" in r.output


def test_report_needs_masks(tiny_run, tiny_tflite, tmp_path):
    folder = tmp_path / "imgs"
    folder.mkdir()
    r = runner.invoke(app, ["quant-report", str(tiny_tflite["float"]), str(tiny_tflite["int8"]), "--data", str(folder)])
    assert r.exit_code == 1 and "dataset" in r.output and "Traceback" not in r.output
