"""SIGTERM (what systemd, `docker stop` and `kill` send) and SIGHUP (a closed terminal, a dropped SSH session:
the usual end of a run on a Pi) take the same clean way out as Ctrl-C.

Python's default for SIGTERM is to die on the spot: a recording was left as a hidden 0-frame temp file and no
stats were written. While a command runs, SIGTERM raises Terminated, a KeyboardInterrupt, so every `finally`
and context manager that handles Ctrl-C (joining threads, closing the recording and renaming it into place,
removing temp files, writing stats) runs for it too. The exit code tells the two apart: 130 for SIGINT, 143
(128 + 15) for SIGTERM, 129 for SIGHUP, 0 only for a run that ended by itself. A second one during the clean-up
kills.

Where an exception at an arbitrary point could tear a file that is not written atomically (Keras'
BackupAndRestore writes its checkpoint in place), `deferred()` only notes the signal, and the code raises it
at a safe point with `raise_pending()` (training: between batches, and after the epoch's backup is saved).
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator

EXIT_SIGINT = 130
EXIT_SIGTERM = 128 + signal.SIGTERM
# the signals that end a command the way SIGTERM does (SIGHUP where the platform has it)
STOPS = (signal.SIGTERM, *((signal.SIGHUP,) if hasattr(signal, "SIGHUP") else ()))


class Terminated(KeyboardInterrupt):
    """Raised in the main thread by SIGTERM or SIGHUP."""


_received: int | None = None


def received() -> int | None:
    """The signal that stopped this command (SIGINT, SIGTERM or SIGHUP), or None."""
    return _received


def exit_code() -> int:
    """The exit status for the signal that stopped the command: 128 + its number (143 SIGTERM, 129 SIGHUP), 130
    for Ctrl-C."""
    return 128 + int(_received) if _received in STOPS else EXIT_SIGINT


def note_interrupt() -> None:
    """Record a Ctrl-C (KeyboardInterrupt) unless a SIGTERM was already recorded."""
    global _received
    if _received is None:
        _received = signal.SIGINT


def _on_sigterm(signum, frame) -> None:
    for s in STOPS:
        signal.signal(s, signal.SIG_DFL)  # a second one ends the process
    _raise(signum)


@contextlib.contextmanager
def _handling(handler, signums: tuple[int, ...]) -> Iterator[None]:
    """`handler` for `signums` while the block runs, the previous handlers after; only the main thread can
    install handlers, so elsewhere the block runs as it is."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {s: signal.signal(s, handler) for s in signums}
    try:
        yield
    finally:
        for s, h in previous.items():
            signal.signal(s, h)


@contextlib.contextmanager
def graceful_sigterm() -> Iterator[None]:
    """While the block runs (in the main thread), SIGTERM and SIGHUP raise Terminated."""
    global _received
    _received = None
    with _handling(_on_sigterm, STOPS):
        yield


_pending: int | None = None


def _note(signum, frame) -> None:
    global _pending
    if _pending == signum:  # the same signal twice: the user insists, stop now
        signal.signal(signum, signal.SIG_DFL)
        _raise(signum)
    _pending = signum


def _raise(signum: int) -> None:
    global _received
    _received = signum
    raise Terminated() if signum in STOPS else KeyboardInterrupt()


def stop_received() -> bool:
    """A SIGTERM or SIGHUP came while the command ran (its exception may have been swallowed, or turned into
    another error by the library it landed in)."""
    return _received in STOPS


def raise_if_stopped() -> None:
    """Raise Terminated again for a SIGTERM or SIGHUP whose exception was swallowed on its way up (one that landed
    inside a library's import or call that catches everything): the command must not go on, nor end as a
    success, as if nothing had come."""
    if _received in STOPS:
        raise Terminated()


def raise_pending() -> None:
    """Raise the signal noted under deferred() (Terminated or KeyboardInterrupt), if any."""
    global _pending
    if _pending is not None:
        signum, _pending = _pending, None
        _raise(signum)


@contextlib.contextmanager
def default_action() -> Iterator[None]:
    """While the block runs (in the main thread), SIGINT and SIGTERM do what they do by default: end the process
    at once. For a native call that blocks without returning to Python (a cluster waiting for its workers), where
    a Python handler would never run and the process would be deaf to both."""
    with _handling(signal.SIG_DFL, (signal.SIGINT, *STOPS)):
        yield


@contextlib.contextmanager
def finishing(say=None) -> Iterator[None]:
    """While the block runs (in the main thread), SIGINT and SIGTERM are noted and ignored, so that what is being
    finished (a recording closed and renamed) is finished whole; `say` hears about the first one. A third one
    (the user insists) stops at once."""
    count = 0

    def ignore(signum, frame) -> None:
        nonlocal count
        count += 1
        if count == 1 and say is not None:
            say("finishing the recording; press Ctrl-C twice more to abandon it")
        if count >= 3:
            _raise(signum)

    with _handling(ignore, (signal.SIGINT, *STOPS)):
        yield


@contextlib.contextmanager
def deferred() -> Iterator[None]:
    """While the block runs (in the main thread), SIGINT and SIGTERM are noted, not raised: the block calls
    raise_pending() where stopping is safe. A second identical signal stops at once."""
    global _pending
    _pending = None
    with _handling(_note, (signal.SIGINT, *STOPS)):
        yield
