"""A training run's folder: refusing to overwrite a run or to resume one that is not there, the lock that keeps a
second `edgeseg train` out of it, and what its history.csv says of the epochs so far."""

from __future__ import annotations

import contextlib
import csv
import math
from collections.abc import Callable
from pathlib import Path

from edgeseg.errors import EdgesegError, OutputError
from edgeseg.training.config import CONFIG_FILE


def _val_mious(history: Path) -> list[float]:
    """Each epoch's val_miou in history.csv, in order (NaN where a row has none); empty without the file."""
    found = []
    if history.is_file():
        with history.open() as f:
            for row in csv.DictReader(f):
                try:
                    found.append(float(row.get("val_miou", "nan")))
                except ValueError:
                    continue
    return found


def last_val(history: Path) -> float | None:
    """The last epoch's val_miou in history.csv (None when it has none)."""
    found = _val_mious(history)
    return None if not found or math.isnan(found[-1]) else found[-1]


def best_so_far(history: Path) -> float:
    """The best val_miou in history.csv (-inf when it has none)."""
    return max((v for v in _val_mious(history) if not math.isnan(v)), default=-math.inf)


def check_run_folder(out: Path, resume: bool | str, log: Callable[[str], None]) -> None:
    """Refuse to overwrite a run, or to resume one that is not there or has finished."""
    backup = out / "backup"
    if resume == "auto":  # multi-worker: the same command starts a run, or continues it after a restart
        if (out / "model.keras").exists() and not backup.exists():
            raise EdgesegError(f"{out}: this run already finished (model.keras is there, no backup to resume)")
        if backup.exists():
            log("a backup is there: continuing the run from its last epoch")
        return
    if out.exists() and any(out.iterdir()) and not resume:
        if backup.exists() or (out / "model.keras").exists():
            raise EdgesegError(f"{out} already holds a run: use --resume to continue it, or another --out")
    if resume:
        if not (out / CONFIG_FILE).is_file():
            raise EdgesegError(f"{out}: nothing to resume (no {CONFIG_FILE})")
        if not backup.exists():
            if (out / "model.keras").exists():
                raise EdgesegError(f"{out}: this run already finished (model.keras is there, no backup to resume)")
            log("no backup found: starting from epoch 1")


@contextlib.contextmanager
def run_lock(out: Path):
    """Hold the run folder's lock (train.lock, flock) while training: a second `edgeseg train` into the same
    --out is refused at once instead of mixing its files with the first's. POSIX only; elsewhere no lock."""
    try:
        import fcntl
    except ImportError:
        yield
        return
    lock = out / "train.lock"
    made_folder, made_lock = not out.exists(), not lock.exists()
    try:
        out.mkdir(parents=True, exist_ok=True)
        handle = open(lock, "a+")  # noqa: SIM115 - held open for the run's length
    except OSError as e:
        raise OutputError(f"{out}: cannot write ({e.strerror or e})") from None
    held = failed = False
    try:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            held = True
        except BlockingIOError:
            raise EdgesegError(
                f"{out}: another edgeseg train is writing into this folder; give another --out"
            ) from None
        yield
    except BaseException:
        failed = True
        raise
    finally:
        if held and failed and made_lock:  # a start that failed leaves no folder holding only its lock
            with contextlib.suppress(OSError):
                if [p.name for p in out.iterdir()] == [lock.name]:
                    lock.unlink()
                    if made_folder:
                        out.rmdir()
        handle.close()  # closing releases the lock


def trim_history(history: Path, first_epoch: int) -> int:
    """Keep the rows of history.csv for epochs before `first_epoch` (the epoch a resumed run starts at) and drop
    the rest, rewriting the file atomically; how many rows were dropped. A run killed after an epoch's row was
    written but before its backup was saved repeats that epoch on --resume: without this, history.csv held two
    different rows for it."""
    from edgeseg.io import atomic_write_text

    if not history.is_file():
        return 0
    with history.open(newline="") as f:
        rows = list(csv.reader(f))
    if not rows:
        return 0
    try:
        col = rows[0].index("epoch")
    except ValueError:
        return 0
    kept = [rows[0]] + [r for r in rows[1:] if len(r) > col and r[col].isdigit() and int(r[col]) < first_epoch]
    dropped = len(rows) - len(kept)
    if dropped:
        import io

        text = io.StringIO()
        csv.writer(text, lineterminator="\n").writerows(kept)
        atomic_write_text(history, text.getvalue())
    return dropped
