"""MkDocs hook: the CLI reference page (cli.md) is generated from the Typer app at every build, with Typer's own
generator (`typer edgeseg.cli utils docs`), so it cannot drift from `edgeseg --help`. Not a file in docs/."""

from __future__ import annotations

import os
import subprocess
import sys

from mkdocs.structure.files import File

TITLE = "CLI reference"
INTRO = (
    "Generated from the command line itself (`typer edgeseg.cli utils docs`) each time the manual is built. "
    "`edgeseg COMMAND --help` prints the same.\n\n"
)


def cli_reference() -> str:
    env = {**os.environ, "COLUMNS": "120", "TERM": "dumb"}
    cmd = [sys.executable, "-m", "typer", "edgeseg.cli", "utils", "docs", "--name", "edgeseg", "--title", TITLE]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True, env=env).stdout
    head, _, rest = out.partition("\n")  # Typer's title line first, then our note
    return f"{head}\n\n{INTRO}{rest.lstrip()}"


def on_files(files, config):
    files.append(File.generated(config, "cli.md", content=cli_reference()))
    return files
