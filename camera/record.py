"""Recording the rendered frames: the codec for a container (the first this OpenCV can encode, best first), and the
check that a closed recording reads back as a video."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from pathlib import Path

import cv2

from edgeseg.errors import OutputError, SourceError
from edgeseg.io import atomic_path, special_file

# Codecs to try per container, best first. Browsers play H.264 in .mp4 and VP9/VP8 in .webm; opencv-python's
# own FFmpeg cannot encode H.264 (a licensing choice: opencv/opencv-python#241, ultralytics #7967), so an .mp4
# falls back to MPEG-4 Part 2 (mp4v), which VLC and ffmpeg play but browsers do not.
RECORD_CODECS = {
    ".mp4": ("avc1", "mp4v"),
    ".m4v": ("avc1", "mp4v"),
    ".mov": ("avc1", "mp4v"),
    ".mkv": ("avc1", "VP90", "mp4v"),
    ".webm": ("VP90", "VP80"),
    ".avi": ("MJPG",),
}
BROWSER_CODECS = {"avc1", "VP90", "VP80"}


DISK_CHECK_EVERY = 15  # frames between looks at the free space under a recording
MIN_FREE_BYTES = 2 * 2**20  # below this, the recording stops with an error: OpenCV's writer drops frames silently


def check_disk(tmp: Path, path: Path) -> None:
    """OutputError when the disk under the recording is (nearly) full: OpenCV's writer neither raises nor
    returns an error when a frame does not fit, so frames used to be lost while the run claimed a recording."""
    import shutil

    if special_file(tmp):
        return
    try:
        free = shutil.disk_usage(Path(tmp).parent).free
    except OSError:
        return
    if free < MIN_FREE_BYTES:
        raise OutputError(f"{path}: the disk is full ({free // 1024} KiB free): the recording could not be written")


def check_recording(tmp: Path, path: Path) -> None:
    """OutputError unless the recording just closed reads back as a video with frames: OpenCV's writer says
    nothing when a full disk cuts it short, and a recording that does not play used to be claimed as written."""
    if special_file(tmp):  # /dev/null and kin: nothing to read back
        return
    cap = cv2.VideoCapture(str(tmp))
    try:
        ok = cap.isOpened() and cap.read()[0]
    finally:
        cap.release()
    if not ok:
        raise OutputError(f"{path}: the recording could not be written whole (is the disk full?)")


def check_record_path(path: Path) -> None:
    """--record's container must be one this loop can write (by its suffix)."""
    if Path(path).suffix.lower() not in RECORD_CODECS:
        raise SourceError(f"{path}: --record writes {', '.join(RECORD_CODECS)} (.webm plays in every browser)")


def open_video_writer(path: Path, tmp: Path, fps: float, size: tuple[int, int], log: Callable[[str], None]):
    """A cv2.VideoWriter on `tmp` for the container `path` names, with the first codec this OpenCV can encode;
    says so when the result will not play in a browser.

    Args:
        path: the recording's final name (its suffix picks the codecs).
        tmp: the temp file written until the recording is complete.
        fps: the frame rate to declare.
        size: the frames' (width, height).
        log: where the codec note goes.
    """
    check_record_path(path)
    for fourcc in RECORD_CODECS[Path(path).suffix.lower()]:
        opencv_log_level("SILENT")  # a codec this build lacks is tried quietly: the log line below says which is used
        writer = cv2.VideoWriter(str(tmp), cv2.VideoWriter_fourcc(*fourcc), fps, size)
        opencv_log_level("ERROR")  # and a frame that does not fit the disk is said once, by check_disk
        if writer.isOpened():
            if fourcc in BROWSER_CODECS:
                log(f"recording {Path(path).name} as {fourcc} (plays in browsers)")
            elif fourcc == "mp4v":
                log(
                    f"recording {Path(path).name} as mp4v: this OpenCV cannot encode H.264, so it plays in VLC and "
                    "ffmpeg, not in browsers; record to a .webm (VP9) for a browser"
                )
            else:
                log(f"recording {Path(path).name} as {fourcc}")
            return writer
        writer.release()
    tried = ", ".join(RECORD_CODECS[Path(path).suffix.lower()])
    raise SourceError(f"{path}: OpenCV cannot write {Path(path).suffix} video here (tried {tried})")


def opencv_log_level(level: str) -> None:
    """Set OpenCV's own log level ("SILENT", "ERROR"...): its FFmpeg wrapper says "Failed to write frame" on every
    frame of a full disk and an error line for each codec it cannot open; edgeseg says what matters once."""
    logging = getattr(cv2.utils, "logging", None)
    if logging is not None:
        logging.setLogLevel(getattr(logging, f"LOG_LEVEL_{level}"))


class _NothingRecorded(Exception):
    """No frame reached the recording: there is no file to put in place."""


@contextlib.contextmanager
def recording_path(path: Path) -> Iterator[Path]:
    """atomic_path for the recording, which puts nothing in place when no frame was recorded (a run stopped or
    failed before its first frame): the recorder makes its file with the first frame, and renaming a file that
    was never made was an OutputError that hid why the run ended."""
    try:
        with atomic_path(path, visible=True) as tmp:
            yield tmp
            if not tmp.exists():
                raise _NothingRecorded
    except _NothingRecorded:
        pass
