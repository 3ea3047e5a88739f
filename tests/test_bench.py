import csv
import io
import json

import numpy as np
import pytest
from typer.testing import CliRunner

from edgeseg.bench import summarise
from edgeseg.cli import app
from tests.conftest import shared_path

runner = CliRunner()


def test_summarise_percentiles():
    s = summarise(list(range(1, 101)))
    assert s["runs"] == 100 and s["p50_ms"] == 50.5 and s["p90_ms"] == pytest.approx(90.1)
    assert s["p99_ms"] == pytest.approx(99.01) and s["mean_ms"] == 50.5 and s["fps"] == pytest.approx(1000 / 50.5)
    assert summarise([]) == {}


def test_several_models_thread_sweep_and_every_output(toy_models, tmp_path):
    models = [
        toy_models["scores_float"],
        toy_models["scores_int8"],
        toy_models["index_int64"],
        toy_models["prob_float"],
    ]
    r = runner.invoke(
        app,
        [
            "bench",
            *map(str, models),
            "--threads",
            "1,2",
            "--runs",
            "20",
            "--warmup",
            "2",
            "--rounds",
            "4",
            "--frame-size",
            "80x60",
            "--json",
            str(tmp_path / "b.json"),
            "--csv",
            str(tmp_path / "b.csv"),
            "--markdown",
            str(tmp_path / "b.md"),
            "--plots",
            str(tmp_path / "plots"),
        ],
    )
    assert r.exit_code == 0, r.output
    d = json.loads((tmp_path / "b.json").read_text())
    assert [(row["model"].split("/")[-1], row["threads"]) for row in d["results"]] == [
        (m.name, t) for t in (1, 2) for m in models
    ]
    for row in d["results"]:
        assert row["invoke"]["runs"] == 20 and row["end_to_end"]["runs"] == 20
        assert row["invoke"]["p50_ms"] <= row["invoke"]["p99_ms"] and row["init_ms"] > 0
        assert "samples_ms" not in row
    env = d["environment"]
    assert env["cores"] >= 1 and env["python"] and env["numpy"] and env["cpu"]
    assert isinstance(env["cpu_int8_dot"], list) and "int8 dot product " in r.output  # Linux: /proc/cpuinfo
    table = list(csv.DictReader(io.StringIO((tmp_path / "b.csv").read_text())))
    assert len(table) == 8 and float(table[0]["invoke_p50"]) > 0
    md = (tmp_path / "b.md").read_text()
    rows = [line for line in md.splitlines() if line.startswith("| scores_int8.tflite ")]  # its "(fastest)" mark too
    assert len(rows) == 2 and "Environment:" in md and "int8 dot product" in md
    png = (tmp_path / "plots" / "latency.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 10_000


def test_bench_with_data_scores_miou_and_plots_iou(toy_models, tmp_path):
    import cv2
    import numpy as np
    from PIL import Image

    root = tmp_path / "ds"
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    (root / "classes.json").write_text('{"classes": ["red", "green", "blue"]}')
    for i, (bgr, cls) in enumerate((((0, 0, 255), 0), ((0, 255, 0), 1), ((255, 0, 0), 2))):
        img = np.zeros((20, 30, 3), np.uint8)
        img[:] = bgr
        cv2.imwrite(str(root / "images" / f"{i}.png"), img)
        Image.fromarray(np.full((20, 30), cls, np.uint8)).save(root / "masks" / f"{i}.png")
    r = runner.invoke(
        app,
        [
            "bench",
            str(toy_models["scores_int8"]),
            "--runs",
            "5",
            "--warmup",
            "1",
            "--data",
            str(root),
            "--split",
            "all",
            "--json",
            str(tmp_path / "b.json"),
            "--plots",
            str(tmp_path / "p"),
        ],
    )
    assert r.exit_code == 0, r.output
    row = json.loads((tmp_path / "b.json").read_text())["results"][0]
    assert row["miou"] == 1.0 and row["per_class_iou"] == {"red": 1.0, "green": 1.0, "blue": 1.0}
    assert (tmp_path / "p" / "iou.png").exists()


def test_peer_models_bench_side_by_side(tmp_path):
    deeplab = shared_path("models", "peers", "deeplabv3_mnv2_pascal_quant.tflite")
    selfie = shared_path("models", "peers", "selfie_segmentation.tflite")
    r = runner.invoke(
        app, ["bench", str(deeplab), str(selfie), "--runs", "3", "--warmup", "1", "--json", str(tmp_path / "b.json")]
    )
    assert r.exit_code == 0, r.output
    rows = json.loads((tmp_path / "b.json").read_text())["results"]
    assert rows[0]["input"]["shape"] == [1, 513, 513, 3] and rows[0]["output"]["kind"] == "index"
    assert rows[1]["output"]["kind"] == "probability"


def test_bad_thread_list():
    for bad in ("1,x", "0", "2,-1", ","):
        r = runner.invoke(app, ["bench", "small", "--threads", bad])
        assert r.exit_code == 1 and "Traceback" not in r.output, r.output
        assert f"error: --threads: expected N or a list like 1,2,4, got {bad!r}" in r.output, r.output


def test_latency_plot_goes_log_when_models_are_30x_apart(tmp_path):
    pytest.importorskip("matplotlib")
    from edgeseg.bench import latency_scale, plots

    rng = np.random.default_rng(0)
    fast, slow = rng.normal(2.0, 0.1, 200), rng.normal(60.0, 3.0, 200)
    assert latency_scale([fast, slow]) == "log" and latency_scale([fast, 2 * fast]) == "linear"
    res = [
        {"model": f"m{i}.tflite", "threads": 1, "samples_ms": {"invoke": s, "end_to_end": s + 1}}
        for i, s in enumerate((fast, slow))
    ]
    (path,) = plots({"results": res}, tmp_path)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_a_model_of_other_classes_is_said_in_bench_and_eval(toy_models, tmp_path):
    """New-user walkthrough (issue 34): a peer index-map model (21 Pascal classes, no spec) scored on a 2-class
    dataset gave an mIoU with no word that the classes differ. An index-map model names no classes of its own,
    so it cannot be refused up front; its predictions beyond the dataset's classes are counted and said."""
    import cv2

    from tests.toy import solid

    root = tmp_path / "two"
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    for k in range(3):  # blue frames: the toy index model answers class 2, which a 2-class dataset has not
        cv2.imwrite(str(root / "images" / f"f{k}.png"), solid((255, 0, 0), (30, 70)))
        cv2.imwrite(str(root / "masks" / f"f{k}.png"), np.zeros((30, 70), np.uint8))
    (root / "classes.json").write_text(json.dumps({"classes": ["a", "b"]}))
    model = str(toy_models["index_int64"])
    r = runner.invoke(app, ["eval", model, "--data", str(root), "--split", "all", "--json", str(tmp_path / "e.json")])
    assert r.exit_code == 0, r.output
    said = "index_int64.tflite predicted class values beyond the dataset's 2 classes on 100.0% of the pixels"
    assert said in r.output
    assert json.loads((tmp_path / "e.json").read_text())["predicted_outside_classes"] == 1.0
    r = runner.invoke(app, ["bench", model, "--data", str(root), "--split", "all", "--runs", "2", "--threads", "1,2"])
    assert r.exit_code == 0 and r.output.count(said) == 1, r.output  # once for the model, not per thread count
    ok = runner.invoke(app, ["eval", str(toy_models["scores_float"]), "--data", str(root), "--split", "all"])
    assert "beyond the dataset" not in ok.output  # a scores model with 3 classes is refused before, not warned
    # with --hold-out too, the refusal comes first and alone (the hold-out warning was said before it)
    r = runner.invoke(app, ["eval", str(toy_models["scores_float"]), "--data", str(root), "--hold-out", "f"])
    assert r.exit_code == 1 and "predicts 3 classes but the dataset has 2" in r.output and "warning" not in r.output
