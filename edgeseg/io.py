"""Atomic file writes: a temp file in the same folder, then a rename. A crash never leaves half a file."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

from edgeseg.errors import OutputError


def _cannot_write(path: Path, e: OSError) -> OutputError:
    return OutputError(f"{path}: cannot write ({e.strerror or type(e).__name__})")


def check_writable(path: Path, *, folder: bool = False) -> Path:
    """Fail now, before any long work, if `path` (a file, or a folder with folder=True) cannot be written:
    a folder where a file goes or the reverse, a file where a parent folder should be, a read-only disk or a
    folder without write permission. Probes with an empty temp file, which it removes."""
    path = Path(path)
    if path.exists():
        if folder and not path.is_dir():
            raise OutputError(f"{path}: exists and is not a folder")
        if not folder and path.is_dir():
            raise OutputError(f"{path}: is a folder; give a file name")
        probe = path if folder else path.parent
    else:
        probe = path if folder else path.parent
        while not probe.exists() and probe != probe.parent:
            probe = probe.parent
        if not probe.is_dir():
            raise OutputError(f"{path}: {probe} is a file, not a folder")
    try:
        fd, tmp = tempfile.mkstemp(prefix=".edgeseg-write-check-", dir=probe)
        os.close(fd)
        os.unlink(tmp)
    except OSError as e:
        raise OutputError(f"{path}: cannot write in {probe} ({e.strerror or type(e).__name__})") from None
    return path


@contextlib.contextmanager
def atomic_path(path: Path, suffix: str | None = None) -> Iterator[Path]:
    """Yield a temporary path beside `path`; rename it onto `path` only if the block succeeds. Failing to
    create the folder, the temp file or the rename is an OutputError naming `path`."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=suffix or path.suffix or ".tmp", dir=path.parent)
    except OSError as e:
        raise _cannot_write(path, e) from None
    os.close(fd)
    tmp_path = Path(tmp)
    os.chmod(tmp_path, 0o666 & ~_umask())  # mkstemp makes 0600; give the file the mode open() would
    try:
        yield tmp_path
        try:
            os.replace(tmp_path, path)
        except OSError as e:
            raise _cannot_write(path, e) from None
    finally:
        with contextlib.suppress(OSError):
            tmp_path.unlink()


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write_bytes(path: Path, data: bytes) -> Path:
    """Write `data` to `path` atomically (a temp file beside it, flushed and synced, then a rename); OutputError naming
    the path."""
    with atomic_path(path) as tmp:
        try:
            with open(tmp, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
        except OSError as e:  # a full disk (ENOSPC) shows up here: the temp file goes, the target is untouched
            raise _cannot_write(Path(path), e) from None
    return Path(path)


def atomic_write_text(path: Path, text: str) -> Path:
    """Write UTF-8 text to `path` atomically."""
    return atomic_write_bytes(path, text.encode("utf-8"))


def write_image(path: Path, image) -> Path:
    """An image file (format from the suffix) written atomically with OpenCV; OutputError when it cannot be.
    cv2.imwrite reports failure (a full disk, a bad suffix) by returning False, never by raising."""
    import cv2

    with atomic_path(path) as tmp:
        try:
            ok = cv2.imwrite(str(tmp), image)
        except cv2.error:
            ok = False
        if not ok:
            raise OutputError(f"{path}: cannot write the image (disk full, or no encoder for {Path(path).suffix!r})")
    return Path(path)


def read_bounded(path: Path, max_bytes: int, what: str) -> str:
    """A small text file (`what`: "labels", "spec") read as UTF-8, never more than `max_bytes` of it: a file, a
    FIFO or a device that holds more (or never ends, as /dev/zero) is refused with an EdgesegError naming it."""
    from edgeseg.errors import EdgesegError

    path = Path(path)
    try:
        with path.open("rb") as f:
            data = f.read(max_bytes + 1)
    except OSError as e:
        raise EdgesegError(f"{path}: cannot read the {what} ({e.strerror or type(e).__name__})") from None
    if len(data) > max_bytes:
        raise EdgesegError(f"{path}: more than {max_bytes} bytes: not a {what} file")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise EdgesegError(f"{path}: not UTF-8 text: not a {what} file") from None
