"""Recorder: the rendered frames encoded on a thread of their own, so that a slow codec never slows the loop.

Frames wait in a short queue. From a live source, when the encoder falls behind, frames are left out of the
recording (and counted) instead of the loop waiting for the encoder (a VP9 recording at 640x480 used to drop
the loop from 131 to 2.4 FPS); each frame carries its capture time, so the recording still plays at the speed
the scene moved. From a file, every frame is recorded: the loop waits for the encoder, as nothing is lost
by waiting.

With PyAV (the device install brings it: its wheels carry FFmpeg with libx264 and libvpx on x86-64 and
aarch64), .mp4, .m4v, .mov and .mkv are H.264 and .webm is VP9, encoded with real-time settings: what every
browser plays. Without it, OpenCV's writer (opencv-python's FFmpeg has no H.264 encoder: .mp4 falls back to
mp4v, which browsers do not play, and says so).
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable
from fractions import Fraction
from pathlib import Path

import numpy as np

from edgeseg.camera.record import check_record_path, open_video_writer

# container suffix -> (PyAV format, codecs to try best first, their options): real-time settings, browser-playable
PYAV = {
    ".mp4": ("mp4", ("libx264", "h264"), {"preset": "veryfast", "tune": "zerolatency", "crf": "23"}),
    ".m4v": ("mp4", ("libx264", "h264"), {"preset": "veryfast", "tune": "zerolatency", "crf": "23"}),
    ".mov": ("mov", ("libx264", "h264"), {"preset": "veryfast", "tune": "zerolatency", "crf": "23"}),
    ".mkv": ("matroska", ("libx264", "h264"), {"preset": "veryfast", "tune": "zerolatency", "crf": "23"}),
    ".webm": ("webm", ("libvpx-vp9", "libvpx"), {"deadline": "realtime", "cpu-used": "8", "row-mt": "1", "crf": "33"}),
}
QUEUE_FRAMES = 8  # frames waiting for the encoder; more are left out of the recording


class Recorder:
    """Writes frames to `tmp` (the recording's temp file) for the container `path` names, on its own thread.

    Args:
        path: the recording's final name (its suffix picks the container and the codec).
        tmp: the file written until the recording is complete.
        fps: the frame rate the source declares (the OpenCV writer's rate; PyAV uses the frames' times).
        size: the frames' (width, height).
        log: where the codec line goes.
        live: frames come in real time: leave out what the encoder cannot keep up with (else wait for it).
    """

    def __init__(
        self,
        path: Path,
        tmp: Path,
        fps: float,
        size: tuple[int, int],
        log: Callable[[str], None],
        live: bool = True,
    ):
        check_record_path(path)
        self.live = live
        self.path, self.size, self.dropped, self.written = Path(path), size, 0, 0
        self.error: BaseException | None = None
        self._q: queue.Queue = queue.Queue(maxsize=QUEUE_FRAMES)
        self._backend = _pyav_backend(path, tmp, size, fps, log) or _OpenCVBackend(path, tmp, fps, size, log)
        self._thread = threading.Thread(target=self._run, name="edgeseg-record", daemon=True)
        self._thread.start()

    def write(self, image: np.ndarray, t_ns: int) -> None:
        """Queue one frame (BGR, the recording's size) taken at `t_ns` (perf_counter_ns); never waits."""
        if self.error is not None:
            raise self.error
        if not self.live:
            while self._thread.is_alive():  # a file: every frame, at the encoder's pace
                try:
                    self._q.put((image, t_ns), timeout=0.5)
                    return
                except queue.Full:
                    continue
            if self.error is not None:
                raise self.error
            return
        try:
            self._q.put_nowait((image, t_ns))
        except queue.Full:
            self.dropped += 1

    def close(self) -> None:
        """Encode what is queued, finish the file, and raise what the encoder raised."""
        self._q.put((None, 0))
        self._thread.join()
        if self.error is not None:
            raise self.error

    def _run(self) -> None:
        try:
            while True:
                image, t_ns = self._q.get()
                if image is None:
                    break
                self._backend.write(image, t_ns)
                self.written += 1
        except BaseException as e:  # kept, and raised on the loop's thread by write() or close()
            self.error = e
        finally:
            try:
                self._backend.close()
            except BaseException as e:
                self.error = self.error or e


def _pyav_backend(path: Path, tmp: Path, size: tuple[int, int], fps: float, log: Callable[[str], None]):
    """A PyAV encoder for the container, or None without PyAV or a codec it has."""
    spec = PYAV.get(Path(path).suffix.lower())
    try:
        import av
    except ImportError:
        return None
    if spec is None:
        return None
    fmt, codecs, options = spec
    codec = next((c for c in codecs if c in av.codecs_available), None)
    if codec is None:
        return None
    log(f"recording {Path(path).name} as {codec} (PyAV {av.__version__}; plays in browsers)")
    return _PyAVBackend(tmp, fmt, codec, options, size, fps)


class _PyAVBackend:
    """Frames are stamped in frame periods of the source's rate: by their capture time, so a live source that
    leaves frames out plays at the scene's speed, and never two on one stamp, so a file read faster than real
    time plays at its own rate (the muxer refuses stamps closer than the stream's time base)."""

    def __init__(self, tmp: Path, fmt: str, codec: str, options: dict, size: tuple[int, int], fps: float):
        import av

        self.av = av
        self.rate = Fraction(fps or 30.0).limit_denominator(1001)
        self.container = av.open(str(tmp), "w", format=fmt)
        w, h = size
        self.stream = self.container.add_stream(codec, rate=self.rate, options=options)
        self.stream.width, self.stream.height = w - w % 2, h - h % 2  # 4:2:0 needs even sides
        self.stream.pix_fmt = "yuv420p"
        self.stream.codec_context.time_base = 1 / self.rate
        self.t0: int | None = None
        self.last_pts = -1

    def write(self, image: np.ndarray, t_ns: int) -> None:
        if self.t0 is None:
            self.t0 = t_ns
        pts = max(self.last_pts + 1, round((t_ns - self.t0) * self.rate / 1_000_000_000))
        self.last_pts = pts
        h, w = self.stream.height, self.stream.width
        frame = self.av.VideoFrame.from_ndarray(np.ascontiguousarray(image[:h, :w]), format="bgr24")
        frame.pts, frame.time_base = pts, self.stream.codec_context.time_base
        for packet in self.stream.encode(frame):
            self.container.mux(packet)

    def close(self) -> None:
        try:
            for packet in self.stream.encode():
                self.container.mux(packet)
        finally:
            self.container.close()


class _OpenCVBackend:
    def __init__(self, path: Path, tmp: Path, fps: float, size: tuple[int, int], log: Callable[[str], None]):
        self.writer = open_video_writer(path, tmp, fps, size, log)

    def write(self, image: np.ndarray, t_ns: int) -> None:
        self.writer.write(image)

    def close(self) -> None:
        self.writer.release()
