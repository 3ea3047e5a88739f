"""Atomic file writes: a temp file in the same folder, then a rename. A crash never leaves half a file."""

from __future__ import annotations

import contextlib
import os
import stat
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
    try:
        return _check_writable(Path(path), folder)
    except OSError as e:  # a name over 255 bytes, a path through a file, a loop of links
        raise OutputError(f"{path}: cannot write ({e.strerror or type(e).__name__})") from None


def _check_writable(path: Path, folder: bool) -> Path:
    if special_file(path):
        return path  # a device or a pipe (/dev/null, /dev/stdout) is written to as it is
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


def special_file(path: Path) -> bool:
    """`path` exists and is a device, a pipe or a socket (not a regular file or a folder)."""
    try:
        mode = Path(path).stat().st_mode
    except OSError:
        return False
    return stat.S_ISCHR(mode) or stat.S_ISBLK(mode) or stat.S_ISFIFO(mode) or stat.S_ISSOCK(mode)


@contextlib.contextmanager
def atomic_path(path: Path, suffix: str | None = None, visible: bool = False) -> Iterator[Path]:
    """Yield a temporary path beside `path`; rename it onto `path` only if the block succeeds. Failing to
    create the folder, the temp file or the rename is an OutputError naming `path`. A device or a pipe
    (/dev/null, /dev/stdout) is yielded as it is and written in place: renaming onto it would replace it.
    `visible`: the temp file is `<stem>.partial<suffix>` (what a SIGKILL leaves is in plain sight, and the
    next write replaces it), not a hidden random name."""
    path = Path(path)
    if special_file(path):
        yield path
        return
    if visible:
        yield from _visible_partial(path, suffix)
        return
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


def _visible_partial(path: Path, suffix: str | None) -> Iterator[Path]:
    tmp_path = path.with_name(f"{path.stem}.partial{suffix or path.suffix}")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp_path.unlink(missing_ok=True)
    except OSError as e:
        raise _cannot_write(path, e) from None
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
                if not special_file(tmp):  # a pipe or a device cannot be synced (EINVAL)
                    os.fsync(f.fileno())
        except OSError as e:  # a full disk (ENOSPC) shows up here: the temp file goes, the target is untouched
            raise _cannot_write(Path(path), e) from None
        if not special_file(tmp) and tmp.stat().st_size != len(data):  # what reached the disk, before the rename
            raise OutputError(f"{path}: wrote {tmp.stat().st_size} of {len(data)} bytes (disk full?)")
    return Path(path)


def atomic_write_text(path: Path, text: str) -> Path:
    """Write UTF-8 text to `path` atomically."""
    return atomic_write_bytes(path, text.encode("utf-8"))


def write_image(path: Path, image) -> Path:
    """An image file (format from the suffix) encoded in memory with OpenCV, then written atomically and checked
    (atomic_write_bytes); OutputError when it cannot be. cv2.imwrite on a full disk returned True and left an
    empty file, which was then renamed into place: encoding first, then writing, sees the failure."""
    import cv2

    suffix = Path(path).suffix or ".png"
    try:
        ok, buf = cv2.imencode(suffix, image)
    except cv2.error:
        ok = False
    if not ok:
        raise OutputError(f"{path}: cannot encode the image (no encoder for {suffix!r})")
    return atomic_write_bytes(path, buf.tobytes())


def read_bounded(path: Path, max_bytes: int, what: str) -> str:
    """A small text file (`what`: "labels", "spec") read as UTF-8, never more than `max_bytes` of it. Only a
    regular file: a device or a pipe can hold more than any limit, or never end (/dev/zero, a FIFO no one
    writes), so it is refused, as is a larger file; EdgesegError naming it."""
    from edgeseg.errors import EdgesegError

    path = Path(path)
    try:
        if not path.is_file():
            raise EdgesegError(f"{path}: not a regular file (a device, a pipe or a folder): give the {what} as a file")
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


@contextlib.contextmanager
def caught_stderr() -> Iterator[list[str]]:
    """Catch what C/C++ code prints on stderr (file descriptor 2) inside the block, off the terminal: yields a
    list that holds the caught lines once the block ends (a runtime's own complaint, to put in one message)."""
    import sys

    lines: list[str] = []
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as caught:
        os.dup2(caught.fileno(), 2)
        try:
            yield lines
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            caught.seek(0)
            lines += [ln for ln in caught.read(64 * 1024).decode("utf-8", "replace").splitlines() if ln.strip()]
