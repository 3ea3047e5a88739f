"""edgeseg convert, quant-report and edgetpu: the workstation's side of a model."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from edgeseg.cli.common import IODtypeChoice, JsonOpt, handles_errors, progress, quiet_tensorflow, writable, write_json
from edgeseg.errors import EdgesegError
from edgeseg.limits import MAX_IMAGES


@handles_errors
def convert(
    model: Annotated[Path, typer.Argument(exists=True, dir_okay=False, help="Trained .keras model.")],
    *,
    int8: Annotated[bool, typer.Option("--int8", help="Full-integer int8 (calibrated).")] = False,
    dynamic: Annotated[bool, typer.Option("--dynamic", help="Dynamic range: int8 weights, float activations.")] = False,
    fp16: Annotated[
        bool,
        typer.Option(
            "--fp16", help="float16 weights (half the size; fp16 arithmetic on CPUs that have it, such as the Pi 5's)."
        ),
    ] = False,
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
    out: Annotated[Path | None, typer.Option(help="Output .tflite (default: beside the model).")] = None,
    strict: Annotated[bool, typer.Option("--strict", help="Fail if the int8 model keeps any float op.")] = False,
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
        int, typer.Option(min=0, max=MAX_IMAGES, help="Images to compare float vs converted argmax on.")
    ] = 8,
    json_out: JsonOpt = None,
    onnx: Annotated[
        bool,
        typer.Option(
            "--onnx",
            help="ONNX (opset 17) for ONNX Runtime, OpenVINO, Hailo or RKNN, instead of TFLite; with --int8, "
            "statically quantised (QDQ).",
        ),
    ] = False,
    mediapipe: Annotated[
        bool,
        typer.Option(
            "--mediapipe",
            help="Also write the standard TFLite Metadata (normalisation, labels, activation) that MediaPipe's "
            "ImageSegmenter reads.",
        ),
    ] = False,
) -> None:
    """Convert a Keras model to TFLite (float32 by default) or ONNX, embed its spec, verify the result."""
    if int8 + dynamic + fp16 + onnx > 1 and not (onnx and int8 and not (dynamic or fp16)):
        raise EdgesegError("choose one of --int8, --dynamic, --fp16 and --onnx (or --onnx --int8 for an int8 ONNX)")
    writable(out, json_out, folders=(report, model.parent if out is None else None))  # default: beside it
    quiet_tensorflow()
    if onnx and mediapipe:
        raise EdgesegError("--mediapipe writes TFLite Metadata: it cannot go with --onnx")
    io_dtype = io.value if io is not None else "uint8" if mediapipe and int8 else "int8"
    if onnx:
        for flag, given in (("--report", report), ("--edgetpu", edgetpu_check), ("--strict", strict)):
            if given:
                typer.secho(
                    f"warning: {flag} checks a TFLite model: ignored with --onnx", fg=typer.colors.YELLOW, err=True
                )
        _convert_onnx(model, out, spec, calibration, verify, json_out, int8, num_calibration)
        return
    from converters.tflite import ConvertOptions, convert_keras  # TensorFlow stays out of `edgeseg run`

    target = "int8" if int8 else "dynamic" if dynamic else "fp16" if fp16 else "float"
    logged: set[str] = set()

    def log(msg: str) -> None:
        logged.add(msg)
        typer.echo(msg)

    options = ConvertOptions(
        target=target,
        spec=spec,
        calibration=calibration,
        num_calibration=num_calibration,
        io_dtype=io_dtype,
        verify_images=verify,
        strict=strict,
        mediapipe=mediapipe,
        progress=sys.stderr.isatty(),
        log=log,
    )
    result = convert_keras(model, out, options)
    r = result
    typer.echo(f"wrote {r.path} ({r.size_bytes / 1e6:.2f} MB, {r.target}, {r.seconds:.1f} s)")
    ops = ", ".join(f"{k} {v}" for k, v in sorted(r.ops.ops.items()))
    typer.echo(f"ops: {ops}")
    if r.target == "int8":
        typer.echo("all ops and tensors int8" if r.ops.fully_int8 else f"NOT fully int8: {r.ops.non_int8_ops[:5]}")
        typer.echo(f"calibrated on {r.calibration_images} images")
    if r.agreement is not None:
        typer.echo(
            f"argmax agreement with the Keras model: {100 * r.agreement:.2f}% of pixels on {r.verify_images} images"
        )
    for w in r.warnings:
        if f"warning: {w}" not in logged:  # calibration warnings were said before the work; say each once
            typer.secho(f"warning: {w}", fg=typer.colors.YELLOW, err=True)
    out_json = r.to_dict()
    if report is not None:
        if r.target != "int8":
            typer.secho("warning: --report needs an int8 model: add --int8", fg=typer.colors.YELLOW, err=True)
        else:
            out_json["report"] = str(
                _quant_report(
                    model, r.path, report, calibration=calibration, spec=spec, num_calibration=num_calibration
                )
            )
    if edgetpu_check:
        if r.target != "int8":
            typer.secho("warning: --edgetpu needs an int8 model: add --int8", fg=typer.colors.YELLOW, err=True)
        else:
            out_json["edgetpu"] = _edgetpu_report(r.path, True)
    if json_out:
        write_json(json_out, out_json)


def _convert_onnx(
    model: Path, out: Path | None, spec, calibration, verify: int, json_out, int8: bool, num_calibration: int
) -> None:
    from converters.onnx import convert_onnx

    r = convert_onnx(
        model,
        out,
        spec=spec,
        calibration=calibration,
        verify_images=verify,
        int8=int8,
        num_calibration=num_calibration,
        log=typer.echo,
    )
    kind = "onnx opset 17" + (f", int8 QDQ calibrated on {r.calibration_images} images" if int8 else "")
    typer.echo(f"wrote {r.path} ({r.size_bytes / 1e6:.2f} MB, {kind}, {r.seconds:.1f} s)")
    if r.agreement is not None:
        typer.echo(
            f"argmax agreement with the Keras model: {100 * r.agreement:.2f}% of pixels on {r.verify_images} images"
        )
    for w in r.warnings:
        typer.secho(f"warning: {w}", fg=typer.colors.YELLOW, err=True)
    if json_out:
        write_json(json_out, r.to_dict())


def _quant_report(float_path: Path, int8_path: Path, folder: Path, **options) -> Path:
    from converters.quant_report import report_for_files

    path, res = report_for_files(float_path, int8_path, folder, progress=progress("report"), **options)
    typer.echo(
        f"float mIoU {100 * res['float_miou']:.2f}, int8 {100 * res['int8_miou']:.2f} "
        f"({100 * res['delta_miou']:+.2f}); pixels that disagree {100 * res['pixel_disagreement']:.2f}%"
    )
    for sgt in res["suggestions"]:
        typer.echo(f"  - {sgt}")
    typer.echo(f"wrote {path}")
    return path


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
            file_okay=False,
            help="Dataset to score on (val split; default: the training data the spec records).",
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
) -> None:
    """Where int8 loses against float: per-class deltas, disagreement maps, worst layers, suggestions."""
    writable(folders=(out,))
    if float_model.suffix == ".keras" or keras is not None:
        quiet_tensorflow()
    _quant_report(float_model, int8_model, out, data=data, calibration=calibration, limit=limit, keras_path=keras)


def _edgetpu_report(model: Path, compile_it: bool) -> dict:
    from converters.edgetpu import SOURCE, compile_model, lint

    rep = lint(model)
    d = rep.to_dict()
    typer.echo(f"Edge TPU lint of {model.name} ({d['ops']} ops) against {SOURCE}:")
    if rep.compiled:
        typer.echo("  already compiled for the Edge TPU (it holds an edgetpu-custom-op): not linted or compiled again")
        compile_it = False
    elif not rep.findings:
        typer.secho("  every op is on the Edge TPU's supported list, int8, with static shapes", fg=typer.colors.GREEN)
    for f in rep.findings:
        colour = {"error": typer.colors.RED, "cpu": typer.colors.YELLOW}.get(f.severity)
        typer.secho(f"  op {f.index:>3} {f.op:<20} {f.severity:<5} {f.reason}", fg=colour)
    part = d["partition"]
    verb = "the compiler put" if rep.compiled else "predicted after compiling:"
    typer.echo(
        f"  {verb} {part['edgetpu']} op(s) on the Edge TPU, {part['cpu-prefix']} on the CPU before it and "
        f"{part['cpu-suffix']} after it" + (f": {', '.join(d['cpu_ops'])}" if d["cpu_ops"] else "")
    )
    result = {"lint": d}
    if compile_it:
        comp = compile_model(model)
        result["compiler"] = comp
        if "skipped" in comp:
            typer.echo(f"  {comp['skipped']}")
        elif comp.get("compiled"):
            typer.echo(
                f"  compiled ({comp.get('compiler_version')}): {comp.get('ops_on_tpu')} ops on the Edge TPU, "
                f"{comp.get('ops_on_cpu', 0)} on the CPU; on-chip memory {comp.get('on_chip_used')}, "
                f"output {comp.get('output_model')}"
            )
        else:
            typer.secho(
                f"  edgetpu_compiler refused the model: {'; '.join(comp['errors']) or 'see its log'}",
                fg=typer.colors.RED,
            )
    return result


@handles_errors
def edgetpu(
    model: Annotated[Path, typer.Argument(exists=True, dir_okay=False, help="An int8 .tflite.")],
    compile_it: Annotated[
        bool, typer.Option("--compile/--lint-only", help="Run edgetpu_compiler when it is installed.")
    ] = True,
    json_out: JsonOpt = None,
) -> None:
    """Edge TPU readiness: lint the ops against the Edge TPU's supported list, then compile if possible."""
    writable(json_out)
    result = _edgetpu_report(model, compile_it)
    if json_out:
        write_json(json_out, result)
