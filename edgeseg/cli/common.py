"""What every command shares: the one-red-line error handling, option types built from the library's own
choices (edgeseg.choices), and small helpers for sizes, outputs and models. Standard library and Typer only."""

from __future__ import annotations

import contextlib
import functools
import json
import math
import os
from pathlib import Path
from typing import Annotated

import typer

from edgeseg.choices import (
    BACKBONES,
    BACKENDS,
    DECODERS,
    DELEGATES,
    EQUALIZE,
    EXPORT_FORMATS,
    FORMATS,
    IO_DTYPES,
    KD_MODES,
    KEEP,
    LOSSES,
    OUTPUT_SIZES,
    RKNN_PLATFORMS,
    RUNTIMES,
    SPLITS,
    STRATEGIES,
    TEACHER_VIEWS,
    VIEWS,
    choice_enum,
)
from edgeseg.errors import EdgesegError
from edgeseg.limits import MAX_THREADS

RuntimeChoice = choice_enum("RuntimeChoice", RUNTIMES)
DelegateChoice = choice_enum("DelegateChoice", DELEGATES)
FormatChoice = choice_enum("FormatChoice", FORMATS)
SplitChoice = choice_enum("SplitChoice", SPLITS)
IODtypeChoice = choice_enum("IODtypeChoice", IO_DTYPES)
ViewChoice = choice_enum("ViewChoice", VIEWS)
StrategyChoice = choice_enum("StrategyChoice", STRATEGIES)
ExportFormatChoice = choice_enum("ExportFormatChoice", EXPORT_FORMATS)
BackboneChoice = choice_enum("BackboneChoice", BACKBONES)
BackendChoice = choice_enum("BackendChoice", BACKENDS)
DecoderChoice = choice_enum("DecoderChoice", DECODERS)
KeepChoice = choice_enum("KeepChoice", KEEP)
EqualizeChoice = choice_enum("EqualizeChoice", EQUALIZE)
OutputSizeChoice = choice_enum("OutputSizeChoice", OUTPUT_SIZES)
LossChoice = choice_enum("LossChoice", LOSSES)
TeacherViewChoice = choice_enum("TeacherViewChoice", TEACHER_VIEWS)
KdModeChoice = choice_enum("KdModeChoice", KD_MODES)
RknnPlatformChoice = choice_enum("RknnPlatformChoice", RKNN_PLATFORMS)

RuntimeOpt = Annotated[RuntimeChoice, typer.Option(help="Runtime (auto: the one the model file calls for).")]
DelegateOpt = Annotated[DelegateChoice, typer.Option(help="cpu, edgetpu, or auto (by file).")]
ThreadsOpt = Annotated[int | None, typer.Option(min=1, max=MAX_THREADS, metavar="N", help="Interpreter threads.")]
LabelsOpt = Annotated[
    Path | None,
    typer.Option(
        exists=True,
        dir_okay=False,
        help="Class names for a model without its own: one per line (Coral's and Picamera2's labels files).",
    ),
]
JsonOpt = Annotated[Path | None, typer.Option("--json", help="Write the results (JSON) here.")]

MODEL_HELP = "The model by path or shipped name (nano, small), instead of the MODEL argument."


# Typer labels a value by its Python type (<int range>, <float range>, <list[str]>); the help shows these instead
PLAIN_METAVARS = {
    "<int range>": "<int>",
    "<float range>": "<number>",
    "<float>": "<number>",
    "<str>": "<text>",
    "<list[str]>": "<text>",
}


class Command(typer.core.TyperCommand):
    """Every edgeseg command: options keep the metavar they were given, and the rest get a plain one
    (PLAIN_METAVARS) instead of the Python type Typer would print."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        for p in self.params:
            flag = getattr(p, "is_flag", False)
            if flag or (isinstance(p, typer.core.TyperOption) and p.metavar is not None):
                continue
            try:
                label = p.display_type(None)  # a choice needs the context: it keeps its own label
            except (AttributeError, TypeError):
                continue
            if isinstance(p, typer.core.TyperOption):
                p.metavar = PLAIN_METAVARS.get(label)
            elif label in ("<str>", "<list[str]>"):  # an argument's name says what it is (MODEL, models...)
                p.display_type_rich = lambda ctx: None


def fail(message: str, code: int = 1) -> typer.Exit:
    """Say `message` as one red line on stderr; the Exit to raise with `code`. On a terminal the line starts by
    clearing the one the cursor is on: a progress bar cut off by the error (Keras' or tqdm's) would otherwise
    have the error written at its end."""
    import sys

    if sys.stderr.isatty():
        sys.stderr.write(CLEAR_LINE)
    typer.secho(f"error: {message}", fg=typer.colors.RED, err=True)
    return typer.Exit(code)


CLEAR_LINE = "\r\033[K"  # back to the line's start, erase to its end


def stopped() -> typer.Exit:
    """Ctrl-C or SIGTERM ended the command: say which, and exit 130 or 143 (never 0)."""
    from edgeseg import signals

    signals.note_interrupt()
    got = signals.received()
    what = {signals.signal.SIGTERM: "terminated (SIGTERM)", getattr(signals.signal, "SIGHUP", None): "hung up (SIGHUP)"}
    what = what.get(got, "interrupted")
    typer.secho(what, fg=typer.colors.YELLOW, err=True)
    return typer.Exit(signals.exit_code())


EXIT_SIGPIPE = 141  # 128 + SIGPIPE: what a Unix tool whose reader went away exits with


def handles_errors(fn):
    """A domain error becomes one red line and exit 1; Ctrl-C exits 130 without a traceback."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        from edgeseg import signals

        try:
            with signals.graceful_sigterm():
                result = fn(*args, **kwargs)
                signals.raise_if_stopped()  # a stop whose exception a library swallowed is still a stop
                return result
        except KeyboardInterrupt:
            raise stopped() from None
        except EdgesegError as e:  # said even after a stop: a stats file that could not be written must be told
            raise fail(str(e)) from None
        except BrokenPipeError:  # the reader of our output went away (| head -1): say so once, exit as Unix does
            import sys

            with contextlib.suppress(OSError):
                os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second error at exit
            typer.secho("stopped: the output's reader went away (broken pipe)", err=True)
            raise typer.Exit(EXIT_SIGPIPE) from None
        except ModuleNotFoundError as e:  # the device-only install has no TensorFlow for train and convert
            if (e.name or "").split(".")[0] in ("tensorflow", "keras", "tensorflow_cpu"):
                command = fn.__name__.rstrip("_")
                raise fail(
                    f"{command} needs Keras and TensorFlow, which this install does not have: "
                    "pip install 'edgeseg[train]' (on a workstation)"
                    + (
                        "; or train on JAX or PyTorch: pip install 'edgeseg[jax]' or 'edgeseg[torch]'"
                        * (command == "train")
                    )
                ) from None
            raise
        except (typer.Exit, typer.Abort, typer.exceptions.TyperException):
            raise  # the command's own exit (stopped() included): as it is
        except Exception:
            # A SIGTERM's exception that lands inside native code can come out as another error (a full run saw
            # "SystemError: bad argument to internal function" from inside Keras): after a stop signal, such an
            # error is the stop, said as one (exit 143 or 129). With no signal it is a bug: its traceback.
            if signals.stop_received():
                raise stopped() from None
            raise

    return wrapper


def finite_option(**kw):
    """typer.Option for a float: a finite number within min..max (either may be left out), else one line that
    says so. Typer's own range check lets nan through to a misleading "less than or equal to" message; a parser
    replaces that check, so this one does the range too (min and max still show in --help)."""
    lo, hi = kw.get("min"), kw.get("max")

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise typer.BadParameter(f"{text!r} is not a number") from None
        if not math.isfinite(value):
            raise typer.BadParameter(f"{text} is not a finite number")
        if (lo is not None and value < lo) or (hi is not None and value > hi):
            low = "" if lo is None else f"{lo:g}"
            high = "" if hi is None else f"{hi:g}"
            raise typer.BadParameter(f"{text} is not in the range {low}..{high}")
        return value

    return typer.Option(parser=parse, **kw)


def parse_size(text: str | None, what: str = "size") -> tuple[int, int] | None:
    """'WIDTHxHEIGHT' -> (height, width)."""
    if text is None:
        return None
    from edgeseg.limits import parse_wh

    return parse_wh(text, what)


def writable(*files: Path | None, folders: tuple[Path | None, ...] = ()) -> None:
    """Check every output a command was given before it starts work (OutputError names the path)."""
    from edgeseg.io import check_writable

    for f in files:
        if f is not None:
            check_writable(f)
    for d in folders:
        if d is not None:
            check_writable(d, folder=True)


def write_json(path: Path, data: dict, echo=typer.echo) -> None:
    """Write `data` as JSON to `path` atomically and say where (with `echo`)."""
    from edgeseg.io import atomic_write_text

    atomic_write_text(path, json.dumps(data, indent=2, default=_json_default) + "\n")
    echo(f"wrote {path}")


def _json_default(o):
    if hasattr(o, "item"):
        return o.item()
    if isinstance(o, Path):
        return str(o)
    raise TypeError(type(o).__name__)


def quiet_tensorflow() -> None:
    """TensorFlow imported with its load lines kept off the terminal (edgeseg.training.quiet_tf)."""
    from edgeseg.training.quiet_tf import quiet_tensorflow as quietly

    quietly()


def progress(desc: str):
    """A progress bar callback (done, total) on a terminal, else None."""
    from edgeseg.progress import progress_bar

    return progress_bar(desc)


def fmt(v, spec: str = ".1f") -> str:
    """A number for a table, or n/a for None."""
    return "n/a" if v is None else format(v, spec)


def one_model(argument: str | None, option: str | None, default: bool) -> Path:
    """MODEL argument or --model (a path or a shipped name) -> a model file; the shipped default if allowed."""
    from edgeseg.assets import resolve_model

    if argument and option:
        raise EdgesegError(f"give the model once: {argument!r} and --model {option!r}")
    text = argument or option
    if text is None:
        if not default:
            raise EdgesegError("no model given: a .tflite or .keras path, or a shipped model (nano, small)")
        return default_model()
    return resolve_model(text)


def default_model() -> Path:
    """The shipped default model, or an EdgesegError that says how to give one."""
    from edgeseg.assets import default_model

    path = default_model()
    if path is None:
        raise EdgesegError("no model given and none shipped with this install: edgeseg run MODEL.tflite --camera 0")
    return path
