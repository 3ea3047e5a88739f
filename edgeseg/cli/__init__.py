"""The edgeseg command line. Commands only parse their options and hand off to the library; heavy modules are
imported inside them, so `edgeseg --help` is instant and the device commands (run, bench, eval on .tflite)
never import TensorFlow.

- train.py: train
- convert.py: convert, quant-report, edgetpu
- run.py: run (and where its results go)
- device.py: bench, eval
- tools.py: doctor, synth, pack, demo, info
- common.py: error handling, shared option types, helpers
"""

from __future__ import annotations

import typer

from edgeseg.cli import convert, device, run, tools, train
from edgeseg.cli.common import Command

app = typer.Typer(
    help="Semantic segmentation from a dataset to a camera on a small device.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    # Plain help and usage errors, as click prints them: Rich's panels showed "<bool>" after every flag (as if it
    # took a value), ate square brackets in help texts as markup, and printed nothing at all with COLUMNS=0.
    rich_markup_mode=None,
)

# in the order `edgeseg --help` lists them: the workstation's verbs, the device's, then the tools
app.command(cls=Command)(train.train)
app.command(cls=Command)(convert.convert)
app.command(cls=Command)(run.run)
app.command(cls=Command)(device.bench)
app.command("eval", cls=Command)(device.eval_)
app.command("quant-report", cls=Command)(convert.quant_report)
app.command(cls=Command)(convert.edgetpu)
app.command(cls=Command)(tools.info)
app.command(cls=Command)(tools.doctor)
app.command(cls=Command)(tools.synth)
app.command(cls=Command)(tools.pack)
app.command(cls=Command)(tools.demo)


def _version(value: bool) -> None:
    if value:
        from importlib.metadata import PackageNotFoundError, version

        try:
            typer.echo(f"edgeseg {version('edgeseg')}")
        except PackageNotFoundError:  # run from a source tree that was never installed
            typer.echo("edgeseg (not installed: run from a source tree)")
        raise typer.Exit()


# OpenCV reads these when it loads: its own log, and the FFmpeg it reads video with (AV_LOG_QUIET)
QUIET_OPENCV = {"OPENCV_LOG_LEVEL": "SILENT", "OPENCV_FFMPEG_LOGLEVEL": "-8"}


@app.callback()
def _options(
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print edgeseg's version and exit."
    ),
    verbose: bool = typer.Option(
        False, "-v", "--verbose", help="Also show the libraries' own log lines (TensorFlow, LiteRT, converters)."
    ),
) -> None:
    """Semantic segmentation from a dataset to a camera on a small device."""
    import os

    if verbose:
        from edgeseg.quiet import VERBOSE_ENV

        os.environ[VERBOSE_ENV] = "1"
    else:  # OpenCV's and FFmpeg's own lines ("moov atom not found", libpng's) above our one-line errors
        for name, value in QUIET_OPENCV.items():
            os.environ.setdefault(name, value)  # read when OpenCV loads; a user's own setting wins


def main() -> None:
    """The `edgeseg` command's entry point."""
    app()


__all__ = ["app", "main"]
