"""The frame source interface that every source implements (OpenCV captures, image folders, generated frames,
Picamera2), and the check every delivered frame passes. The floor below sources.py and picamera.py, so that
neither imports the other for it.

read() -> a BGR uint8 frame, None at the end of the stream (or when a live source stops delivering), or
raises CorruptFrame for a frame that came but cannot be used (skipped and counted by the loop). Live sources
(cameras, streams, Picamera2) can reopen() after they drop out.
"""

from __future__ import annotations

import cv2
import numpy as np

from edgeseg.errors import SourceError


class CorruptFrame(Exception):
    """A frame arrived but cannot be used (undecodable image, empty or wrongly shaped buffer)."""


class EndOfStream(Exception):
    """A live source has ended for good (not a drop-out to reconnect from)."""


class FrameSource:
    """Where frames come from: read() the next one; live sources may reopen() after a drop-out."""

    live: bool = False  # frames come in real time: keep the newest, drop stale ones
    can_reconnect: bool = False  # a live source that can reopen() after it drops out
    name: str = "source"
    # Set by a file source whose end came early (a damaged file): a sentence for the user, else None.
    ended_early: str | None = None

    def read(self) -> np.ndarray | None:
        """The next BGR uint8 frame; None at the end (or a live drop-out); CorruptFrame for an unusable one."""
        raise NotImplementedError

    def reopen(self) -> None:
        """Open a live source again after it stopped delivering (SourceError where it cannot)."""
        raise SourceError(f"{self.name} cannot be reopened")

    @property
    def fps(self) -> float | None:
        """The source's own frame rate, where it declares one."""
        return None

    def close(self) -> None:
        """Release the device or file."""

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def check_frame(frame) -> np.ndarray:
    """A delivered frame as BGR uint8 (grey and BGRA converted); CorruptFrame for anything else."""
    if not isinstance(frame, np.ndarray) or frame.size == 0 or frame.ndim not in (2, 3) or frame.dtype != np.uint8:
        raise CorruptFrame("empty or malformed frame")
    if frame.ndim == 2:
        return cv2.cvtColor(frame, cv2.COLOR_GRAY2BGR)
    if frame.shape[2] == 4:
        return cv2.cvtColor(frame, cv2.COLOR_BGRA2BGR)
    if frame.shape[2] != 3:
        raise CorruptFrame(f"frame with {frame.shape[2]} channels")
    return frame
