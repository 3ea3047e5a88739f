"""The fault catalogue: one test per kind of bad input, fault or hostile use (issue: "Faults and hostile input").

Each asserts the exit code, a single line without a traceback, and that nothing half-written is left behind.
The inputs are built here: a real .tflite whose embedded spec bytes are mutated, paths that are folders or sit
under files, tmpfs mounts that are read-only or full (inside `unshare -m`, skipped where mounting is not
allowed), signals sent to subprocesses.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import signal
import socket
import struct
import subprocess
import sys
import time
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from edgeseg.cli import app
from edgeseg.tflite_file import read_spec_json
from tests.conftest import ROOT
from tests.test_camera import count_frames

runner = CliRunner()


def invoke(*args):
    return runner.invoke(app, [str(a) for a in args])


def one_line_error(result, pattern: str, code: int = 1) -> str:
    import re

    assert result.exit_code == code, result.output
    assert "Traceback" not in result.output
    lines = [line for line in result.output.strip().splitlines() if line.strip() and not line.startswith("INFO:")]
    assert len(lines) == 1, result.output
    assert re.search(pattern, lines[0]), lines[0]
    return lines[0]


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in Path(folder).rglob(".*"))


def edgeseg_proc(*args, **kw) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "edgeseg", *map(str, args)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        **kw,
    )


# ------------------------------------------------------------------------- 1. numbers that reach native code
def test_numeric_options_are_range_checked_before_native_code(toy_models):
    m = toy_models["scores_int8"]
    for args in (
        ("run", m, "--source", "synthetic:64x48", "--no-show", "--threads", 100000),
        ("run", m, "--camera", 99999, "--no-show"),
        ("bench", m, "--runs", 0),
    ):
        r = invoke(*args)
        assert r.exit_code == 2 and "Traceback" not in r.output and "Invalid value" in r.output, r.output
    one_line_error(invoke("bench", m, "--threads", "1,999"), r"--threads: 999 is outside 1\.\.64")
    one_line_error(
        invoke("run", m, "--source", "synthetic:20000x20000", "--no-show"),
        r"synthetic:20000x20000: 20000x20000 is outside 1\.\.7680",
    )
    one_line_error(invoke("bench", m, "--frame-size", "100000x10"), r"--frame-size: 100000x10 is outside")
    one_line_error(
        invoke("run", m, "--camera", 0, "--camera-size", "9000x9000", "--no-show"),
        r"--camera-size: 9000x9000 is outside",
    )
    from edgeseg.camera.sources import SyntheticSource

    src = SyntheticSource((2048, 4096))  # large but allowed: the pre-rendered cycle shrinks to fit its budget
    assert len(src.cycle) * 2048 * 4096 * 3 <= 256 * 2**20


# ------------------------------------------------------------------------------ 2. the spec is untrusted
def _with_spec(model: bytes, new: bytes) -> bytes:
    """The model with its embedded spec bytes replaced in place (same length, padded with spaces)."""
    old = read_spec_json(model)
    assert old and len(new) <= len(old), (len(new), len(old))
    i = model.index(old)
    return model[:i] + new + b" " * (len(old) - len(new)) + model[i + len(old) :]


SPEC_MUTATIONS = {
    "a list": (lambda d: b"[1, 2, 3]", r"the spec must be a JSON object"),
    "colour 999": (
        lambda d: json.dumps({**d, "colours": [[999, 0, 0]] + d["colours"][1:]}).encode(),
        r"colours\[0\] must be three integers 0\.\.255",
    ),
    "NaN std": (lambda d: json.dumps({**d, "std": [math.nan] * 3}).encode(), r"NaN is not a number"),
    "malformed UTF-8": (lambda d: b'{"classes": "\xff\xfe"}', r"not UTF-8 text"),
    "deep nesting": (lambda d: b"[" * 400 + b"]" * 400, r"must be a JSON object|nested"),
    "deep object": (
        lambda d: json.dumps({**d, "extra": {"a": {"b": {"c": {"d": {"e": {"f": {"g": {"h": {}}}}}}}}}}).encode(),
        r"nested more than 8 levels",
    ),
    "no classes": (lambda d: json.dumps({**d, "classes": []}).encode(), r"classes must be a list of 1\.\.1024"),
    "size as text": (lambda d: json.dumps({**d, "input_hw": ["288", "384"]}).encode(), r"input_hw must be"),
    "zero std": (lambda d: json.dumps({**d, "std": [0, 1, 1]}).encode(), r"std must be at least 1e-06 in size"),
    "underflowing std": (lambda d: json.dumps({**d, "std": [1e-300] * 3}).encode(), r"std must be at least 1e-06"),
    "huge ignore": (lambda d: json.dumps({**d, "ignore_index": 10**12}).encode(), r"ignore_index must be"),
}


@pytest.fixture(scope="module")
def shipped_bytes() -> bytes:
    from edgeseg.assets import default_model

    path = default_model()
    if path is None:
        pytest.skip("needs the shipped model (its embedded spec is what gets mutated)")
    return path.read_bytes()


@pytest.mark.parametrize("case", sorted(SPEC_MUTATIONS))
def test_a_hostile_embedded_spec_is_one_line_naming_the_field(shipped_bytes, tmp_path, case):
    mutate, pattern = SPEC_MUTATIONS[case]
    d = json.loads(read_spec_json(shipped_bytes))
    d = {k: v for k, v in d.items() if k != "extra"}  # room in the same number of bytes
    bad = tmp_path / "hostile.tflite"
    bad.write_bytes(_with_spec(shipped_bytes, mutate(d)))
    for cmd in (("bench", bad, "--runs", 1, "--warmup", 0), ("info", bad)):
        line = one_line_error(invoke(*cmd), pattern)
        assert "hostile.tflite: embedded spec:" in line
    assert leftovers(tmp_path) == []


def test_the_shipped_spec_still_validates(shipped_bytes):
    from edgeseg.spec import ModelSpec

    spec = ModelSpec.from_json(read_spec_json(shipped_bytes))
    assert spec.num_classes == 11 and spec.ignore_index == 11


# ------------------------------------------------------------------------- 3. outputs found unwritable first
def test_unwritable_outputs_are_refused_before_the_work(toy_models, tmp_path):
    m = toy_models["scores_int8"]
    a_file = tmp_path / "a_file"
    a_file.write_text("x")
    one_line_error(invoke("bench", m, "--json", tmp_path), r": is a folder; give a file name")
    one_line_error(invoke("bench", m, "--csv", a_file / "b.csv"), r"a_file is a file, not a folder")
    one_line_error(
        invoke("run", m, "--source", "synthetic:64x48", "--no-show", "--record", a_file / "x" / "o.mp4"),
        r"a_file is a file, not a folder",
    )
    one_line_error(invoke("run", m, "--source", "synthetic:64x48", "--no-show", "--stats", tmp_path), r"is a folder")
    one_line_error(invoke("train", "--data", tmp_path, "--out", a_file), r"a_file: exists and is not a folder")
    one_line_error(invoke("info", m, "--json", "/proc/edgeseg.json"), r"cannot write in /proc")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a_file"]


def _in_mount_namespace(script: str, tmp_path: Path) -> subprocess.CompletedProcess:
    """Run `script` (sh) inside `unshare -m` with $T a fresh mount point; skip where that is not allowed."""
    if shutil.which("unshare") is None:
        pytest.skip("needs unshare (util-linux) to mount a small tmpfs")
    mnt = tmp_path / "mnt"
    mnt.mkdir(exist_ok=True)
    probe = subprocess.run(
        ["unshare", "-m", "sh", "-c", f"mount -t tmpfs -o size=64k tmpfs {mnt}"], capture_output=True, text=True
    )
    if probe.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({probe.stderr.strip()[:80]})")
    env = {**os.environ, "T": str(mnt), "PY": sys.executable}
    return subprocess.run(
        ["unshare", "-m", "sh", "-c", script], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )


def test_read_only_and_full_disks_are_one_line(toy_models, tmp_path):
    m = toy_models["scores_int8"]
    ro = _in_mount_namespace(
        f'mount -t tmpfs -o ro,size=64k tmpfs "$T" && "$PY" -m edgeseg bench {m} --runs 2 '
        f'--warmup 0 --json "$T/b.json"; echo "rc=$?"; ls -A "$T"',
        tmp_path,
    )
    assert "rc=1" in ro.stdout and "Traceback" not in ro.stderr, ro.stderr
    assert "b.json: cannot write in" in ro.stderr and "Read-only file system" in ro.stderr
    # 64 KiB: room for a few scenes, then ENOSPC in the middle of the work
    full = _in_mount_namespace(
        'mount -t tmpfs -o size=64k tmpfs "$T" && "$PY" -m edgeseg synth "$T/d" --count 200 '
        '--size 160x120; echo "rc=$?"; ls -A "$T/d/images" | grep "^\\." ; echo end',
        tmp_path,
    )
    assert "rc=1" in full.stdout and "Traceback" not in full.stderr, full.stderr
    errors = [line for line in full.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and ("No space left on device" in errors[0] or "disk full" in errors[0]), full.stderr
    assert full.stdout.strip().endswith("end") and "\n." not in full.stdout  # no hidden temp file left


# ----------------------------------------------------------------------------- 4. third-party decoders
def _png_header_only(w: int, h: int) -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0))
        + chunk(b"IDAT", zlib.compress(b"\0" * 64))
        + chunk(b"IEND", b"")
    )


def _dataset(tmp_path: Path, image=None, mask=None, classes='{"classes": ["red", "green", "blue"]}') -> Path:
    root = tmp_path / "ds"
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    if image is None:
        cv2.imwrite(str(root / "images" / "a.png"), np.zeros((24, 40, 3), np.uint8))
    else:
        (root / "images" / "a.png").write_bytes(image)
    if isinstance(mask, bytes):
        (root / "masks" / "a.png").write_bytes(mask)
    else:
        Image.fromarray(mask if mask is not None else np.zeros((24, 40), np.uint8)).save(root / "masks" / "a.png")
    (root / "classes.json").write_bytes(classes.encode() if isinstance(classes, str) else classes)
    return root


def test_decoders_get_explicit_limits_and_say_which_file(toy_models, tmp_path):
    m = toy_models["scores_float"]

    def eval_on(root):
        return invoke("eval", m, "--data", root, "--split", "all")

    one_line_error(
        eval_on(_dataset(tmp_path / "1", image=_png_header_only(60000, 60000))),
        r"images/a\.png: image too large to decode",
    )
    big = np.zeros((16000, 16000), np.uint8)  # a decompression bomb of a mask: 256 MP of zeros
    buf = tmp_path / "big.png"
    Image.fromarray(big).save(buf)
    del big
    one_line_error(eval_on(_dataset(tmp_path / "2", mask=buf.read_bytes())), r"masks/a\.png: image too large")
    one_line_error(eval_on(_dataset(tmp_path / "3", classes=b'{"classes": ["a", "b"\xff]}')), r"not UTF-8")
    one_line_error(
        eval_on(
            _dataset(tmp_path / "4", classes='{"classes": ["a", "b", "c"], "colours": [[1, 2], [0, 0, 0], [0, 0, 0]]}')
        ),
        r"colours\[0\] must be three integers",
    )
    one_line_error(eval_on(_dataset(tmp_path / "5", classes='{"classes": ["a", 7, "c"]}')), r"classes\[1\]")
    one_line_error(eval_on(_dataset(tmp_path / "6", classes="{" * 5000)), r"classes\.json: (not valid|JSON nested)")


# --------------------------------------------------------------------------------------------- 5. SIGTERM
@pytest.mark.parametrize("signame", ["SIGTERM", "SIGHUP"])  # SIGHUP: a closed terminal or SSH session (issue 35)
def test_sigterm_during_run_leaves_a_playable_recording_and_stats(toy_models, tmp_path, signame):
    out = tmp_path / "o.mp4"
    proc = edgeseg_proc(
        "run",
        toy_models["scores_int8"],
        "--source",
        "synthetic:96x64",
        "--no-show",
        "--realtime",
        "--record",
        out,
        "--stats",
        tmp_path / "s.json",
    )
    try:
        assert "Ctrl-C stops" in proc.stdout.readline()
        time.sleep(1.5)
        proc.send_signal(getattr(signal, signame))
        stdout, stderr = proc.communicate(timeout=30)
    finally:
        proc.kill()
    said = {"SIGTERM": "terminated (SIGTERM)", "SIGHUP": "hung up (SIGHUP)"}[signame]
    assert proc.returncode == 128 + getattr(signal, signame), stderr  # not success (0), not Ctrl-C (130)
    assert "Traceback" not in stderr and said in stderr
    s = json.loads((tmp_path / "s.json").read_text())
    assert s["interrupted"] and s["stopped_by"] == signame and s["frames"] > 10
    assert count_frames(out) == s["frames"]
    assert leftovers(tmp_path) == []


def test_sigterm_during_bench_writes_nothing_half_done(tmp_path):
    from edgeseg.assets import default_model

    if default_model() is None:
        pytest.skip("needs the shipped model")
    out = tmp_path / "out"
    out.mkdir()
    log = tmp_path / "stderr.txt"
    with log.open("w") as err:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "edgeseg",
                "bench",
                "--runs",
                "100000",
                "--warmup",
                "0",
                "--json",
                str(out / "b.json"),
            ],
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
            stderr=err,
        )
        deadline = time.time() + 60
        while "XNNPACK" not in log.read_text() and time.time() < deadline:  # the model is loaded: timing runs
            time.sleep(0.1)
        time.sleep(1)
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
    stderr = log.read_text()
    assert proc.returncode == 143 and "Traceback" not in stderr and "terminated (SIGTERM)" in stderr, stderr
    assert list(out.iterdir()) == []


@pytest.mark.slow
def test_sigterm_during_training_stops_at_a_safe_point_and_its_backup_loads(synthetic_data, tmp_path):
    """In-process (a subprocess would spend a minute importing TensorFlow): SIGTERM in the middle of epoch 2
    ends fit() at the next batch, never inside the backup write, and the backup loads."""
    import keras

    from edgeseg import signals
    from edgeseg.training.train import TrainConfig, train

    class KillMidEpoch2(keras.callbacks.Callback):
        def on_train_batch_begin(self, batch, logs=None):
            if self.epoch == 1 and batch == 2:
                os.kill(os.getpid(), signal.SIGTERM)

        def on_epoch_begin(self, epoch, logs=None):
            self.epoch = epoch

    out = tmp_path / "run"
    cfg = TrainConfig(
        data=str(synthetic_data), out=str(out), input_hw=(64, 96), alpha=0.35, decoder="tiny", epochs=2, batch_size=4
    )
    with signals.graceful_sigterm(), pytest.raises(signals.Terminated):
        train(cfg, log=lambda *_: None, callbacks=[KillMidEpoch2()])
    assert signals.received() == signal.SIGTERM and signals.exit_code() == 143
    assert (out / "backup").is_dir() and (out / "model.keras").is_file()
    assert len((out / "history.csv").read_text().splitlines()) == 1 + 1  # epoch 1 done, epoch 2 stopped
    assert [p.name for p in out.glob(".*")] == []  # no half-written checkpoint
    # the backup loads: what --resume does first (resuming itself is test_training's; this keeps the test short)
    from edgeseg.training.model import build_unet

    backups = list((out / "backup").glob("*.weights.h5"))
    assert backups
    build_unet(5, (64, 96), alpha=0.35, decoder="tiny").load_weights(backups[0])


# ------------------------------------------------------------------------------- 6. no silent partial result
def test_a_damaged_video_is_reported_not_passed_off_as_complete(toy_models, tmp_path):
    from edgeseg.synthetic import write_video

    video = write_video(tmp_path / "v.mp4", frames=60, hw=(48, 64))
    data = bytearray(video.read_bytes())
    n = len(data)
    data[n // 3 : n // 2] = bytes(n // 2 - n // 3)  # damage the middle of the file
    damaged = tmp_path / "damaged.mp4"
    damaged.write_bytes(bytes(data))
    r = invoke("run", toy_models["scores_int8"], "--source", damaged, "--no-show", "--stats", tmp_path / "s.json")
    s = json.loads((tmp_path / "s.json").read_text())
    assert s["frames"] < 60 and "of the 60 frames its header declares" in s["ended_early"]
    assert "warning: " + s["ended_early"] in r.output
    r = invoke("run", toy_models["scores_int8"], "--source", video, "--no-show", "--stats", tmp_path / "s2.json")
    assert r.exit_code == 0 and json.loads((tmp_path / "s2.json").read_text())["ended_early"] is None


@pytest.mark.slow
def test_quant_report_refuses_models_of_other_classes(tiny_tflite, toy_models, synthetic_data, tmp_path):
    one_line_error(
        invoke(
            "quant-report",
            tiny_tflite["float"],
            toy_models["scores_int8"],
            "--data",
            synthetic_data,
            "--out",
            tmp_path / "q",
        ),
        r"the int8 model predicts 3 classes but the dataset has 5",
    )
    assert not (tmp_path / "q").exists() or list((tmp_path / "q").iterdir()) == []


def test_a_float_mask_is_refused(toy_models, tmp_path):
    root = _dataset(tmp_path)
    Image.fromarray(np.full((24, 40), 1.5, np.float32)).save(root / "masks" / "a.tiff")
    (root / "masks" / "a.png").unlink()
    (root / "masks" / "a.tiff").rename(root / "masks" / "a.png")  # the stem pairs it with the image
    one_line_error(
        invoke("eval", toy_models["scores_float"], "--data", root, "--split", "all"),
        r"masks/a\.png: mask is floating point",
    )


# ---------------------------------------------------------------------------- 7. device-only install
def test_train_and_convert_without_tensorflow_say_what_to_install(tmp_path):
    code = (
        "import sys; sys.modules['tensorflow'] = None; sys.modules['keras'] = None\n"
        "from edgeseg.cli import main; sys.argv = ['edgeseg'] + sys.argv[1:]; main()"
    )
    model = tmp_path / "m.keras"
    model.write_bytes(b"x")
    for args in (["train", "--data", str(tmp_path), "--out", str(tmp_path / "run")], ["convert", str(model)]):
        p = subprocess.run([sys.executable, "-c", code, *args], cwd=ROOT, capture_output=True, text=True, timeout=60)
        lines = [line for line in p.stderr.strip().splitlines() if line.strip()]
        assert p.returncode == 1 and "Traceback" not in p.stderr and len(lines) == 1, p.stderr
        assert "needs TensorFlow" in lines[0] and "pip install 'edgeseg[train]'" in lines[0]


# ------------------------------------------------------------------------------------ 8. --serve hygiene
def test_serve_drops_idle_clients_and_caps_connections(monkeypatch):
    import edgeseg.camera.serve as serve

    monkeypatch.setattr(serve.StreamHandler, "timeout", 0.5)
    fs = serve.FrameServer("127.0.0.1", 0, max_pending=2)
    try:
        idle = [socket.create_connection(("127.0.0.1", fs.port), timeout=5) for _ in range(2)]
        time.sleep(0.2)
        extra = socket.create_connection(("127.0.0.1", fs.port), timeout=5)
        assert extra.recv(100).startswith(b"HTTP/1.0 503")  # over the cap: refused at once
        extra.close()
        for s in idle:  # idle clients are closed after the timeout: the server sends EOF
            s.settimeout(5)
            assert s.recv(10) == b""
            s.close()
        time.sleep(0.2)
        with socket.create_connection(("127.0.0.1", fs.port), timeout=5) as s:  # slots are free again
            s.sendall(b"GET /stats.json HTTP/1.0\r\n\r\n")
            assert s.recv(100).startswith(b"HTTP/1.0 200")
    finally:
        fs.close()


@pytest.mark.slow
def test_sigterm_during_convert_leaves_no_model_and_a_small_set_warns_once(tiny_run, synthetic_data, tmp_path):
    out = tmp_path / "m_int8.tflite"
    log = tmp_path / "stderr.txt"
    with log.open("w") as err:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "edgeseg",
                "convert",
                str(tiny_run / "model.keras"),
                "--int8",
                "--calibration",
                str(synthetic_data),
                "--num-calibration",
                "8",
                "--out",
                str(out),
            ],
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
            stderr=err,
        )
        time.sleep(4)  # TensorFlow is loading or converting
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=120)
    stderr = log.read_text()
    assert proc.returncode == 143 and "Traceback" not in stderr and "terminated (SIGTERM)" in stderr, stderr[-2000:]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["stderr.txt"]  # no model, no temp file
    r = invoke(
        "convert",
        tiny_run / "model.keras",
        "--int8",
        "--calibration",
        synthetic_data,
        "--num-calibration",
        8,
        "--out",
        out,
        "--verify",
        1,
        "--equalize",
        "on",
    )
    assert r.exit_code == 0, r.output
    assert r.output.count("only 8 calibration images") == 1, r.output  # said once, not twice
    assert r.output.count("equalised") == 1, r.output  # --equalize: said once, with what it changed
