import cv2
import numpy as np
import pytest

from camera.loop import LoopOptions, run_loop
from camera.sources import FrameSource, open_source
from edgeseg.errors import SourceError
from edgeseg.runtime import Segmenter
from tests.toy import solid


class Frames(FrameSource):
    """n generated frames, then the end (or an exception, to stand in for Ctrl-C)."""

    def __init__(self, n, hw=(40, 60), then=None):
        self.n, self.hw, self.then, self.i = n, hw, then, 0
        self.name = "fake"
        self.closed = False

    def read(self):
        if self.i >= self.n:
            if self.then:
                raise self.then
            return None
        self.i += 1
        f = solid((0, 0, 255), self.hw)
        f[:, self.i % self.hw[1] :] = (0, 255, 0)
        return f

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


def test_loop_until_the_source_ends(toy_models):
    seg = Segmenter(toy_models["scores_int8"])
    stats = run_loop(seg, Frames(9), LoopOptions(show=False))
    d = stats.to_dict()
    assert d["frames"] == 9 and not d["interrupted"]
    assert set(d["stages"]) == {"capture", "preprocess", "invoke", "postprocess", "render"}
    assert d["stages"]["invoke"]["runs"] == 9


def test_max_frames_and_recording(toy_models, tmp_path):
    seg = Segmenter(toy_models["scores_int8"])
    stats = run_loop(seg, Frames(50), LoopOptions(show=False, record=tmp_path / "o.mp4", max_frames=7))
    assert stats.frames == 7 and count_frames(tmp_path / "o.mp4") == 7
    assert [p.name for p in tmp_path.iterdir()] == ["o.mp4"]


def test_ctrl_c_leaves_a_playable_recording(toy_models, tmp_path):
    seg = Segmenter(toy_models["scores_int8"])
    stats = run_loop(seg, Frames(5, then=KeyboardInterrupt()), LoopOptions(show=False, record=tmp_path / "o.mp4"))
    assert stats.interrupted and stats.frames == 5 and count_frames(tmp_path / "o.mp4") == 5


def test_an_error_discards_the_half_recording(toy_models, tmp_path):
    seg = Segmenter(toy_models["scores_int8"])
    with pytest.raises(RuntimeError):
        run_loop(seg, Frames(3, then=RuntimeError("camera fell off")), LoopOptions(show=False,
                                                                                  record=tmp_path / "o.mp4"))
    assert list(tmp_path.iterdir()) == []


def test_overlay_uses_spec_colours_in_bgr(toy_models, tmp_path):
    from edgeseg.overlay import blend, palette_bgr

    seg = Segmenter(toy_models["scores_int8"])
    lut = palette_bgr(seg.spec)
    r, g, b = seg.spec.colours[2]
    assert lut[2].tolist() == [b, g, r]
    out = blend(np.zeros((2, 2, 3), np.uint8), np.full((2, 2), 2, np.uint8), lut, alpha=1.0)
    assert out[0, 0].tolist() == [b, g, r]


def test_video_file_source_reads_every_frame(tmp_path):
    from edgeseg.synthetic import write_video

    v = write_video(tmp_path / "v.mp4", frames=11, hw=(32, 48))
    with open_source(source=str(v)) as src:
        n = 0
        while src.read() is not None:
            n += 1
    assert n == 11 and not src.live


def test_sources_that_do_not_open(tmp_path):
    with pytest.raises(SourceError, match="no camera at index 9"):
        open_source(camera=9)
    with pytest.raises(SourceError, match="no such file"):
        open_source(source=str(tmp_path / "x.mp4"))
