"""The edgeseg command line. Commands only parse their options and hand off to the library; heavy modules are
imported inside them, so `edgeseg --help` is instant and the device commands (run, bench, eval on .tflite)
never import TensorFlow.

- train.py: train
- convert.py: convert, quant-report, edgetpu
- device.py: run, bench, eval
- tools.py: doctor, synth, pack, demo, info
- common.py: error handling, shared option types, helpers
"""

from __future__ import annotations

import typer

from edgeseg.cli import convert, device, tools, train

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
app.command()(train.train)
app.command()(convert.convert)
app.command()(device.run)
app.command()(device.bench)
app.command("eval")(device.eval_)
app.command("quant-report")(convert.quant_report)
app.command()(convert.edgetpu)
app.command()(tools.info)
app.command()(tools.doctor)
app.command()(tools.synth)
app.command()(tools.pack)
app.command()(tools.demo)


def main() -> None:
    """The `edgeseg` command's entry point."""
    app()


__all__ = ["app", "main"]
