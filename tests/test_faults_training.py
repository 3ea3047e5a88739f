"""The fault catalogue, round 2: training that survives a crash (split from test_faults_2.py). A run killed while
its backup is written resumes, resumed history holds only the epochs its backup does, an edited config is one
line, --resume refuses options that would change the run, and two runs never share a folder."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import ROOT
from tests.test_faults import one_line_error
from tests.test_faults_2 import invoke


def _tiny_cfg(data, out, **kw):
    from edgeseg.training.config import TrainConfig

    return TrainConfig(data=str(data), out=str(out), input_hw=(32, 64), alpha=0.35, decoder="tiny", batch_size=12, **kw)


@pytest.mark.slow
@pytest.mark.heavy
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
    assert epochs == [0, 1, 2] and (out / "model.keras").is_file()  # one row an epoch: epoch 1's is not twice


def test_resume_drops_the_history_rows_the_backup_does_not_hold(tmp_path):
    """Issue 35: killed after epoch 1's row was written but before its backup was saved, the run repeats epoch 1
    on --resume; history.csv then held two different rows for it."""
    from edgeseg.training.runfolder import trim_history

    h = tmp_path / "history.csv"
    h.write_text("epoch,loss,val_miou\n0,0.9,0.1\n1,0.8,0.2\n")
    assert trim_history(h, 1) == 1 and h.read_text() == "epoch,loss,val_miou\n0,0.9,0.1\n"
    assert trim_history(h, 5) == 0 and trim_history(tmp_path / "none.csv", 0) == 0


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
    for extra, named in (
        (["--epochs", "50"], "--epochs"),
        (["--size", "96x64", "--lr", "0.1"], "--size, --lr"),
        (["--size", "64x32", "--epochs", "3", "--decoder", "tiny"], "--epochs would"),  # only the one that differs
    ):
        line = one_line_error(invoke("train", "--data", synthetic_data, "--out", out, "--resume", *extra), named)
        assert "would change it: start a new run, with --init" in line
    # issue 35: the original options repeated change nothing, so the run resumes (and finishes its 2 epochs)
    same = ["--size", "64x32", "--alpha", "0.35", "--decoder", "tiny", "--batch-size", "12", "--epochs", "2"]
    no_teacher = invoke("train", "--out", out, "--resume", *same, "--kd-weight", "0.5")  # its own value
    one_line_error(no_teacher, r"--kd-weight: there is no teacher to distil from \(this run was started without")
    # how often it is scored may change on resume (it changes nothing it learns): epoch 1 unscored, 2 scored
    r = invoke("train", "--out", out, "--resume", *same, "--val-every", "2")  # no --data: the run's own
    assert r.exit_code == 0 and "would change" not in r.output and "resuming" in r.output, r.output
    scores = [row.split(",")[-2:] for row in (out / "history.csv").read_text().splitlines()[1:]]
    assert len(scores) == 2 and "nan" in scores[0] and "nan" not in scores[1], scores
    # an option that means something only with another (--teacher-view with the run's --teacher), repeated alone
    taught = tmp_path / "runs" / "t"
    taught.mkdir()
    kd = _tiny_cfg(synthetic_data, taught, teacher=str(tmp_path / "teacher.keras"))
    assert kd.teacher_view == "frame"  # the default; a run from before the option resumes as it was, student
    before = {k: v for k, v in kd.to_dict().items() if k != "teacher_view"}
    assert TrainConfig.from_dict(before).teacher_view == "student"
    (taught / "config.json").write_text(json.dumps(kd.to_dict(relative_to=taught)))
    (taught / "backup").mkdir()
    changed = invoke("train", "--out", taught, "--resume", "--teacher-view", "student")
    one_line_error(changed, "--teacher-view would change it")
    repeated = invoke("train", "--out", taught, "--resume", "--teacher-view", "frame")
    assert "would change" not in repeated.output and "resuming" in repeated.output, repeated.output
    # with neither --data nor a run to resume, one line says what is missing
    one_line_error(invoke("train", "--out", tmp_path / "new", "--resume"), "train needs --data")
    one_line_error(invoke("train", "--out", tmp_path / "new"), "train needs --data")


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
