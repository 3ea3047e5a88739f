"""SIGTERM (what systemd, `docker stop` and `kill` send) takes the same clean way out as Ctrl-C.

Python's default for SIGTERM is to die on the spot: a recording was left as a hidden 0-frame temp file and no
stats were written. While a command runs, SIGTERM raises Terminated, a KeyboardInterrupt, so every `finally`
and context manager that handles Ctrl-C (joining threads, closing the recording and renaming it into place,
removing temp files, writing stats) runs for it too. The exit code tells the two apart: 130 for SIGINT, 143
(128 + 15) for SIGTERM, 0 only for a run that ended by itself. A second SIGTERM during the clean-up kills.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator

EXIT_SIGINT = 130
EXIT_SIGTERM = 128 + signal.SIGTERM


class Terminated(KeyboardInterrupt):
    """Raised in the main thread by SIGTERM."""


_received: int | None = None


def received() -> int | None:
    """The signal that stopped this command (SIGINT or SIGTERM), or None."""
    return _received


def exit_code() -> int:
    return EXIT_SIGTERM if _received == signal.SIGTERM else EXIT_SIGINT


def note_interrupt() -> None:
    """Record a Ctrl-C (KeyboardInterrupt) unless a SIGTERM was already recorded."""
    global _received
    if _received is None:
        _received = signal.SIGINT


def _on_sigterm(signum, frame) -> None:
    global _received
    _received = signal.SIGTERM
    signal.signal(signal.SIGTERM, signal.SIG_DFL)  # a second one ends the process
    raise Terminated()


@contextlib.contextmanager
def graceful_sigterm() -> Iterator[None]:
    """While the block runs (in the main thread), SIGTERM raises Terminated."""
    global _received
    _received = None
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, _on_sigterm)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
