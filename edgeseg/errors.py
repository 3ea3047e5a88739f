"""Domain errors. The CLI turns each into one red line and exit code 1, never a traceback."""


class EdgesegError(Exception):
    """Something the user can fix: a bad file, a wrong shape, a missing dependency."""


class DataError(EdgesegError):
    """An image, a mask or a dataset layout that cannot be used."""


class ModelError(EdgesegError):
    """A model file that is not one, or whose tensors do not fit what edgeseg expects."""


class RuntimeUnavailable(EdgesegError):
    """No TFLite interpreter, or a delegate that cannot be loaded on this machine."""


class OutputError(EdgesegError):
    """An output path that cannot be written: a folder where a file should go, a read-only or full disk."""


class SourceError(EdgesegError):
    """A camera, video or stream that cannot be opened or went away."""


def missing_extra(package: str, extra: str) -> EdgesegError:
    """The error for an optional package that is not installed, naming the extra that brings it."""
    return EdgesegError(f"{package} is not installed: pip install 'edgeseg[{extra}]'")


def first_sentence(text: str, limit: int = 240) -> str:
    """A library's message cut to its first sentence (or, past `limit` characters, at a word, with "..."), so a
    one-line error never stops mid-word."""
    line = " ".join(str(text).split())
    for end in (". ", "; "):
        cut = line.find(end)
        if 0 < cut < limit:
            return line[: cut + 1].rstrip(";.") if end == "; " else line[: cut + 1]
    if len(line) <= limit:
        return line
    return line[:limit].rsplit(" ", 1)[0].rstrip(",;:") + "..."
