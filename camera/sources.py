"""Frame sources behind one interface: read() -> BGR frame, or None at the end of the stream."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

import cv2
import numpy as np

from edgeseg.errors import SourceError

PROBE_INDICES = range(0, 10)


class FrameSource:
    live: bool = False
    name: str = "source"

    def read(self) -> np.ndarray | None:
        raise NotImplementedError

    @property
    def fps(self) -> float | None:
        return None

    def close(self) -> None:
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


@contextlib.contextmanager
def _quiet_opencv():
    """OpenCV prints its own warnings for a camera that is not there; we say it once, in our words."""
    old = os.environ.get("OPENCV_LOG_LEVEL")
    try:
        cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_SILENT)
    except AttributeError:
        pass
    try:
        yield
    finally:
        with contextlib.suppress(AttributeError):
            cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_WARNING)
        if old is not None:
            os.environ["OPENCV_LOG_LEVEL"] = old


class CaptureSource(FrameSource):
    """cv2.VideoCapture on a camera index, a video file or a stream URL."""

    def __init__(self, target: int | str, live: bool, size_wh: tuple[int, int] | None = None,
                 fps: float | None = None):
        self.target, self.live = target, live
        self.name = f"camera {target}" if isinstance(target, int) else str(target)
        with _quiet_opencv():
            self.cap = cv2.VideoCapture(target)
        if not self.cap.isOpened():
            self.cap.release()
            raise SourceError(self._not_opened())
        if size_wh:
            self.cap.set(cv2.CAP_PROP_FRAME_WIDTH, size_wh[0])
            self.cap.set(cv2.CAP_PROP_FRAME_HEIGHT, size_wh[1])
        if fps:
            self.cap.set(cv2.CAP_PROP_FPS, fps)
        if live:
            self.cap.set(cv2.CAP_PROP_BUFFERSIZE, 1)  # keep the driver's queue short; newest frames matter

    def _not_opened(self) -> str:
        if isinstance(self.target, int):
            found = available_cameras(exclude=self.target)
            hint = f"cameras that do open: {', '.join(map(str, found))}" if found else "no camera opens on this machine"
            return f"no camera at index {self.target} ({hint})"
        if isinstance(self.target, str) and "://" not in self.target and not Path(self.target).exists():
            return f"{self.target}: no such file"
        return f"{self.target}: cannot open as a video (corrupt file or unsupported codec/stream)"

    @property
    def fps(self) -> float | None:
        v = self.cap.get(cv2.CAP_PROP_FPS)
        return v if v and v > 0 else None

    def read(self) -> np.ndarray | None:
        ok, frame = self.cap.read()
        return frame if ok and frame is not None else None

    def close(self) -> None:
        self.cap.release()


def available_cameras(exclude: int | None = None) -> list[int]:
    found = []
    with _quiet_opencv():
        for i in PROBE_INDICES:
            if i == exclude or not Path(f"/dev/video{i}").exists() and os.name == "posix":
                continue
            cap = cv2.VideoCapture(i)
            if cap.isOpened():
                found.append(i)
            cap.release()
    return found


def open_source(camera: int | None = None, source: str | None = None, size_wh: tuple[int, int] | None = None,
                fps: float | None = None) -> FrameSource:
    if (camera is None) == (source is None):
        raise SourceError("give exactly one of --camera N or --source FILE|URL")
    if camera is not None:
        return CaptureSource(int(camera), live=True, size_wh=size_wh, fps=fps)
    live = "://" in source and not source.startswith("file://")
    if not live and not Path(source).exists():
        raise SourceError(f"{source}: no such file")
    return CaptureSource(source, live=live)
