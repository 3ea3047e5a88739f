"""The frame sources (a camera index, a video file, an image folder or glob, a stream URL, generated frames,
the Raspberry Pi camera) behind edgeseg.camera.frames.FrameSource, and open_source, which picks one."""

from __future__ import annotations

import contextlib
import errno
import glob as globlib
import os
import time
from pathlib import Path

import cv2
import numpy as np

from edgeseg.camera.frames import CorruptFrame, FrameSource, check_frame
from edgeseg.errors import DataError, SourceError
from edgeseg.images import IMAGE_EXTS
from edgeseg.limits import MAX_CAMERA_INDEX, check_frame_hw, parse_wh

PROBE_INDICES = range(0, 10)
STREAM_TIMEOUT_MS = 5000


@contextlib.contextmanager
def _quiet_opencv():
    """OpenCV prints its own warnings for a camera that is not there; we say it once, in our words."""
    logging = getattr(cv2.utils, "logging", None)
    previous = logging.getLogLevel() if logging else None
    if logging:
        logging.setLogLevel(logging.LOG_LEVEL_SILENT)
    try:
        yield
    finally:
        if logging:
            logging.setLogLevel(previous)


class CaptureSource(FrameSource):
    """cv2.VideoCapture on a camera index, a video file or a stream URL (FFmpeg, with timeouts).

    Args:
        target: a camera index, a file or a URL.
        live: frames come in real time (a camera or a stream), not from a file.
        size_wh: ask a camera for this (width, height).
        fps: ask a camera for this frame rate.
    """

    def __init__(self, target: int | str, live: bool, size_wh: tuple[int, int] | None = None, fps: float | None = None):
        self.target, self.live, self.size_wh, self.want_fps = target, live, size_wh, fps
        self.can_reconnect = live
        self.name = f"camera {target}" if isinstance(target, int) else str(target)
        self.frames_read = 0
        self.cap = self._open()

    def _open(self) -> cv2.VideoCapture:
        with _quiet_opencv():
            if isinstance(self.target, str) and "://" in self.target:
                cap = cv2.VideoCapture(
                    self.target,
                    cv2.CAP_FFMPEG,
                    [
                        cv2.CAP_PROP_OPEN_TIMEOUT_MSEC,
                        STREAM_TIMEOUT_MS,
                        cv2.CAP_PROP_READ_TIMEOUT_MSEC,
                        STREAM_TIMEOUT_MS,
                    ],
                )
            else:
                cap = cv2.VideoCapture(self.target)
        if not cap.isOpened():
            cap.release()
            raise SourceError(self._not_opened())
        if self.size_wh:
            cap.set(cv2.CAP_PROP_FRAME_WIDTH, self.size_wh[0])
            cap.set(cv2.CAP_PROP_FRAME_HEIGHT, self.size_wh[1])
        if self.want_fps:
            cap.set(cv2.CAP_PROP_FPS, self.want_fps)
        if self.live:
            cap.set(cv2.CAP_PROP_BUFFERSIZE, 1)  # keep the driver's queue short: the newest frame matters
        return cap

    def _not_opened(self) -> str:
        if isinstance(self.target, int):
            found = available_cameras(exclude=self.target)
            hint = f"cameras that do open: {', '.join(map(str, found))}" if found else "no camera opens on this machine"
            return f"no camera at index {self.target} ({hint})"
        if "://" not in self.target and not Path(self.target).exists():
            return f"{self.target}: no such file"
        return f"{self.target}: cannot open as a video (corrupt file, unsupported codec or unreachable stream)"

    @property
    def fps(self) -> float | None:
        """The frame rate the capture declares, where it is plausible."""
        v = self.cap.get(cv2.CAP_PROP_FPS)
        return v if v and 0 < v < 1000 else None

    def read(self) -> np.ndarray | None:
        """The next frame (None at the end or a drop-out; a damaged file's early end is noted in ended_early)."""
        ok, frame = self.cap.read()
        if not ok:
            if not self.live:
                self._check_complete()
            return None
        self.frames_read += 1
        return check_frame(frame)

    def _check_complete(self) -> None:
        """A file that ends well before the frame count its container declares is damaged or truncated: say so
        (a video cut mid-file used to end the run as if it were complete, with "corrupt 0" and exit 0)."""
        declared = int(self.cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
        short = declared - self.frames_read
        if declared > 0 and short > max(1, declared // 100):
            self.ended_early = (
                f"{self.name} ended after {self.frames_read} of the {declared} frames its header "
                "declares (damaged or truncated file)"
            )

    def reopen(self) -> None:
        """Release the capture and open it again (after a live source dropped out)."""
        self.cap.release()
        self.cap = self._open()

    def close(self) -> None:
        """Release the capture."""
        self.cap.release()


class ImageFolderSource(FrameSource):
    """Images from a folder (sorted by name) or a glob pattern, one frame each."""

    def __init__(self, pattern: str):
        p = Path(pattern)
        if p.is_dir():
            files = sorted(f for f in p.iterdir() if f.suffix.lower() in IMAGE_EXTS)
        elif p.is_file():  # a file that exists is that file, even when its name has glob characters (shot[2].png)
            files = [p] if p.suffix.lower() in IMAGE_EXTS else []
        else:
            files = sorted(Path(f) for f in globlib.glob(pattern) if Path(f).suffix.lower() in IMAGE_EXTS)
        if not files:
            raise SourceError(f"{pattern}: no images")
        self.files, self.i, self.name = files, 0, pattern

    def read(self) -> np.ndarray | None:
        """The next image, None after the last; CorruptFrame for one that does not decode."""
        if self.i >= len(self.files):
            return None
        path = self.files[self.i]
        self.i += 1
        from edgeseg.images import read_image

        try:
            return read_image(path)
        except DataError as e:
            raise CorruptFrame(str(e)) from None


MAX_SYNTHETIC_SIDE = 4096
SYNTHETIC_CYCLE_BYTES = 256 * 2**20  # memory for the pre-rendered frames


class SyntheticSource(FrameSource):
    """Generated frames (edgeseg's synthetic scenes, drifting), for soak runs and for trying `run` with no
    camera. A cycle of `cycle` frames is rendered once and replayed, so reading costs a copy, not a render.

    Args:
        size_hw: the frames' (height, width).
        frames: stop after this many (None: never).
        seed: the same seed makes the same frames.
        cycle: frames rendered before they repeat (fewer for large frames).
    """

    def __init__(
        self, size_hw: tuple[int, int] = (480, 640), frames: int | None = None, seed: int = 0, cycle: int = 60
    ):
        from edgeseg.synthetic import background, random_shapes, render

        rng = np.random.default_rng(seed)
        h, w = size_hw
        if not (0 < h <= MAX_SYNTHETIC_SIDE and 0 < w <= MAX_SYNTHETIC_SIDE):
            raise SourceError(f"synthetic:{w}x{h}: at most {MAX_SYNTHETIC_SIDE} pixels a side")
        cycle = max(1, min(cycle, SYNTHETIC_CYCLE_BYTES // (h * w * 3)))  # large frames: a shorter cycle
        bg = np.clip(background(rng, (h + 64, w + 64)), 0, 255).astype(np.float32)
        shapes = random_shapes(rng, size_hw, n=6)
        self.cycle = []
        for t in range(cycle):
            ox, oy = 32 + int(30 * np.sin(2 * np.pi * t / cycle)), 32 + int(30 * np.cos(2 * np.pi * t / cycle))
            for s in shapes:
                s.x, s.y, s.angle = (s.x + s.vx) % w, (s.y + s.vy) % h, s.angle + s.spin
            self.cycle.append(render(bg[oy : oy + h, ox : ox + w], shapes, rng, noise=4.0)[0])
        self.frames, self.t = frames, 0
        self.name = f"synthetic {w}x{h}"

    def read(self) -> np.ndarray | None:
        """The next generated frame (a copy), None after `frames`."""
        if self.frames is not None and self.t >= self.frames:
            return None
        frame = self.cycle[self.t % len(self.cycle)].copy()
        self.t += 1
        return frame

    @property
    def fps(self) -> float | None:
        """30 frames per second, as a camera would deliver them."""
        return 30.0


def available_cameras(exclude: int | None = None) -> list[int]:
    """The camera indices 0-9 that open here (skipping `exclude`), probed quietly."""
    found = []
    with _quiet_opencv():
        for i in PROBE_INDICES:
            if i == exclude or (os.name == "posix" and not Path(f"/dev/video{i}").exists()):
                continue
            cap = cv2.VideoCapture(i)
            if cap.isOpened():
                found.append(i)
            cap.release()
    return found


def open_source(
    camera: int | None = None,
    source: str | None = None,
    picamera: bool = False,
    size_wh: tuple[int, int] | None = None,
    fps: float | None = None,
    lores_wh: tuple[int, int] | None = None,
) -> FrameSource:
    """A frame source for exactly one of a camera index, a source text or the Pi camera.

    Args:
        camera: a camera index.
        source: a video file, an image folder or glob, an rtsp:// or http:// URL, or "synthetic[:WxH]".
        picamera: the Raspberry Pi camera (Picamera2).
        size_wh: ask a camera for this (width, height).
        fps: ask a camera for this frame rate.
        lores_wh: the Pi camera's low-resolution stream size (the model's input size).
    """
    if sum(x is not None and x is not False for x in (camera, source, picamera or None)) != 1:
        raise SourceError("give exactly one of --camera N, --source FILE|DIR|GLOB|URL or --picamera")
    if picamera:
        from edgeseg.camera.picamera import Picamera2Source

        return Picamera2Source(size_wh or (640, 480), lores_wh)
    if camera is not None:
        if not 0 <= int(camera) <= MAX_CAMERA_INDEX:
            raise SourceError(f"camera index {camera} is outside 0..{MAX_CAMERA_INDEX}")
        if size_wh is not None:
            check_frame_hw(size_wh[::-1], "--camera-size")
        return CaptureSource(int(camera), live=True, size_wh=size_wh, fps=fps)
    if (source == "synthetic" or source.startswith("synthetic:")) and not Path(source).exists():
        size = source.partition(":")[2] or "640x480"
        return SyntheticSource(parse_wh(size, source))  # one line naming the source when the size is bad
    if "://" in source and not source.startswith("file://"):
        return CaptureSource(source, live=True)
    path = Path(source.removeprefix("file://"))
    _check_source_kind(path, source)
    if path.is_dir() or (not path.exists() and any(c in source for c in "*?[")):
        return ImageFolderSource(source)
    if not path.exists():
        raise SourceError(f"{source}: no such file")
    if path.suffix.lower() in IMAGE_EXTS:
        return ImageFolderSource(str(path))
    return CaptureSource(str(path), live=False)


def _check_source_kind(path: Path, source: str) -> None:
    """Refuse, before anything opens it, a path that is neither a regular file, a folder nor a camera's device
    node: a FIFO blocks in open() (deaf to Ctrl-C and SIGTERM) and a socket or another device never ends."""
    import stat

    try:
        mode = path.stat().st_mode
    except OSError as e:
        if e.errno == errno.ENOENT:  # no such file: a glob pattern, or said by the caller
            return
        raise SourceError(f"{source}: cannot read ({e.strerror or type(e).__name__})") from None
    if stat.S_ISREG(mode) or stat.S_ISDIR(mode):
        return
    if stat.S_ISCHR(mode) and path.name.startswith("video"):  # /dev/video0: a V4L2 camera, OpenCV opens it
        return
    kind = "a FIFO" if stat.S_ISFIFO(mode) else "a socket" if stat.S_ISSOCK(mode) else "a device"
    raise SourceError(f"{source}: is {kind}, not a video, an image or a folder (use --camera N for a camera)")


class Paced(FrameSource):
    """Wraps a file source so it delivers frames at its own frame rate (wall clock), like a camera would."""

    live = True

    def __init__(self, inner: FrameSource, fps: float | None = None):
        self.inner, self.name = inner, inner.name
        self.period = 1.0 / (fps or inner.fps or 30.0)
        self.next_t = None

    def read(self) -> np.ndarray | None:
        """The inner source's next frame, no sooner than its frame period after the last."""
        now = time.perf_counter()
        if self.next_t is not None and now < self.next_t:
            time.sleep(self.next_t - now)
        self.next_t = max(now, self.next_t or now) + self.period
        return self.inner.read()

    @property
    def fps(self) -> float | None:
        """The pace, in frames per second."""
        return 1.0 / self.period

    @property
    def ended_early(self) -> str | None:
        """The inner source's note of an early end."""
        return self.inner.ended_early

    def close(self) -> None:
        """Close the inner source."""
        self.inner.close()
