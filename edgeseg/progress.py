"""A progress callback (i, n) drawn with tqdm when tqdm is installed and stderr is a terminal; None otherwise,
so the caller skips the calls."""

from __future__ import annotations

import sys
from collections.abc import Callable


def progress_bar(desc: str, force: bool = False) -> Callable[[int, int], None] | None:
    """A (done, total) callback that draws a tqdm bar on a terminal (or always, with `force`); None where there is no
    terminal or no tqdm."""
    if not (force or sys.stderr.isatty()):
        return None
    try:
        from tqdm import tqdm
    except ImportError:
        return None
    state = {}

    def update(i: int, n: int) -> None:
        if "bar" not in state:
            state["bar"] = tqdm(total=n, desc=desc, leave=False, unit="img" if "read" in desc else "it")
        state["bar"].n = i
        state["bar"].refresh()
        if i >= n:
            state["bar"].close()

    return update
