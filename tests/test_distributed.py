"""Training beyond one device, as a user runs it: MirroredStrategy over two logical CPU devices, and two
MultiWorkerMirroredStrategy workers on 127.0.0.1 with one of them killed and restarted mid-run. Each runs
`edgeseg train` in processes of its own (a logical-device layout and a cluster must be set before TensorFlow
starts), on the synthetic data, with a small model."""

import json
import os
import signal
import socket
import subprocess
import sys
import time

import pytest

from tests.conftest import ROOT

TRAIN = ["--size", "64x32", "--alpha", "0.35", "--decoder", "tiny", "--batch-size", "4", "--no-augment"]


def free_ports(n: int) -> list[int]:
    socks = [socket.socket() for _ in range(n)]
    for s in socks:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


def env(**extra) -> dict:
    e = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONUNBUFFERED": "1", **extra}
    e.pop("TF_CONFIG", None)
    return {**e, **extra}


def history_epochs(run) -> list[int]:
    import csv

    with (run / "history.csv").open() as f:
        return [int(r["epoch"]) for r in csv.DictReader(f)]


@pytest.mark.slow
@pytest.mark.distributed
def test_mirrored_over_two_logical_cpus_per_replica_batches_and_mixed_precision_export(synthetic_data, tmp_path):
    code = (
        "import tensorflow as tf; cpu = tf.config.list_physical_devices('CPU')[0]; "
        "tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2); "
        # float16 with loss scaling, what a GPU of compute capability 7.x gets: a CPU asked for mixed precision
        # gets bfloat16 (no loss scaling), and the loss-scale optimizer, mirrored with --ema, must stay covered
        "from edgeseg.training.backends.base import TrainingBackend; "
        "TrainingBackend.mixed_policy = lambda self, setting: 'mixed_float16' if setting else None; "
        "import sys; from edgeseg.cli import main; sys.argv = ['edgeseg'] + sys.argv[1:]; main()"
    )
    run = tmp_path / "m"
    cmd = [sys.executable, "-c", code, "train", "--data", synthetic_data, "--out", run, "--epochs", "1", *TRAIN]
    cmd += ["--strategy", "mirrored", "--mixed-precision", "--ema", "0.9"]  # mixed_float16 runs on a CPU too, slowly;
    # --ema: the averages live in the loss-scale optimizer's inner one, mirrored
    proc = subprocess.run(list(map(str, cmd)), cwd=ROOT, env=env(), capture_output=True, text=True, timeout=400)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    assert "strategy mirrored, 2 replica(s), role single" in proc.stdout
    # 36 train scenes, 4 per replica: a global batch of 8 and 36 // 8 = 4 steps (not 9 of 4)
    assert "batch 4 per replica, 8 global; 4 steps per epoch" in proc.stdout
    assert history_epochs(run) == [0] and (run / "model.keras").is_file()
    # mixed precision trains in float16 but exports a float32 network, which converts to a fully int8 .tflite
    assert "mixed precision: mixed_float16 compute, float32 logits and loss" in proc.stdout
    import keras

    model = keras.saving.load_model(run / "model.keras", compile=False)
    assert {layer.dtype_policy.name for layer in model.layers} == {"float32"}
    from typer.testing import CliRunner

    from edgeseg.cli import app

    r = CliRunner().invoke(app, ["convert", str(run / "model.keras"), "--int8", "--strict", "--num-calibration", "8"])
    assert r.exit_code == 0 and "all ops and tensors int8" in r.output, r.output


def start_workers(synthetic_data, run, ports, epochs, logs) -> list[subprocess.Popen]:
    cluster = {"worker": [f"127.0.0.1:{p}" for p in ports]}
    procs = []
    for i in range(2):
        tf_config = json.dumps({"cluster": cluster, "task": {"type": "worker", "index": i}})
        cmd = [sys.executable, "-m", "edgeseg", "train", "--data", synthetic_data, "--out", run, "--epochs", epochs]
        cmd += [*TRAIN, "--strategy", "multiworker"]
        procs.append(
            subprocess.Popen(
                list(map(str, cmd)),
                cwd=ROOT,
                env=env(TF_CONFIG=tf_config),
                stdout=logs[i].open("a"),
                stderr=subprocess.STDOUT,
                text=True,
            )
        )
    return procs


def wait_all(procs, timeout) -> list[int]:
    deadline = time.monotonic() + timeout
    codes = []
    for p in procs:
        try:
            codes.append(p.wait(timeout=max(1, deadline - time.monotonic())))
        except subprocess.TimeoutExpired:
            p.kill()
            codes.append(p.wait())
    return codes


@pytest.mark.slow
@pytest.mark.distributed
def test_two_workers_a_killed_worker_restarts_and_the_chiefs_model_converts(synthetic_data, tmp_path):
    """Worker 1 is killed (SIGKILL) once the chief's backup holds an epoch. The chief notices (TensorFlow's
    heartbeats) and stops with one line. Both are started again with the same command, as a cluster manager
    would, and the run finishes from the backup's epoch, not from the start."""
    run, logs = tmp_path / "mw", [tmp_path / "worker0.log", tmp_path / "worker1.log"]
    ports = free_ports(2)
    procs = start_workers(synthetic_data, run, ports, 4, logs)
    metadata = run / "backup" / "training_metadata.json"
    deadline = time.monotonic() + 300
    while not metadata.exists() and time.monotonic() < deadline and all(p.poll() is None for p in procs):
        time.sleep(0.5)
    assert metadata.exists(), logs[0].read_text()[-3000:]
    procs[1].send_signal(signal.SIGKILL)
    procs[1].wait()
    assert wait_all(procs[:1], timeout=120) == [1]  # the chief notices its peer is gone and stops, in one line
    said = [ln for ln in logs[0].read_text().splitlines() if ln.startswith("error:")]
    assert len(said) == 1 and "the cluster lost a worker" in said[0] and "Traceback" not in logs[0].read_text()
    saved_epoch = json.loads(metadata.read_text())["epoch"]
    assert not (run / "model.keras").exists() or saved_epoch < 3
    codes = wait_all(start_workers(synthetic_data, run, free_ports(2), 4, logs), timeout=300)
    text = [log.read_text() for log in logs]
    assert codes == [0, 0], text[0][-3000:] + text[1][-3000:]
    assert "a backup is there: continuing the run from its last epoch" in text[0]
    assert "strategy multiworker, 2 replica(s), role chief" in text[0] and "role worker 1" in text[1]
    epochs = history_epochs(run)
    assert epochs[-1] == 3 and len(epochs) < 4 + 2, epochs  # resumed: not 4 new epochs after the first ones
    assert sorted(set(epochs)) == [0, 1, 2, 3]
    assert not (run / "backup").exists() and "worker 1 done" in text[1]
    # only the chief wrote into --out; the workers agree on validation mIoU every epoch
    assert sorted(p.name for p in run.iterdir()) == [
        "config.json",
        "history.csv",
        "model.keras",
        "spec.json",
        "train.lock",
    ]
    vals = [[ln.split("val_miou: ")[1][:6] for ln in t.splitlines() if "val_miou: " in ln] for t in text]
    assert vals[0] and vals[0][-2:] == vals[1][-2:]
    # the chief's one model.keras converts to int8 and evaluates
    from typer.testing import CliRunner

    from edgeseg.cli import app

    r = CliRunner().invoke(app, ["convert", str(run / "model.keras"), "--int8", "--num-calibration", "8"])
    assert r.exit_code == 0, r.output
    r = CliRunner().invoke(app, ["eval", str(run / "model_int8.tflite"), "--data", str(synthetic_data)])
    assert r.exit_code == 0 and "mIoU" in r.output, r.output


@pytest.mark.parametrize(
    "text, message",
    [
        (None, "--strategy multiworker needs TF_CONFIG"),
        ("{not json", "TF_CONFIG is not valid JSON"),
        ('{"task": {"type": "worker", "index": 0}}', '"cluster" must list the "worker" addresses'),
        ('{"cluster": {"worker": ["a:1", "b"]}, "task": {"type": "worker", "index": 0}}', "'b' is not host:port"),
        ('{"cluster": {"worker": ["a:1"]}, "task": {"type": "worker", "index": 1}}', "task index 1 is not one"),
        ('{"cluster": {"worker": ["a:1"]}, "task": {"type": "ps", "index": 0}}', '"task" must name a type'),
    ],
)
def test_a_bad_tf_config_is_one_clear_error(text, message):
    from edgeseg.errors import EdgesegError
    from edgeseg.training.backends.tf import read_tf_config

    with pytest.raises(EdgesegError, match=message.replace("(", r"\(").replace(")", r"\)")):
        read_tf_config(text)


def test_the_chief_is_the_chief_task_or_worker_0():
    from edgeseg.training.backends.tf import read_tf_config, role_of

    two = '{"cluster": {"worker": ["h1:1", "h2:1"]}, "task": {"type": "worker", "index": 1}}'
    assert role_of(*read_tf_config(two)) == ("worker 1", False)
    assert role_of("worker", 0, {"worker": ["h1:1", "h2:1"]}) == ("chief", True)
    assert role_of("worker", 0, {"chief": ["c:1"], "worker": ["h1:1"]}) == ("worker 0", False)
    assert role_of("chief", 0, {"chief": ["c:1"], "worker": ["h1:1"]}) == ("chief", True)


def test_multiworker_without_tf_config_is_one_line(synthetic_data, tmp_path):
    from typer.testing import CliRunner

    from edgeseg.cli import app

    os.environ.pop("TF_CONFIG", None)
    r = CliRunner().invoke(app, ["train", "--data", str(synthetic_data), "--strategy", "multiworker"])
    assert r.exit_code == 1 and "--strategy multiworker needs TF_CONFIG" in r.output, r.output
