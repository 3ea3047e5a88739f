"""The fault catalogue, round 2 (issue "Faults round 2"), by class: no silent wrong answer, outputs, bounded inputs,
the viewer under abuse, the Python API, and the rough edges a new user met (training that survives a crash is in
test_faults_training.py).

Each asserts what the user sees (one line, the exit code, no traceback) and what is left behind."""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import socket
import stat
import subprocess
import sys
import threading
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
from typer.testing import CliRunner

from edgeseg.cli import app
from edgeseg.errors import DataError, EdgesegError, ModelError
from tests.conftest import ROOT
from tests.test_faults import _in_mount_namespace, one_line_error
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
    with pytest.raises(ModelError, match="dynamic and the model carries no spec: put .*spec.json next to it"):
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


def test_mask_names_stay_apart_whatever_the_folders_and_the_case(tmp_path):
    """Joining folders with '__' could meet another name (p/a__b/c.png and p__a/b/c.png), and A.png and a.png are
    one file on FAT or macOS: every name is different, also without case."""
    from types import SimpleNamespace

    from edgeseg.evaluate import mask_names

    files = ["p/a__b/c.png", "p__a/b/c.png", "x/A.png", "y/a.png", "z/a.jpg", "p__a__b__c_png.png"]
    ds = SimpleNamespace(root=tmp_path, samples=[SimpleNamespace(image=tmp_path / f) for f in files])
    names = mask_names(ds, len(files))
    assert len({n.lower() for n in names}) == len(files), names
    assert names[0] == "p__a__b__c_png.png" and names[1] == "p__a__b__c_png-2.png"
    assert names[2:5] == ["x__A_png.png", "y__a_png.png", "z__a_jpg.png"] and names[5] == "p__a__b__c_png-3.png"
    assert all(n.endswith(".png") and "/" not in n for n in names)


# ------------------------------------------------------------------------------------------------- 3. outputs
def test_a_pipe_given_as_an_output_is_written_to_not_replaced(toy_models, tmp_path):
    fifo = tmp_path / "out.fifo"
    os.mkfifo(fifo)
    got = []
    reader = threading.Thread(target=lambda: got.append(fifo.read_bytes()), daemon=True)
    reader.start()
    r = invoke("bench", toy_models["scores_int8"], "--runs", 2, "--warmup", 0, "--json", fifo)
    reader.join(30)
    assert r.exit_code == 0, r.output
    assert json.loads(got[0])["results"][0]["runtime"] == "litert"
    assert stat.S_ISFIFO(fifo.stat().st_mode) and sorted(p.name for p in tmp_path.iterdir()) == ["out.fifo"]


def test_a_full_disk_while_recording_is_one_line_not_a_claimed_file(toy_models, tmp_path):
    m = toy_models["scores_int8"]
    full = _in_mount_namespace(
        f'mount -t tmpfs -o size=64k tmpfs "$T" && "$PY" -m edgeseg run {m} --source synthetic:320x240 --no-show '
        '--max-frames 120 --record "$T/o.avi"; echo "rc=$?"; ls -A "$T"; echo end',
        tmp_path,
    )
    assert "rc=1" in full.stdout and "Traceback" not in full.stderr, full.stderr
    assert "the disk is full" in full.stderr and "wrote" not in full.stdout
    assert full.stdout.split("rc=1")[1].strip() == "end"  # nothing left in the folder


def _recording(toy_models, out: Path) -> subprocess.Popen:
    proc = subprocess.Popen(
        [sys.executable, "-m", "edgeseg", "run", str(toy_models["scores_int8"]), "--source", "synthetic:96x64"]
        + ["--no-show", "--realtime", "--record", str(out)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert "Ctrl-C stops" in proc.stdout.readline()
    time.sleep(1.5)
    return proc


def test_two_ctrl_c_10_ms_apart_keep_the_recording(toy_models, tmp_path):
    from tests.test_camera import count_frames

    out = tmp_path / "o.mkv"
    proc = _recording(toy_models, out)
    proc.send_signal(signal.SIGINT)
    time.sleep(0.01)
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130 and "Traceback" not in stderr, stderr
    assert count_frames(out) > 10 and sorted(p.name for p in tmp_path.iterdir()) == ["o.mkv"]


def test_a_sigkill_leaves_a_visible_partial_recording_that_the_next_run_replaces(toy_models, tmp_path):
    out = tmp_path / "o.mkv"
    proc = _recording(toy_models, out)
    proc.kill()
    proc.communicate(timeout=30)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["o.partial.mkv"]  # in plain sight, not hidden
    r = invoke(
        "run", toy_models["scores_int8"], "--source", "synthetic:96x64", "--no-show", "--max-frames", 3, "--record", out
    )
    assert r.exit_code == 0, r.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["o.mkv"]


def test_a_path_component_over_255_bytes_is_one_line(toy_models, tmp_path):
    long = tmp_path / ("x" * 300 + ".json")
    one_line_error(invoke("bench", toy_models["scores_int8"], "--runs", 2, "--json", long), "File name too long")
    one_line_error(invoke("eval", toy_models["scores_int8"], "--data", tmp_path, "--json", long), "File name too long")


# ------------------------------------------------------------------------------------------- 4. bounded inputs
def test_labels_and_specs_must_be_regular_files_of_a_bounded_size(toy_models, tmp_path):
    from tests.test_faults import _dataset

    m = toy_models["scores_int8"]
    data = _dataset(tmp_path)
    one_line_error(invoke("eval", m, "--data", data, "--labels", "/dev/zero"), "not a regular file")
    fifo = tmp_path / "labels.fifo"
    os.mkfifo(fifo)
    one_line_error(invoke("bench", m, "--runs", 2, "--labels", fifo), "not a regular file")
    huge = tmp_path / "spec.json"
    with huge.open("wb") as f:
        f.truncate(2**30)  # a sparse gigabyte
    one_line_error(invoke("eval", m, "--data", data, "--spec", huge), "more than 262144 bytes: not a spec file")


def test_a_huge_model_file_is_refused_by_its_header_and_size_before_it_is_read(tmp_path):
    from edgeseg.tflite_file import read_model_bytes

    junk = tmp_path / "junk.tflite"
    with junk.open("wb") as f:
        f.write(b"\x00" * 16)
        f.truncate(8 * 2**30)  # 8 GiB, sparse: reading it whole would take 8 GiB of memory
    t0 = time.perf_counter()
    with pytest.raises(ModelError, match="not a TFLite model"):
        read_model_bytes(junk)
    big = tmp_path / "big.tflite"
    with big.open("wb") as f:
        f.write(b"\x1c\x00\x00\x00TFL3")
        f.truncate(3 * 2**30)
    with pytest.raises(ModelError, match="more than a flatbuffer can hold"):
        read_model_bytes(big)
    assert time.perf_counter() - t0 < 5


def test_a_deeply_nested_or_huge_tf_config_is_one_line():
    from edgeseg.training.backends.tf import read_tf_config

    with pytest.raises(EdgesegError, match="nested too deeply"):
        read_tf_config("[" * 30_000 + "]" * 30_000)
    with pytest.raises(EdgesegError, match="more than a cluster description needs"):
        read_tf_config('{"cluster": {"worker": ["' + "h" * 100_000 + ':1"]}}')


# ------------------------------------------------------------------------------------------------ 5. the viewer
def _get(port: int, path: str, host: str = "127.0.0.1", timeout: float = 5) -> bytes:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.settimeout(timeout)
        s.connect((host, port))
        s.sendall(f"GET {path} HTTP/1.0\r\n\r\n".encode())
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    return data


def _colour_of(jpeg_response: bytes) -> np.ndarray:
    body = jpeg_response.split(b"\r\n\r\n", 1)[1]
    return cv2.imdecode(np.frombuffer(body, np.uint8), cv2.IMREAD_COLOR)[8, 8]


def test_clients_that_trickle_a_request_do_not_lock_out_real_ones(monkeypatch):
    import edgeseg.camera.serve as serve

    monkeypatch.setattr(serve, "REQUEST_DEADLINE_S", 0.5)
    fs = serve.FrameServer("127.0.0.1", 0, max_pending=4)
    stop = threading.Event()

    def trickle():
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", fs.port)) as s:
            while not stop.is_set():
                s.sendall(b"G")
                time.sleep(0.2)

    attackers = [threading.Thread(target=trickle, daemon=True) for _ in range(16)]
    try:
        for t in attackers:
            t.start()
        time.sleep(1.0)
        ok = 0
        for _ in range(10):  # a real client gets through within a few tries, while the trickling goes on
            with contextlib.suppress(OSError):
                ok += _get(fs.port, "/stats.json", timeout=2).startswith(b"HTTP/1.0 200")
            if ok:
                break
            time.sleep(0.3)
        assert ok
    finally:
        stop.set()
        fs.close()


def test_a_snapshot_or_a_new_stream_gets_the_newest_frame_not_an_old_one():
    import edgeseg.camera.serve as serve

    fs = serve.FrameServer("127.0.0.1", 0)
    try:
        fs.publish(solid((0, 0, 255), (16, 16)))  # red, while nobody watches
        assert _colour_of(_get(fs.port, "/snapshot.jpg"))[2] > 200
        fs.publish(solid((255, 0, 0), (16, 16)))  # then blue, still nobody watching
        assert _colour_of(_get(fs.port, "/snapshot.jpg"))[0] > 200
        fs.publish(solid((0, 255, 0), (16, 16)))  # green
        with socket.create_connection(("127.0.0.1", fs.port), timeout=5) as s:
            s.sendall(b"GET /stream.mjpg HTTP/1.0\r\n\r\n")
            data = b""
            while data.count(b"\xff\xd9") < 1:
                data += s.recv(65536)
        part = data.split(b"Content-Type: image/jpeg", 1)[1]
        jpeg = part[part.index(b"\xff\xd8") : part.index(b"\xff\xd9") + 2]
        assert cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)[8, 8][1] > 200  # green, not red
    finally:
        fs.close()


def test_the_viewer_takes_ipv6_and_says_when_it_is_exposed():
    import edgeseg.camera.serve as serve

    assert serve.parse_serve("[::1]:8080") == ("::1", 8080)
    try:
        fs = serve.FrameServer("::1", 0)
    except EdgesegError as e:
        pytest.skip(f"no IPv6 loopback here ({e})")
    try:
        assert _get(fs.port, "/stats.json", host="::1").startswith(b"HTTP/1.0 200")
        assert fs.url == f"http://[::1]:{fs.port}/"
    finally:
        fs.close()
    fs = serve.FrameServer("0.0.0.0", 0)
    try:
        assert fs.exposed and "localhost" not in fs.url and "anyone who can reach this machine" in fs.describe()
    finally:
        fs.close()


# ---------------------------------------------------------------------------------------------- 6. the Python API
def test_the_api_refuses_absurd_threads_and_sources_and_serialises_threads(toy_models):
    from edgeseg import load_model

    with pytest.raises(EdgesegError, match="threads: 100000 is outside 1..64"):
        load_model(toy_models["scores_int8"], threads=100000)
    seg = load_model(toy_models["scores_int8"])
    with pytest.raises(EdgesegError, match="not ndarray; for frames you hold, call predict"):
        seg.stream(np.zeros((4, 4, 3), np.uint8))
    frames = [solid(c, (24, 40)) for c in ((0, 0, 255), (0, 255, 0), (255, 0, 0))] * 20
    want = [seg.segment(f) for f in frames]
    got: dict[int, np.ndarray] = {}

    def work(k: int) -> None:
        for i in range(k, len(frames), 4):
            got[i] = seg.segment(frames[i])

    threads = [threading.Thread(target=work, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert all((got[i] == want[i]).all() for i in range(len(frames)))  # four threads, one interpreter, no mix-up


# -------------------------------------------------------------------------------------- 7. rough edges a user met
def test_help_shows_flags_as_flags_and_usage_errors_print_with_no_columns():
    r = invoke("convert", "--help")
    assert "<bool>" not in r.output and "--int8" in r.output
    env = {**os.environ, "COLUMNS": "0"}
    proc = subprocess.run(
        [sys.executable, "-m", "edgeseg", "bench", "--bogus"], cwd=ROOT, env=env, capture_output=True, text=True
    )
    assert proc.returncode == 2 and "No such option: --bogus" in proc.stderr


def test_a_stale_display_is_said_and_run_goes_on_without_a_window(toy_models, tmp_path):
    env = {**os.environ, "DISPLAY": ":97", "QT_QPA_PLATFORM": ""}  # no X server at :97
    proc = subprocess.run(
        [sys.executable, "-m", "edgeseg", "run", str(toy_models["scores_int8"]), "--source", "synthetic:64x48"]
        + ["--max-frames", "3"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert "DISPLAY=:97 is set but no X server answers: running without a window" in proc.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == []


def test_synth_does_not_overwrite_a_dataset_and_train_prints_no_tensorflow_noise(tmp_path):
    r = invoke("synth", tmp_path / "d", "--count", 3, "--size", "64x48")
    assert r.exit_code == 0, r.output
    before = (tmp_path / "d" / "classes.json").read_bytes()
    one_line_error(invoke("synth", tmp_path / "d", "--count", 3), "already holds a dataset .*--overwrite")
    assert (tmp_path / "d" / "classes.json").read_bytes() == before
    proc = subprocess.run(
        [sys.executable, "-m", "edgeseg", "train", "--data", str(tmp_path / "d"), "--out", str(tmp_path / "r")]
        + ["--decoder", "bsae"],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 2
    fake = tmp_path / "m.keras"
    fake.write_bytes(b"PK not a model")
    proc = subprocess.run(
        [sys.executable, "-m", "edgeseg", "convert", str(fake), "--spec", str(tmp_path / "d" / "classes.json")],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 1 and "import tensorflow" not in proc.stderr
    assert (
        "tensorflow"
        in subprocess.run(
            [sys.executable, "-c", "import edgeseg.cli.common as c, sys; c.quiet_tensorflow(); print(*sys.modules)"],
            cwd=ROOT,
            capture_output=True,
            text=True,
        ).stdout.split()
    )
    for noise in ("absl::InitializeLog", "oneDNN custom operations", "cpu_feature_guard", "To enable the following"):
        assert noise not in proc.stderr, proc.stderr


def test_masks_saved_onto_a_full_disk_are_one_line_and_no_empty_png(toy_models, tmp_path):
    """Issue 35: cv2.imwrite on a full disk returned True and left a zero-byte PNG, renamed into place, and `run
    --save-masks` said it wrote them. Images are now encoded in memory and written by the one checked writer."""
    m = toy_models["scores_int8"]
    full = _in_mount_namespace(
        'mount -t tmpfs -o size=64k tmpfs "$T" && mkdir "$T/m" && (dd if=/dev/zero of="$T/fill" bs=4k 2>/dev/null;'
        f' true) && "$PY" -m edgeseg run {m} --source synthetic:96x64 --no-show --max-frames 5 --save-masks "$T/m";'
        ' echo "rc=$?"; find "$T/m" -type f -size 0; echo end',
        tmp_path,
    )
    assert "rc=1" in full.stdout and "Traceback" not in full.stderr, full.stdout + full.stderr
    errors = [line for line in full.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and ("No space left" in errors[0] or "disk full" in errors[0]), full.stderr
    assert full.stdout.split("rc=1")[1].strip() == "end"  # no empty file left in the folder


def test_write_image_refuses_what_it_cannot_encode_and_checks_what_reached_the_disk(tmp_path):
    from edgeseg.errors import OutputError
    from edgeseg.io import write_image

    img = np.full((8, 8, 3), 7, np.uint8)
    assert cv2.imread(str(write_image(tmp_path / "a.png", img))).tolist() == img.tolist()
    with pytest.raises(OutputError, match="no encoder for '.nope'"):
        write_image(tmp_path / "a.nope", img)
    with pytest.raises(OutputError, match="No space left|disk full"):
        write_image(Path("/dev/full"), img)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.png"]


def test_sources_that_block_or_never_end_are_refused_before_opening_and_odd_names_are_files(toy_models, tmp_path):
    """Issue 35: a FIFO as --source blocked in open(), deaf to Ctrl-C and SIGTERM; a file named shot[2].png was
    read as a glob; --duration 0 said no frame could be read; bench --threads 1,,2 was accepted."""
    m = toy_models["scores_int8"]
    fifo = tmp_path / "feed"
    os.mkfifo(fifo)
    t0 = time.perf_counter()
    one_line_error(invoke("run", m, "--source", fifo, "--no-show"), r"feed: is a FIFO, not a video")
    assert time.perf_counter() - t0 < 10
    odd = tmp_path / "shot[2].png"
    cv2.imwrite(str(odd), np.zeros((64, 96, 3), np.uint8))
    r = invoke("run", m, "--source", odd, "--no-show", "--stats", tmp_path / "s.json")
    assert r.exit_code == 0, r.output
    assert json.loads((tmp_path / "s.json").read_text())["frames"] == 1
    one_line_error(invoke("run", m, "--source", "synthetic:96x64", "--no-show", "--duration", "0"), "above 0 seconds")
    one_line_error(invoke("bench", m, "--threads", "1,,2", "--runs", 1), r"--threads: expected N or a list")


def test_degenerate_datasets_are_one_line_not_a_wrong_answer(tmp_path):
    """Issue 35: eval on masks that are all void died with a TypeError and wrote no --json; a classes.json that
    gave two classes one colour merged them silently (mIoU 0.77 became 0.97)."""
    root = tmp_path / "void"
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    for i in range(3):
        cv2.imwrite(str(root / "images" / f"f{i}.png"), np.full((64, 96, 3), 40 * i, np.uint8))
        cv2.imwrite(str(root / "masks" / f"f{i}.png"), np.full((64, 96), 255, np.uint8))
    names = [f"c{i}" for i in range(11)]
    (root / "classes.json").write_text(json.dumps({"classes": names, "ignore_index": 255}))
    out = tmp_path / "e.json"
    line = one_line_error(invoke("eval", "nano", "--data", root, "--split", "all", "--json", out), "no labelled pixel")
    assert "the 3 masks scored (all)" in line and "ignore index 255" in line and not out.exists()
    colours = [[i, i, i] for i in range(11)]
    colours[7] = colours[3]
    (root / "classes.json").write_text(json.dumps({"classes": names, "colours": colours}))
    one_line_error(invoke("eval", "nano", "--data", root, "--split", "all"), r"classes 'c3' and 'c7' share the colour")


def _failing_onnx(path: Path) -> Path:
    """An ONNX model that opens but fails inside ONNX Runtime on every run: a Reshape whose target shape holds
    fewer elements than its input (1x32x48x3 to 1x32x48x2)."""
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper, numpy_helper

    graph = helper.make_graph(
        [helper.make_node("Reshape", ["image", "shape"], ["scores"])],
        "failing",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, [1, 32, 48, 3])],
        [helper.make_tensor_value_info("scores", TensorProto.FLOAT, [1, 32, 48, 2])],
        [numpy_helper.from_array(np.array([1, 32, 48, 2], np.int64), "shape")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, path)
    return path


def test_a_runtime_that_fails_while_running_is_one_line_in_run_eval_and_the_api(tmp_path):
    """Issue 35: an ONNX model failing inside ONNX Runtime was a traceback from run and eval and a non-EdgesegError
    from the API; every predictor's invoke now says the runtime's error in one line."""
    pytest.importorskip("onnxruntime")
    from edgeseg import load_model

    path = _failing_onnx(tmp_path / "fails.onnx")
    model = load_model(path)
    with pytest.raises(EdgesegError, match=r"fails\.onnx: onnx\w* failed while running it \("):
        model.predict(np.zeros((32, 48, 3), np.uint8))
    said = r"fails\.onnx: .* failed while running it"
    r = invoke("run", path, "--source", "synthetic:48x32", "--no-show", "--max-frames", 2)
    errors = [ln for ln in r.output.splitlines() if ln.startswith("error:")]  # after run's one starting line
    assert r.exit_code == 1 and "Traceback" not in r.output and len(errors) == 1, r.output
    assert re.search(said, errors[0]) and r.output.strip().endswith(errors[0]), r.output
    data = tmp_path / "d"
    (data / "images").mkdir(parents=True)
    (data / "masks").mkdir()
    cv2.imwrite(str(data / "images" / "a.png"), np.zeros((32, 48, 3), np.uint8))
    cv2.imwrite(str(data / "masks" / "a.png"), np.zeros((32, 48), np.uint8))
    (data / "classes.json").write_text(json.dumps({"classes": ["a", "b"]}))
    one_line_error(invoke("eval", path, "--data", data, "--split", "all"), said)


def test_the_viewer_is_quiet_about_clients_that_break_off_and_warns_for_every_spelling_of_everywhere(capfd):
    """Issue 35: a client that went away mid-stream, or spoke TLS to the HTTP port, printed a traceback per
    connection on the run's terminal; `--serve 0:PORT` (0 is 0.0.0.0 to the socket layer) bound every interface
    without the warning."""
    import struct

    import edgeseg.camera.serve as serve

    assert all(serve.unspecified(h) for h in ("0", "0.0", "0.0.0.0", "::", "0:0::0", ""))
    assert not any(serve.unspecified(h) for h in ("127.0.0.1", "::1", "localhost", "192.168.1.2"))
    fs = serve.FrameServer("127.0.0.1", 0)
    try:
        fs.publish(solid((0, 0, 255), (240, 320)))
        tls_hello = bytes.fromhex("16030100f4010000f00303") + os.urandom(200)
        for payload in (tls_hello, b"GET /stats.js", b"GET /snapshot.jpg HTTP/1.0\r\n\r\n"):
            s = socket.create_connection(("127.0.0.1", fs.port), timeout=5)  # say it, then vanish with a reset
            s.sendall(payload)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            s.close()
            time.sleep(0.2)
        time.sleep(0.3)
        stats = json.loads(_get(fs.port, "/stats.json").split(b"\r\n\r\n", 1)[1])
        assert stats["client_errors"] >= 1  # counted (with the default handler: a traceback each)
    finally:
        fs.close()
    err = capfd.readouterr().err
    assert "Traceback" not in err and "BrokenPipeError" not in err and "ConnectionResetError" not in err, err
    fs = serve.FrameServer("0", 0)
    try:
        assert fs.exposed and "anyone who can reach this machine" in fs.describe()
    finally:
        fs.close()


def test_the_pixel_cap_reads_the_size_from_the_content_whatever_the_name(toy_models, tmp_path):
    """Issue 35: a 9 MB Radiance HDR named .png decoded to 12000x12000 past the 7680x7680 cap (2.2 GB in run):
    PIL could not identify it, and OpenCV then decoded it by content."""
    from edgeseg.images import read_image

    hdr = cv2.imencode(".hdr", np.ones((16, 24, 3), np.float32))[1].tobytes()
    assert b"-Y 16 +X 24" in hdr
    big = tmp_path / "big.png"
    big.write_bytes(hdr.replace(b"-Y 16 +X 24", b"-Y 12000 +X 12000"))
    with pytest.raises(DataError, match=r"big\.png: image is 12000x12000"):
        read_image(big)
    r = invoke("run", toy_models["scores_int8"], "--source", big, "--no-show")  # said as a frame it skips
    assert r.exit_code == 1 and "Traceback" not in r.output and "image is 12000x12000" in r.output, r.output
    small = tmp_path / "small.png"
    small.write_bytes(hdr)
    assert read_image(small).shape == (16, 24, 3)  # a small one still reads
    exr = tmp_path / "x.png"
    exr.write_bytes(b"\x76\x2f\x31\x01" + bytes(200))
    with pytest.raises(DataError, match=r"x\.png: an image format whose size cannot be read before decoding"):
        read_image(exr)


def test_a_reader_that_goes_away_costs_no_stats_and_no_traceback(toy_models, tmp_path):
    """Issue 35: `edgeseg run ... | head -1` exited 1 with no message and no --stats. Now the stats are written
    before the summary is printed, and a broken pipe is one line and exit 141, as a Unix tool's."""
    stats = tmp_path / "s.json"
    cmd = [sys.executable, "-m", "edgeseg", "run", str(toy_models["scores_int8"]), "--source", "synthetic:96x64"]
    cmd += ["--no-show", "--max-frames", "30", "--stats", str(stats)]
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert "Ctrl-C stops" in proc.stdout.readline()
    proc.stdout.close()  # what head -1 does after its line
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 141 and "Traceback" not in err, err
    assert err.strip().splitlines()[-1] == "stopped: the output's reader went away (broken pipe)", err
    assert json.loads(stats.read_text())["frames"] == 30
