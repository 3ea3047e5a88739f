import json
import signal
import subprocess
import sys
import threading
import time
import urllib.request

import cv2
import numpy as np
import pytest

from edgeseg.camera.frames import CorruptFrame, EndOfStream, FrameSource
from edgeseg.camera.loop import LoopOptions, run_loop
from edgeseg.camera.reader import CaptureThread
from edgeseg.camera.sources import ImageFolderSource, SyntheticSource, open_source
from edgeseg.errors import SourceError
from edgeseg.predictors.tflite import Segmenter
from tests.conftest import ROOT
from tests.toy import solid


class Frames(FrameSource):
    """Generated frames. fail_after: the source stops delivering (returns None) after that many frames, and
    reopen() brings it back (counting reopens); stall_s: one read blocks that long; then: raised at the end."""

    def __init__(
        self,
        n,
        hw=(40, 60),
        then=None,
        live=False,
        fail_after=None,
        stall_at=None,
        stall_s=0.0,
        corrupt_at=(),
        delay_s=0.0,
    ):
        self.n, self.hw, self.then, self.live, self.can_reconnect = n, hw, then, live, live
        self.fail_after, self.stall_at, self.stall_s, self.corrupt_at = fail_after, stall_at, stall_s, corrupt_at
        self.delay_s = delay_s
        self.i = self.reopens = 0
        self.failed = False
        self.name = "fake"

    def read(self):
        if self.delay_s:
            time.sleep(self.delay_s)
        if self.fail_after is not None and self.i == self.fail_after and not self.failed:
            self.failed = True
            return None
        if self.i >= self.n:
            if self.then:
                raise self.then
            if self.live:
                raise EndOfStream  # a live source's None would mean "dropped out, reconnect"
            return None
        self.i += 1
        if self.i == self.stall_at:
            time.sleep(self.stall_s)
        if self.i in self.corrupt_at:
            raise CorruptFrame("bad bytes")
        f = solid((0, 0, 255), self.hw)
        f[:, self.i % self.hw[1] :] = (0, 255, 0)
        return f

    def reopen(self):
        self.reopens += 1

    @property
    def fps(self):
        return 15.0


def count_frames(path):
    cap = cv2.VideoCapture(str(path))
    n = 0
    while cap.read()[0]:
        n += 1
    cap.release()
    return n


@pytest.fixture
def seg(toy_models):
    return Segmenter(toy_models["scores_int8"], threads=1)


def quiet(**kw):
    return LoopOptions(log=lambda *_: None, **kw)


def test_files_go_through_in_order_with_stage_stats(seg):
    stats = run_loop(seg, Frames(9), quiet())
    d = stats.to_dict()
    assert d["frames"] == 9 and d["dropped"] == 0 and not d["interrupted"]
    assert set(d["stages"]) == {"capture", "preprocess", "invoke", "postprocess", "render"}
    assert d["stages"]["invoke"]["runs"] == 9 and d["frame_age"]["runs"] == 9
    assert d["frame_age"]["p50_ms"] >= d["stages"]["invoke"]["p50_ms"]


def test_max_frames_recording_and_saved_masks(seg, tmp_path):
    stats = run_loop(seg, Frames(50), quiet(record=tmp_path / "o.mp4", max_frames=7, save_masks=tmp_path / "m"))
    assert stats.frames == 7 and count_frames(tmp_path / "o.mp4") == 7
    masks = sorted((tmp_path / "m").iterdir())
    assert [p.name for p in masks] == [f"{i:06d}.png" for i in range(7)]
    m = cv2.imread(str(masks[3]), cv2.IMREAD_UNCHANGED)
    expected = seg.segment(_frame(4))
    assert m.shape == (40, 60) and np.array_equal(m, expected)


def test_saved_frames_are_the_rendered_view(seg, tmp_path):
    hw = (120, 200)
    opts = quiet(max_frames=3, view="side-by-side", legend=False, save_frames=tmp_path / "f")
    assert run_loop(seg, Frames(50, hw=hw), opts).frames == 3
    frames = sorted((tmp_path / "f").iterdir())
    assert [p.name for p in frames] == [f"{i:06d}.png" for i in range(3)]
    img = cv2.imread(str(frames[1]))
    assert img.shape == (120, 400, 3)  # the frame and its mask side by side
    assert np.array_equal(img[-30:, :200], _frame(2, hw)[-30:])  # the left half is the frame (the HUD is at the top)
    assert not np.array_equal(img[-30:, 200:], img[-30:, :200])  # and the right half is not


def test_a_headless_run_draws_nothing_and_a_saving_run_draws_every_frame(seg, tmp_path, monkeypatch):
    # the overlay is most of the render thread's work: a run that shows, records, serves and saves no frames
    # must not draw it; one that saves frames draws each one
    from edgeseg.camera.render import Renderer

    drawn = []
    real = Renderer.__call__

    def counting(self, *a, **kw):
        drawn.append(1)
        return real(self, *a, **kw)

    monkeypatch.setattr(Renderer, "__call__", counting)
    stats = run_loop(seg, Frames(6), quiet(save_masks=tmp_path / "m"))
    assert stats.frames == 6 and drawn == [] and len(list((tmp_path / "m").iterdir())) == 6
    assert run_loop(seg, Frames(4), quiet(save_frames=tmp_path / "f")).frames == 4 and len(drawn) == 4


def _frame(i, hw=(40, 60)):
    f = solid((0, 0, 255), hw)
    f[:, i % hw[1] :] = (0, 255, 0)
    return f


def test_ctrl_c_leaves_a_playable_recording(seg, tmp_path):
    stats = run_loop(seg, Frames(5, then=KeyboardInterrupt()), quiet(record=tmp_path / "o.mp4"))
    assert stats.interrupted and stats.frames == 5 and count_frames(tmp_path / "o.mp4") == 5


def test_ctrl_c_before_the_first_frame_is_a_stop_not_a_source_fault(seg, tmp_path):
    """A stop (Ctrl-C, SIGTERM) that lands before any frame was counted ends the run as interrupted, not as "no
    frame could be read" (CI saw a SIGTERM'd publishing run exit 1 with that, where 143 was due)."""
    import _thread
    import threading

    for record in (None, tmp_path / "o.mp4"):  # a recording with no frame is not put in place (nor an error)
        timer = threading.Timer(0.5, _thread.interrupt_main)
        timer.start()
        try:
            stats = run_loop(seg, Frames(3, stall_at=1, stall_s=3.0), quiet(record=record))
        finally:
            timer.cancel()
        assert stats.interrupted and stats.stopped_by == "SIGINT" and stats.frames == 0
    assert list(tmp_path.iterdir()) == []
    # a source that gives nothing, recording: the source's error, not the missing recording's
    with pytest.raises(SourceError, match="no frame could be read"):
        run_loop(seg, Frames(0), quiet(record=tmp_path / "o.mp4"))
    assert list(tmp_path.iterdir()) == []


def test_an_error_discards_the_half_recording(seg, tmp_path):
    with pytest.raises(RuntimeError, match="camera fell off"):
        run_loop(seg, Frames(3, then=RuntimeError("camera fell off")), quiet(record=tmp_path / "o.mp4"))
    assert list(tmp_path.iterdir()) == []


def test_live_source_keeps_only_the_newest_frame(toy_models):
    class Slow:
        """A model that takes 20 ms: a 2 ms camera must drop frames, not queue them."""

        def __init__(self, inner):
            self.inner, self.spec = inner, inner.spec

        def prepare(self, f):
            return self.inner.prepare(f)

        def invoke(self, t):
            time.sleep(0.02)
            return self.inner.invoke(t)

        def finish(self, o, g):
            return self.inner.finish(o, g)

    src = Frames(150, live=True, delay_s=0.002)
    stats = run_loop(Slow(Segmenter(toy_models["scores_int8"])), src, quiet())
    d = stats.to_dict()
    assert d["dropped"] > 40 and d["frames"] + d["dropped"] == 150
    assert d["frame_age"]["p90_ms"] < 200  # no backlog: a frame is never older than a few inference times


def test_reader_hands_over_the_newest_frame():
    src = Frames(10, live=True)
    reader = CaptureThread(src, log=lambda *_: None).start()
    while not reader.ended:
        time.sleep(0.01)
    item = reader.get(timeout=1)
    assert item.index == 9 and reader.dropped == 9 and reader.get(timeout=0.1) is None
    reader.stop()


def test_live_source_that_drops_out_is_reopened(seg):
    logs = []
    src = Frames(20, live=True, fail_after=5)
    stats = run_loop(seg, src, LoopOptions(log=logs.append))
    assert src.reopens == 1 and stats.reconnects == 1 and stats.frames + stats.dropped == 20
    assert any("reconnecting" in m for m in logs) and any("reconnected" in m for m in logs)


def test_no_reconnect_ends_the_run(seg):
    logs = []
    src = Frames(20, live=True, fail_after=5)
    stats = run_loop(seg, src, LoopOptions(reconnect=False, log=logs.append))
    assert src.reopens == 0 and stats.frames + stats.dropped == 5 and any("--no-reconnect" in m for m in logs)


def test_stalled_source_is_reported_and_waited_for(seg, monkeypatch):
    import edgeseg.camera.loop as loop

    monkeypatch.setattr(loop, "STALL_WARN_S", 0.3)
    logs = []
    stats = run_loop(seg, Frames(6, live=True, stall_at=3, stall_s=1.0), LoopOptions(log=logs.append))
    assert any("no frame from fake" in m for m in logs) and stats.frames + stats.dropped == 6


def test_corrupt_frames_are_skipped_and_counted(seg, tmp_path):
    stats = run_loop(seg, Frames(8, corrupt_at=(2, 5)), quiet())
    assert stats.frames == 6 and stats.corrupt == 2
    folder = tmp_path / "imgs"
    folder.mkdir()
    for i in range(4):
        cv2.imwrite(str(folder / f"{i}.png"), solid((0, 255, 0)))
    (folder / "2.png").write_bytes(b"garbage")
    stats = run_loop(seg, ImageFolderSource(str(folder)), quiet())
    assert stats.frames == 3 and stats.corrupt == 1


def test_views_and_palette(seg):
    from edgeseg.camera.render import Renderer

    frame, mask = _frame(30), np.zeros((40, 60), np.uint8)
    mask[:, 30:] = 1
    r, g, b = seg.spec.colours[1]
    m = Renderer(seg.spec, "mask", legend=False)(frame, mask)
    assert m[0, 45].tolist() == [b, g, r]  # spec colours are RGB, drawn in BGR
    assert Renderer(seg.spec, "side-by-side", legend=False)(frame, mask).shape == (40, 120, 3)
    ov = Renderer(seg.spec, "overlay", alpha=0.0, legend=False)(frame, mask)
    assert np.array_equal(ov, frame)


def test_sources(tmp_path):
    from edgeseg.synthetic import write_video

    v = write_video(tmp_path / "v.mp4", frames=11, hw=(32, 48))
    with open_source(source=str(v)) as src:
        n = 0
        while src.read() is not None:
            n += 1
    assert n == 11 and not src.live
    with pytest.raises(SourceError, match="no camera at index 9"):
        open_source(camera=9)
    with pytest.raises(SourceError, match="no such file"):
        open_source(source=str(tmp_path / "x.mp4"))
    with pytest.raises(SourceError, match="no images"):
        open_source(source=str(tmp_path / "*.jpg"))
    with pytest.raises(SourceError, match="Picamera2"):
        open_source(picamera=True)
    syn = open_source(source="synthetic:64x48")
    assert isinstance(syn, SyntheticSource) and syn.read().shape == (48, 64, 3)


def test_picamera2_source_asks_for_a_lores_stream(monkeypatch):
    """Picamera2 is not on this machine: a stand-in module records what the source asks the camera for."""
    import types

    calls = {}

    class FakeCam:
        def create_video_configuration(self, main, lores=None):
            calls["main"], calls["lores"] = main, lores
            return {"main": main, "lores": lores}

        def configure(self, c):
            calls["configured"] = c

        def start(self):
            calls["started"] = True

        def capture_array(self, name):
            w, h = calls[name]["size"]
            return np.zeros((h * 3 // 2, w), np.uint8) if name == "lores" else np.zeros((h, w, 3), np.uint8)

        def stop(self):
            pass

        def close(self):
            pass

    monkeypatch.setitem(sys.modules, "picamera2", types.SimpleNamespace(Picamera2=FakeCam))
    src = open_source(picamera=True, size_wh=(640, 480), lores_wh=(96, 64))
    assert calls["lores"] == {"size": (96, 64), "format": "YUV420"} and src.live and src.can_reconnect
    assert src.read().shape == (64, 96, 3)
    src = open_source(picamera=True, size_wh=(640, 480), lores_wh=(513, 513))  # Coral's DeepLab input
    assert calls["lores"]["size"] == (514, 514)  # YUV420 needs even sizes


def _padded_i420(bgr: np.ndarray, stride: int) -> np.ndarray:
    """What the ISP hands over: I420 with every row padded to `stride` bytes (U and V rows to stride / 2)."""
    h, w = bgr.shape[:2]
    packed = cv2.cvtColor(bgr, cv2.COLOR_BGR2YUV_I420)  # (h * 3 / 2, w), rows not padded
    y = packed[:h]
    u = packed[h : h + h // 4].reshape(h // 2, w // 2)
    v = packed[h + h // 4 :].reshape(h // 2, w // 2)

    def pad(plane, width):
        out = np.full((plane.shape[0], width), 77, np.uint8)  # junk in the padding
        out[:, : plane.shape[1]] = plane
        return out

    return np.vstack(
        [pad(y, stride), pad(u, stride // 2).reshape(h // 4, stride), pad(v, stride // 2).reshape(h // 4, stride)]
    )


@pytest.mark.parametrize("w, h, stride", [(224, 224, 256), (300, 200, 320), (96, 64, 128)])
def test_padded_yuv420_lores_buffers_are_cropped_to_the_stream(w, h, stride, monkeypatch):
    import types

    from edgeseg.camera.picamera import yuv420_to_bgr

    rng = np.random.default_rng(0)
    bgr = cv2.resize(rng.integers(0, 256, (h // 8, w // 8, 3), dtype=np.uint8), (w, h))  # smooth: chroma survives
    expected = cv2.cvtColor(cv2.cvtColor(bgr, cv2.COLOR_BGR2YUV_I420), cv2.COLOR_YUV420p2BGR)
    got = yuv420_to_bgr(_padded_i420(bgr, stride), (w, h))
    assert got.shape == (h, w, 3)
    assert np.abs(got.astype(int) - expected.astype(int)).max() <= 1  # the padding left no trace
    unpadded_read = cv2.cvtColor(_padded_i420(bgr, stride), cv2.COLOR_YUV420p2BGR)  # what the old code did
    assert unpadded_read.shape == (h, stride, 3)

    class PaddingCam:  # a stand-in Picamera2 whose lores stream has padded rows, as the ISP's do
        def create_video_configuration(self, main, lores=None):
            return {"main": main, "lores": lores}

        def configure(self, c):
            pass

        def start(self):
            pass

        def capture_array(self, name):
            return _padded_i420(bgr, stride)

        def stop(self):
            pass

        def close(self):
            pass

    monkeypatch.setitem(sys.modules, "picamera2", types.SimpleNamespace(Picamera2=PaddingCam))
    frame = open_source(picamera=True, size_wh=(640, 480), lores_wh=(w, h)).read()
    assert frame.shape == (h, w, 3) and np.abs(frame.astype(int) - expected.astype(int)).max() <= 1
    from edgeseg.camera.frames import CorruptFrame

    with pytest.raises(CorruptFrame):
        yuv420_to_bgr(np.zeros((10, 10), np.uint8), (w, h))


# ------------------------------------------------------------------------------------------ browser view
def _mjpeg_frames(url, n, timeout=10):
    """Read n JPEG parts from a multipart MJPEG stream with a real HTTP client."""
    frames = []
    with urllib.request.urlopen(url, timeout=timeout) as r:
        assert r.headers["Content-Type"].startswith("multipart/x-mixed-replace")
        while len(frames) < n:
            line = r.readline()
            if line.lower().startswith(b"content-length:"):
                length = int(line.split(b":")[1])
                r.readline()
                frames.append(r.read(length))
    return frames


def test_mjpeg_stream_stats_and_page(seg):
    from edgeseg.camera.serve import parse_serve

    assert parse_serve("8080") == ("127.0.0.1", 8080) and parse_serve("0.0.0.0:81") == ("0.0.0.0", 81)
    with pytest.raises(SourceError):
        parse_serve("nope")
    result = {}

    def loop():
        result["stats"] = run_loop(
            seg, Frames(100000, live=False, delay_s=0.01), quiet(serve=("127.0.0.1", 0), duration=4.0)
        )

    server_url = {}
    import edgeseg.camera.serve

    real = edgeseg.camera.serve.FrameServer

    class Spy(real):
        def __init__(self, *a, **k):
            super().__init__(*a, **k)
            server_url["url"] = f"http://127.0.0.1:{self.port}"

    edgeseg.camera.serve.FrameServer = Spy
    try:
        t = threading.Thread(target=loop)
        t.start()
        deadline = time.time() + 5
        while "url" not in server_url and time.time() < deadline:
            time.sleep(0.05)
        base = server_url["url"]
        assert b"/stream.mjpg" in urllib.request.urlopen(base + "/", timeout=5).read()
        frames = _mjpeg_frames(base + "/stream.mjpg", 3)
        images = [cv2.imdecode(np.frombuffer(f, np.uint8), cv2.IMREAD_COLOR) for f in frames]
        assert all(im is not None and im.shape == (40, 60, 3) for im in images)
        assert not np.array_equal(images[0], images[-1])  # the picture moves
        s1 = json.loads(urllib.request.urlopen(base + "/stats.json", timeout=5).read())
        time.sleep(0.5)
        s2 = json.loads(urllib.request.urlopen(base + "/stats.json", timeout=5).read())
        assert s2["frames"] > s1["frames"] > 0 and s2["invoke_p50_ms"] > 0
        t.join(10)
    finally:
        edgeseg.camera.serve.FrameServer = real
    assert result["stats"].frames > 0


# ------------------------------------------------------------------------------------------------ SIGINT
def test_sigint_in_a_subprocess_exits_130_with_a_playable_file(toy_models, tmp_path):
    out = tmp_path / "o.mp4"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "edgeseg",
            "run",
            str(toy_models["scores_int8"]),
            "--source",
            "synthetic:96x64",
            "--no-show",
            "--realtime",
            "--record",
            str(out),
            "--stats",
            str(tmp_path / "s.json"),
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        line = proc.stdout.readline()
        assert "Ctrl-C stops" in line, line + proc.stderr.read()
        time.sleep(1.5)
        proc.send_signal(signal.SIGINT)
        stdout, stderr = proc.communicate(timeout=30)
    finally:
        proc.kill()
    assert proc.returncode == 130, stderr
    assert "Traceback" not in stderr and "(interrupted)" in stdout
    s = json.loads((tmp_path / "s.json").read_text())
    assert s["interrupted"] and s["frames"] > 10
    assert count_frames(out) == s["frames"]
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no temp file left behind


def test_closing_the_window_or_pressing_q_stops_the_loop(seg, monkeypatch):
    """A headless stand-in for HighGUI: the window 'closes' (WND_PROP_VISIBLE 0) once 3 frames were shown."""
    import edgeseg.camera.loop as loop

    shown = []
    monkeypatch.setattr(loop.cv2, "imshow", lambda name, img: shown.append(name))
    monkeypatch.setattr(loop.cv2, "waitKey", lambda ms: -1)
    monkeypatch.setattr(loop.cv2, "getWindowProperty", lambda name, prop: 0.0 if len(shown) >= 3 else 1.0)
    monkeypatch.setattr(loop.cv2, "destroyAllWindows", lambda: None)
    stats = run_loop(seg, Frames(200), quiet(show=True))
    assert 3 <= len(shown) and stats.frames < 200 and not stats.interrupted
    shown.clear()
    monkeypatch.setattr(loop.cv2, "getWindowProperty", lambda name, prop: 1.0)
    monkeypatch.setattr(loop.cv2, "waitKey", lambda ms: ord("q") if len(shown) >= 2 else -1)
    stats = run_loop(seg, Frames(200), quiet(show=True))
    assert stats.frames < 200


def test_the_hud_is_drawn_once_on_a_dark_box_and_its_fps_is_a_window_rate():
    from edgeseg.overlay import draw_hud
    from edgeseg.stats import RateMeter

    for background in (255, 0):  # a white sky and a black night: the text stands out from the box on both
        img = np.full((240, 320, 3), background, np.uint8)
        draw_hud(img, ["12.5 FPS", "inference 57.0 ms"])
        box = img[4:30, 4:60].astype(int)  # inside the box, across the first letters
        text = (box >= 200).all(axis=-1)  # the strokes (thin at this size, anti-aliased)
        ground = np.median(box[~text])  # the box itself (anti-aliased edges aside)
        assert text.sum() > 20 and ground <= 0.4 * 255 + 1  # white strokes on a box at most 40% of white
        assert 255 - ground >= 150  # contrast between text and box
        assert (img[120:, 200:] == background).all()  # nothing drawn outside the box
    meter = RateMeter(window_s=2.0)
    assert meter.tick(0) is None  # no rate from one frame: the HUD says "-- FPS", never 0.0
    rates = [meter.tick(int(k * 1e8)) for k in range(1, 40)]  # 10 frames a second
    assert rates[-1] == pytest.approx(10.0) and meter.rate() == rates[-1]


def test_record_webm_plays_anywhere_and_mp4_says_what_it_could_encode(seg, tmp_path, monkeypatch):
    """With PyAV (the device install): .webm is VP9 and .mp4 is H.264, what browsers play. Without it, OpenCV's
    writer: VP9 still, and for .mp4 the mp4v fallback, said with the fix."""
    pytest.importorskip("av", reason="PyAV comes with the device extra")
    logged = []
    opts = LoopOptions(record=tmp_path / "o.webm", max_frames=6, log=logged.append)
    stats = run_loop(seg, Frames(50), opts)
    cap = cv2.VideoCapture(str(tmp_path / "o.webm"))
    assert int(cap.get(cv2.CAP_PROP_FOURCC)).to_bytes(4, "little") in (b"VP90", b"VP80")
    cap.release()
    assert stats.frames == 6 and count_frames(tmp_path / "o.webm") == 6
    assert logged[0].startswith("recording o.webm as libvpx-vp9 (PyAV") and "plays in browsers" in logged[0]
    run_loop(seg, Frames(50), LoopOptions(record=tmp_path / "o.mp4", max_frames=3, log=logged.append))
    cap = cv2.VideoCapture(str(tmp_path / "o.mp4"))
    fourcc = int(cap.get(cv2.CAP_PROP_FOURCC)).to_bytes(4, "little").decode(errors="replace").lower()
    cap.release()
    assert count_frames(tmp_path / "o.mp4") == 3 and fourcc in ("avc1", "h264"), fourcc  # H.264
    import edgeseg.camera.recorder as recorder

    monkeypatch.setattr(recorder, "_pyav_backend", lambda *a: None)  # an install without PyAV
    logged.clear()
    run_loop(seg, Frames(50), LoopOptions(record=tmp_path / "f.mp4", max_frames=3, log=logged.append))
    assert count_frames(tmp_path / "f.mp4") == 3
    assert any("cannot encode H.264" in m and ".webm" in m for m in logged), logged
    from edgeseg.camera.record import check_record_path
    from edgeseg.errors import SourceError

    with pytest.raises(SourceError, match=r"--record writes \.mp4"):
        check_record_path(tmp_path / "o.gif")
