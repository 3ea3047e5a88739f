"""edgeseg convert, quant-report and edgetpu: the workstation's side of a model."""

from __future__ import annotations

import sys
from dataclasses import replace
from pathlib import Path
from typing import Annotated

import typer

from edgeseg.cli.common import (
    EqualizeChoice,
    ExportFormatChoice,
    IODtypeChoice,
    JsonOpt,
    OutputSizeChoice,
    RknnPlatformChoice,
    handles_errors,
    progress,
    quiet_tensorflow,
    writable,
    write_json,
)
from edgeseg.errors import EdgesegError
from edgeseg.limits import MAX_IMAGES


@handles_errors
def convert(
    model: Annotated[
        str,
        typer.Argument(
            metavar="MODEL",
            help="Trained .keras model, or a shipped model's name (nano, small: its Keras weights; the output then "
            "goes to runs/convert/).",
        ),
    ],
    *,
    to: Annotated[
        ExportFormatChoice | None,
        typer.Option(
            "--to",
            help="tflite (LiteRT, the Edge TPU, MediaPipe), onnx (ONNX Runtime, Hailo; opset 17), "
            "openvino (IR: .xml + .bin), ncnn (.param + .bin + spec) or rknn (Rockchip NPUs: .rknn + spec; "
            "--int8 or --fp16; needs rknn-toolkit2, see scripts/setup-rknn.sh).",
        ),
    ] = None,
    int8: Annotated[bool, typer.Option("--int8", help="Full-integer int8 (calibrated).")] = False,
    dynamic: Annotated[bool, typer.Option("--dynamic", help="Dynamic range: int8 weights, float activations.")] = False,
    fp16: Annotated[
        bool,
        typer.Option(
            "--fp16", help="float16 weights (half the size; fp16 arithmetic on CPUs that have it, such as the Pi 5's)."
        ),
    ] = False,
    onnx: Annotated[bool, typer.Option("--onnx", help="The same as --to onnx.")] = False,
    calibration: Annotated[
        Path | None,
        typer.Option(
            exists=True,
            help="Dataset or image folder for calibration (default: the training data recorded in the spec).",
        ),
    ] = None,
    num_calibration: Annotated[int, typer.Option(min=1, max=MAX_IMAGES, help="Calibration images.")] = 200,
    io: Annotated[
        IODtypeChoice | None,
        typer.Option(help="int8 model's input/output type (default: int8; uint8 with --mediapipe)."),
    ] = None,
    spec: Annotated[
        Path | None,
        typer.Option(exists=True, dir_okay=False, help="Model spec JSON (default: spec.json beside the model)."),
    ] = None,
    out: Annotated[Path | None, typer.Option(help="Output file (default: beside the model, named by target).")] = None,
    strict: Annotated[bool, typer.Option("--strict", help="Fail if the int8 model keeps any float op.")] = False,
    equalize: Annotated[
        EqualizeChoice,
        typer.Option(
            help="With --int8: before calibrating, rescale each BatchNorm-ReLU activation's channels to use the "
            "int8 range, compensated in the next layer (the float model is unchanged). It helps some models and "
            "hurts others: auto builds both and keeps the one whose argmax agrees with Keras' more on at least 64 "
            "held-out images (twice the conversion time; docs/converting.md).",
        ),
    ] = EqualizeChoice.off,
    output_size: Annotated[
        OutputSizeChoice,
        typer.Option(
            help="Where the model's last resize stops: at the input size, or at half of it (nano: 0.35 ms less per "
            "640x480 frame on one core, -0.24 val mIoU; the mask still comes back at the frame's size).",
        ),
    ] = OutputSizeChoice.input,
    edgetpu_check: Annotated[
        bool,
        typer.Option("--edgetpu", help="With --int8: lint for the Edge TPU and run edgetpu_compiler when installed."),
    ] = False,
    report: Annotated[
        Path | None,
        typer.Option(
            file_okay=False,
            help="With --int8: write the quantisation report "
            "(float vs int8 on the val split of the calibration dataset) here.",
        ),
    ] = None,
    verify: Annotated[
        int, typer.Option(min=0, max=MAX_IMAGES, help="Held-out images to compare float vs converted argmax on.")
    ] = 8,
    json_out: JsonOpt = None,
    platform: Annotated[
        RknnPlatformChoice,
        typer.Option("--platform", help="With --to rknn: the Rockchip SoC to build for."),
    ] = RknnPlatformChoice.rk3588,
    mediapipe: Annotated[
        bool,
        typer.Option(
            "--mediapipe",
            help="Also write the standard TFLite Metadata (normalisation, labels, activation) that MediaPipe's "
            "ImageSegmenter reads.",
        ),
    ] = False,
) -> None:
    """Convert a Keras model to TFLite (float32 by default), ONNX, OpenVINO, ncnn or RKNN, with its spec; verify it."""
    from edgeseg.converters.pipeline import ConvertOptions  # numpy and OpenCV, no TensorFlow yet

    options = ConvertOptions(
        format=export_format(to, onnx),
        precision=precision(int8=int8, fp16=fp16, dynamic=dynamic),
        spec=spec,
        calibration=calibration,
        num_calibration=num_calibration,
        io_dtype=io.value if io is not None else None,
        verify_images=verify,
        strict=strict,
        mediapipe=mediapipe,
        report=report,
        edgetpu=edgetpu_check,
        platform=platform.value,
        equalize=equalize.value,
        output_size=output_size.value,
        progress=sys.stderr.isatty(),
    )
    target = options.check()  # a wrong combination is one line before TensorFlow loads
    from edgeseg.assets import resolve_keras

    model = resolve_keras(model)
    writable(out or target.default_output(model, options.io, options.output_size), json_out, folders=(report,))
    quiet_tensorflow()
    from edgeseg.converters.pipeline import convert as run_conversion

    said: set[str] = set()

    def log(msg: str) -> None:
        said.add(msg)
        typer.secho(msg, fg=typer.colors.YELLOW, err=True) if msg.startswith("warning:") else typer.echo(msg)

    r = run_conversion(model, out, replace(options, log=log))
    made = ", output at half the input size" * (options.output_size == "half")
    made += ", with MediaPipe's ImageSegmenter metadata" * mediapipe
    typer.echo(f"wrote {r.path} ({r.size_bytes / 1e6:.2f} MB, {r.target}{made}, {r.seconds:.1f} s)")
    for companion in r.files[1:]:
        typer.echo(f"  and {companion} beside it")
    typer.echo("ops: " + ", ".join(f"{k} {v}" for k, v in sorted(r.ops.ops.items())))
    if r.ops.fully_int8 is not None and options.precision == "int8":
        typer.echo("all ops and tensors int8" if r.ops.fully_int8 else f"NOT fully int8: {r.ops.non_int8_ops[:5]}")
    if r.calibration_images:
        typer.echo(f"calibrated on {r.calibration_images} images")
    if r.agreement is not None:
        typer.echo(f"argmax agreement with the Keras model: {100 * r.agreement:.2f}% of pixels on {r.verified_on}")
    elif r.verified_on:  # said, not skipped in silence: a conversion nobody compared with Keras
        typer.echo(f"argmax agreement with the Keras model: not checked, {r.verified_on}")
    for w in r.warnings:
        if f"warning: {w}" not in said:  # what was said before the work is not said again
            typer.secho(f"warning: {w}", fg=typer.colors.YELLOW, err=True)
    if r.report:
        _print_report(r.report)
    if r.edgetpu:
        _print_edgetpu(r.edgetpu)
    if json_out:
        write_json(json_out, r.to_dict())


def export_format(to, onnx: bool) -> str:
    """--to, with --onnx as its alias (EdgesegError when the two disagree)."""
    if onnx and to is not None and to.value != "onnx":
        raise EdgesegError(f"--onnx and --to {to.value} disagree: give one")
    return "onnx" if onnx else (to.value if to is not None else "tflite")


def precision(**flags: bool) -> str:
    """The precision named by the one flag given (float32 when none; EdgesegError for more than one)."""
    given = [name for name, on in flags.items() if on]
    if len(given) > 1:
        raise EdgesegError(f"choose one precision: --{' and --'.join(given)} were both given")
    return given[0] if given else "float32"


def _print_report(rep: dict) -> None:
    typer.echo(
        f"float mIoU {100 * rep['float_miou']:.2f}, int8 {100 * rep['int8_miou']:.2f} "
        f"({100 * rep['delta_miou']:+.2f}); pixels that disagree {100 * rep['pixel_disagreement']:.2f}%"
    )
    for sgt in rep["suggestions"]:
        typer.echo(f"  - {sgt}")
    typer.echo(f"wrote {rep['path']}")


def _print_edgetpu(result: dict) -> None:
    from edgeseg.converters.edgetpu import format_compiler
    from edgeseg.edgetpu import format_lint

    for line in format_lint(result["lint"]):
        typer.echo(line)
    for line in format_compiler(result["compiler"]) if "compiler" in result else []:
        typer.echo(line)


def _quant_report(float_path: Path, int8_path: Path, folder: Path, **options) -> None:
    from edgeseg.converters.quant_report import report_for_files

    path, res = report_for_files(float_path, int8_path, folder, progress=progress("report"), **options)
    _print_report({"path": str(path), **res})


@handles_errors
def quant_report(
    float_model: Annotated[
        Path, typer.Argument(exists=True, dir_okay=False, help="The float reference (.keras or float .tflite).")
    ],
    int8_model: Annotated[Path, typer.Argument(exists=True, dir_okay=False, help="The int8 .tflite.")],
    data: Annotated[
        Path | None,
        typer.Option(
            exists=True,
            help="Dataset to score on, a folder or a COCO JSON (val split; default: the training data the spec "
            "records).",
        ),
    ] = None,
    out: Annotated[Path, typer.Option(file_okay=False, help="Folder for report.md, report.json and images.")] = Path(
        "quant_report"
    ),
    calibration: Annotated[
        Path | None, typer.Option(exists=True, help="The calibration data, for its class coverage.")
    ] = None,
    keras: Annotated[
        Path | None,
        typer.Option(
            exists=True,
            dir_okay=False,
            help="The .keras model, for per-layer statistics when FLOAT_MODEL is a .tflite.",
        ),
    ] = None,
    limit: Annotated[int | None, typer.Option(min=1, max=MAX_IMAGES, help="Score only the first N images.")] = None,
    equalized: Annotated[
        bool,
        typer.Option(
            "--equalized",
            help="The int8 model was converted with its activations equalised (convert --equalize on, or auto where "
            "its result says equalized.applied): the per-layer statistics equalise them too.",
        ),
    ] = False,
) -> None:
    """Where int8 loses against float: per-class deltas, disagreement maps, worst layers, suggestions."""
    writable(folders=(out,))
    if float_model.suffix == ".keras" or keras is not None:
        quiet_tensorflow()
    _quant_report(
        float_model,
        int8_model,
        out,
        data=data,
        calibration=calibration,
        limit=limit,
        keras_path=keras,
        equalize=equalized,
    )


@handles_errors
def edgetpu(
    model: Annotated[Path, typer.Argument(exists=True, dir_okay=False, help="An int8 .tflite.")],
    compile_it: Annotated[
        bool, typer.Option("--compile/--lint-only", help="Run edgetpu_compiler when it is installed.")
    ] = True,
    json_out: JsonOpt = None,
) -> None:
    """Edge TPU readiness: lint the ops against the Edge TPU's supported list, then compile if possible."""
    from edgeseg.converters.pipeline import edgetpu_step

    writable(json_out)
    result = edgetpu_step(model, compile_it)
    _print_edgetpu(result)
    if json_out:
        write_json(json_out, result)
