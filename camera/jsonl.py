"""The JSON lines sink: one line per frame result and per event, appended to a file or written to stdout ("-").
Each line goes out in one write() and is flushed, so a reader (tail -f, jq, a pipe) never sees half a line, and a
file that is appended to by two runs keeps whole lines."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from edgeseg.camera.sink import Sink, SinkOptions
from edgeseg.errors import OutputError


class JsonlSink(Sink):
    """Appends one JSON object a line to `target` (a file, or "-" for stdout).

    Args:
        target: the file, or "-".
        opts: the log (a reader that went away is said once).
    """

    name = "jsonl"

    def __init__(self, target: str, opts: SinkOptions | None = None):
        super().__init__()
        self.log = (opts or SinkOptions()).log
        self.target = target
        self.broken = False
        if target == "-":
            self.f, self.owned = sys.stdout, False
            return
        from edgeseg.io import check_writable

        path = check_writable(Path(target))
        try:
            self.f, self.owned = path.open("a", encoding="utf-8"), True
        except OSError as e:
            raise OutputError(f"--jsonl {target}: cannot append ({e.strerror or type(e).__name__})") from None

    def send(self, kind: str, message: dict) -> None:
        """Write the message as one line."""
        if self.broken:
            self.dropped += 1
            return
        try:
            self.f.write(json.dumps(message, separators=(",", ":")) + "\n")
            self.f.flush()
            self.sent += 1
        except (BrokenPipeError, OSError) as e:  # a full disk, a reader that went away: said once, then counted
            self.broken = True
            self.dropped += 1
            self.log(
                f"warning: --jsonl {self.target}: cannot write ({getattr(e, 'strerror', None) or type(e).__name__}); "
                "results are no longer written there"
            )

    def status(self) -> dict:
        """Where the lines go and how many were written."""
        return {**super().status(), "target": self.target}

    def close(self) -> None:
        """Close the file (stdout is left open). A last flush that fails (a full disk) was said, or is said now."""
        if not self.owned:
            return
        try:
            self.f.close()
        except OSError as e:
            if not self.broken:
                self.broken = True
                self.log(
                    f"warning: --jsonl {self.target}: cannot write ({e.strerror or type(e).__name__}); "
                    "its last lines are lost"
                )
