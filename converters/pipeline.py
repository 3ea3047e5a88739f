"""convert: a trained .keras model -> one target of edgeseg.converters.targets, as one pipeline.

load the Keras model and its spec -> calibrate (int8) -> build the target's bytes (spec embedded) -> load them
in the target's own runtime through the same predictor `run` uses -> list the ops (and, for TFLite int8, what
is not int8) -> compare the argmax with Keras' on images the calibration did not see -> write atomically ->
the quantisation report and the Edge TPU lint and compile, where asked for and where they apply.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path

from edgeseg.choices import EQUALIZE, IO_DTYPES, OUTPUT_SIZES, RKNN_PLATFORMS, check_choice
from edgeseg.converters.calibration import CalibrationSet, calibration_set, verification_frames
from edgeseg.converters.files import ModelFiles
from edgeseg.converters.job import Job
from edgeseg.converters.targets import Target, target_for
from edgeseg.converters.verify import OpReport, argmax_agreement
from edgeseg.errors import EdgesegError, ModelError
from edgeseg.predictors import Predictor, predictor_class
from edgeseg.spec import ModelSpec

# An int8 model moves some boundary pixels; agreement below these is a broken conversion, and said so.
AGREEMENT_FLOOR = {"float32": 0.99, "fp16": 0.99, "dynamic": 0.97, "int8": 0.95}
# --equalize auto compares on at least this many held-out images: on 8 it kept the worse build for 2 of the 4
# CamVid proxy models, on 32 and 64 the better one for all 4 (benchmarks/equalize_auto.py, docs/converting.md).
AUTO_CHECK_IMAGES = 64


@dataclass
class ConvertOptions:
    """How convert() converts.

    Attributes:
        format: "tflite", "onnx", "openvino", "ncnn" or "rknn" (edgeseg.choices.EXPORT_FORMATS).
        precision: "float32", "fp16", "dynamic" or "int8" (what the format offers: edgeseg.choices.TARGETS).
        spec: a ModelSpec or spec JSON (default: spec.json beside the model).
        calibration: a dataset or image folder for int8 (default: the training data the spec records).
        num_calibration: calibration images.
        io_dtype: an int8 TFLite model's input and output type (default: int8; uint8 with mediapipe).
        verify_images: images on which to compare the result's argmax with Keras' (0: none).
        strict: refuse an int8 TFLite model that keeps a float op.
        mediapipe: also write the standard TFLite Metadata that MediaPipe's ImageSegmenter reads.
        report: write the quantisation report (float vs int8 on the val split) into this folder (TFLite int8).
        edgetpu: lint the result for the Edge TPU, and compile it where edgetpu_compiler is installed
            (TFLite int8).
        platform: the Rockchip SoC an RKNN model is built for (edgeseg.choices.RKNN_PLATFORMS).
        equalize: before a calibrated (int8) target, even out the channels of each BatchNorm -> ReLU
            activation on the calibration images (edgeseg.converters.equalize; the float function is unchanged):
            "off", "on", or "auto" (build both, keep the one whose argmax agrees with Keras' more on at least
            AUTO_CHECK_IMAGES held-out images). True and False mean "on" and "off".
        output_size: "input", or "half": the model's last resize stops at half the input size
            (edgeseg.converters.output_size).
        progress: show bars while calibrating and reporting.
        log: where progress lines and warnings go.
    """

    format: str = "tflite"
    precision: str = "float32"
    spec: ModelSpec | Path | None = None
    calibration: Path | None = None
    num_calibration: int = 200
    io_dtype: str | None = None
    verify_images: int = 8
    strict: bool = False
    mediapipe: bool = False
    report: Path | None = None
    edgetpu: bool = False
    platform: str = "rk3588"
    equalize: str | bool = "off"
    output_size: str = "input"
    progress: bool = True
    log: Callable[[str], None] = print

    def check(self) -> Target:
        """The target, once every option has been checked against it (before any work)."""
        target = target_for(self.format, self.precision)
        if self.io_dtype is not None:
            check_choice(self.io_dtype, IO_DTYPES, "input/output type")
        check_choice(self.platform, RKNN_PLATFORMS, "RKNN platform")
        check_choice(self.output_size, OUTPUT_SIZES, "--output-size")
        target.ready()  # a missing toolkit is said now, not after TensorFlow loads and calibration runs
        self.equalize_mode  # noqa: B018 (checks it)
        if self.mediapipe and target.format != "tflite":
            raise EdgesegError("--mediapipe writes TFLite Metadata: it cannot go with --to onnx")
        if self.mediapipe and target.precision == "int8" and self.io_dtype == "int8":
            raise EdgesegError("MediaPipe's ImageSegmenter takes a uint8 or float32 image: use --io uint8 with --int8")
        return target

    @property
    def equalize_mode(self) -> str:
        """ "off", "on" or "auto" (EdgesegError for anything else)."""
        mode = self.equalize
        if isinstance(mode, bool):
            mode = "on" if mode else "off"
        return check_choice(str(mode), EQUALIZE, "--equalize mode")

    @property
    def io(self) -> str:
        """The int8 input/output type in effect."""
        return self.io_dtype or ("uint8" if self.mediapipe else "int8")

    def steps_that_do_not_apply(self, target: Target) -> list[str]:
        """The TFLite-int8 checks, and equalisation, asked for on a target they do not apply to, each said as a
        warning (they are skipped)."""
        said = []
        if self.equalize_mode != "off" and not target.calibrated:
            said.append(f"--equalize prepares a model for int8 calibration: ignored for {target.name}")
        if (target.format, target.precision) == ("tflite", "int8"):
            return said
        asked = (("--report", self.report is not None), ("--edgetpu", self.edgetpu), ("--strict", self.strict))
        return said + [f"{flag} checks an int8 TFLite model: ignored for {target.name}" for flag, on in asked if on]


@dataclass
class ConversionResult:
    """What a conversion wrote and measured."""

    path: Path
    target: str
    size_bytes: int
    seconds: float
    ops: OpReport
    agreement: float | None = None  # argmax agreement with the Keras model on verification images
    verify_images: int = 0
    verified_on: str = ""
    calibration_images: int = 0
    class_pixels: dict | None = None
    warnings: list[str] = field(default_factory=list)
    equalized: dict | None = None  # what activation equalisation did, and (auto) which build was kept
    report: dict | None = None  # the quantisation report's path and summary
    edgetpu: dict | None = None  # the Edge TPU lint (and compiler) result
    files: list[str] = field(default_factory=list)  # every file written, the main one first

    def to_dict(self) -> dict:
        """The result as JSON values (`convert --json`)."""
        return {
            "path": str(self.path),
            "files": self.files,
            "target": self.target,
            "size_bytes": self.size_bytes,
            "seconds": round(self.seconds, 2),
            "ops": self.ops.to_dict(),
            "argmax_agreement": self.agreement,
            "verify_images": self.verify_images,
            "verified_on": self.verified_on,
            "calibration_images": self.calibration_images,
            "calibration_class_pixels": self.class_pixels,
            "equalized": self.equalized,
            "warnings": self.warnings,
            "report": self.report,
            "edgetpu": self.edgetpu,
        }


def convert(
    model_path: Path, out: Path | None = None, options: ConvertOptions | None = None, **overrides
) -> ConversionResult:
    """Convert a .keras model to one target (`options`, or ConvertOptions fields given as keywords), verify it,
    write it atomically to `out` (default: beside the model, named by target), then run the report and lint
    steps asked for. Raises EdgesegError on anything the user can fix; nothing is written then."""
    o = replace(options or ConvertOptions(), **overrides)
    target = o.check()
    warnings = o.steps_that_do_not_apply(target)
    for w in warnings:
        o.log(f"warning: {w}")
    from edgeseg.predictors.keras import KerasSegmenter  # loads TensorFlow + Keras

    t0 = time.perf_counter()
    model_path = Path(model_path)
    keras = KerasSegmenter(model_path, spec=ModelSpec.load(o.spec) if isinstance(o.spec, str | Path) else o.spec)
    if o.output_size == "half":
        from edgeseg.converters.output_size import halve_output

        halve_output(keras)
    spec = with_cost(keras, target.precision)
    out = Path(out) if out else target.default_output(model_path, o.io, o.output_size)
    trained_on = spec.train_data_from(model_path.parent)
    cal = calibration_for(o, spec, o.calibration or trained_on) if target.calibrated else None
    job = Job(keras, spec, cal, o.io, o.mediapipe, progress=o.progress, log=o.log, platform=o.platform)
    mode = o.equalize_mode if cal is not None else "off"
    count = max(o.verify_images, AUTO_CHECK_IMAGES) if mode == "auto" else o.verify_images
    files, result = _build(job, target, _Check.of(keras, [trained_on, o.calibration], cal, count), mode)
    result.warnings = [*warnings, *(cal.warnings if cal else []), *result.warnings]  # _verify's own kept
    _check_int8(result, target, o.strict)
    from edgeseg import signals

    signals.raise_if_stopped()  # a SIGTERM swallowed inside TensorFlow's code leaves no model behind either
    files.write(out)
    result.path, result.size_bytes, result.seconds = out, files.size, time.perf_counter() - t0
    result.files = [str(p) for p in files.paths(out)]
    if cal:
        result.calibration_images, result.class_pixels = len(cal), cal.class_pixels
    if (target.format, target.precision) == ("tflite", "int8"):
        if o.report is not None:
            result.report = _report_step(model_path, out, o, bool(result.equalized and result.equalized["applied"]))
        if o.edgetpu:
            result.edgetpu = edgetpu_step(out, compile_it=True)
    return result


def _build(job: Job, target: Target, check: _Check, mode: str) -> tuple[ModelFiles, ConversionResult]:
    """The target built and verified: as it is ("off"), with its activations equalised ("on"), or both ways
    with the one whose argmax agrees with Keras' more on the check images kept ("auto")."""
    if mode == "off":
        files = ModelFiles.of(target.build(job))
        return files, _verify(files, target, check)
    from edgeseg.converters.equalize import equalized

    with equalized(job.keras.model, job.calibration_tensors()) as summary:
        if summary.changed:
            job.log(
                f"equalised {summary.channels} channels in {summary.changed} BatchNorm-ReLU activations "
                f"(largest factor {summary.largest_scale:.1f}) for int8"
            )
        files = ModelFiles.of(target.build(job))
    built = (files, _verify(files, target, check))
    said = {**summary.to_dict(), "mode": mode, "applied": summary.changed > 0}
    if mode == "auto" and summary.changed:
        plain_files = ModelFiles.of(target.build(job))
        plain = (plain_files, _verify(plain_files, target, check))
        a_eq, a_plain = built[1].agreement or 0.0, plain[1].agreement or 0.0
        said |= {"applied": a_eq > a_plain, "agreement": {"equalized": a_eq, "plain": a_plain}}
        job.log(
            f"--equalize auto: kept the {'equalised' if a_eq > a_plain else 'plain'} build (argmax agreement "
            f"with Keras {100 * a_eq:.2f}% equalised, {100 * a_plain:.2f}% plain, on {check.where})"
        )
        built = built if a_eq > a_plain else plain
    built[1].equalized = said
    return built


def with_cost(keras, precision: str | None = None) -> ModelSpec:
    """The Keras model's spec with its cost per frame (GMACs and parameters, counted on the Keras graph) and the
    build's precision in `extra["cost"]`: formats whose graphs edgeseg does not count (ONNX, OpenVINO, ncnn) report
    it from there, and `bench` holds a model against the int8 or the float roof by it."""
    d = keras.describe()
    cost = {"gmacs": d["gmacs"], "params": d["params"], "input_hw": list(keras.spec.input_hw)}
    if precision:
        cost["precision"] = precision
    return replace(keras.spec, extra={**keras.spec.extra, "cost": cost})


def calibration_for(o: ConvertOptions, spec: ModelSpec, source) -> CalibrationSet:
    """The calibration set `o` asks for, drawn from `source`; its warnings said through o.log."""
    if not source or not Path(source).exists():
        raise EdgesegError("int8 needs calibration images: give a dataset or an image folder with --calibration")
    held = spec.held_out()
    cal = calibration_set(Path(source), spec, o.num_calibration, hold_out=held)
    if held:
        o.log(f"calibration leaves out the frames held out of training ({', '.join(held)}), as eval scores them")
    for w in cal.warnings:
        o.log(f"warning: {w}")
    return cal


@dataclass
class _Check:
    """Images the calibration did not see, where they came from, and the Keras model's class maps of them."""

    frames: list
    where: str
    reference: list

    @classmethod
    def of(cls, keras, sources: list, cal: CalibrationSet | None, n: int) -> _Check:
        """Up to n frames from the first of `sources` that has images outside the calibration set."""
        frames, where = verification_frames(sources, keras.spec, n, exclude=cal)
        return cls(frames, where, [keras.segment(f) for f in frames])


def _verify(files: ModelFiles, target: Target, check: _Check) -> ConversionResult:
    """Run the converted model (_converted); list its ops; compare its argmax with Keras' on the check images."""
    with _converted(files, target) as converted:
        result = ConversionResult(Path(), target.name, files.size, 0.0, target.ops(files.main, converted))
        return _compare(result, target, converted, check)


@contextmanager
def _converted(files: ModelFiles, target: Target):
    """The converted model on the predictor that runs such a file, closed after the block: the live one a
    target hands over for a file no runtime here opens (RKNN's simulator), else one opened on the bytes of a
    one-file format, or on the main file in a temporary folder that holds its companions too."""
    if files.live is not None:
        try:
            yield files.live
        finally:
            files.live.close()
        return
    name = f"converted{target.suffix}"
    if not files.beside:
        yield predictor_class(Path(name))(files.main, threads=2, name=name)
        return
    with tempfile.TemporaryDirectory(prefix="edgeseg-convert-") as tmp:
        yield predictor_class(Path(name))(files.write(Path(tmp) / name), threads=2, name=name)


def _compare(result: ConversionResult, target: Target, converted, check: _Check) -> ConversionResult:
    """The converted model's argmax against Keras' on the check frames; a warning below the floor."""
    result.verified_on = check.where
    if check.frames:
        got = [converted.segment(f) for f in check.frames]
        result.agreement, result.verify_images = argmax_agreement(check.reference, got), len(check.frames)
    floor = AGREEMENT_FLOOR[target.precision]
    if result.agreement is not None and result.agreement < floor:
        result.warnings.append(
            f"the converted model agrees with Keras on only {100 * result.agreement:.2f}% of pixels "
            f"(expected at least {100 * floor:.0f}% for {target.precision})"
        )
    return result


def _check_int8(result: ConversionResult, target: Target, strict: bool) -> None:
    if (target.format, target.precision) != ("tflite", "int8") or result.ops.fully_int8:
        return
    ops = result.ops
    msg = f"not fully int8: {', '.join(ops.non_int8_ops[:8]) or ', '.join(ops.non_int8_tensors[:8])}"
    if strict:
        raise ModelError(msg + " (--strict)")
    result.warnings.append(msg)


def _report_step(model_path: Path, int8_path: Path, o: ConvertOptions, equalized: bool) -> dict:
    """The quantisation report for the pair just written (`equalized`: its activations were): path and summary."""
    from edgeseg.converters.quant_report import report_for_files
    from edgeseg.progress import progress_bar

    path, res = report_for_files(
        model_path,
        int8_path,
        o.report,
        calibration=o.calibration,
        spec=o.spec,
        num_calibration=o.num_calibration,
        progress=progress_bar("report") if o.progress else None,
        equalize=equalized,
    )
    keep = ("float_miou", "int8_miou", "delta_miou", "pixel_disagreement", "suggestions")
    return {"path": str(path), **{k: res[k] for k in keep}}


def edgetpu_step(model: Path, compile_it: bool) -> dict:
    """Lint an int8 .tflite for the Edge TPU, and compile it when asked and edgetpu_compiler is installed (an
    already compiled model is not compiled again): {"lint": ..., "compiler": ...}."""
    from edgeseg.converters.edgetpu import compile_model
    from edgeseg.edgetpu import lint

    rep = lint(model)
    result = {"lint": rep.to_dict()}
    if compile_it and not rep.compiled:
        result["compiler"] = compile_model(model)
    return result


def rknn_simulator(
    model_path: Path,
    precision: str = "int8",
    platform: str = "rk3588",
    calibration: Path | None = None,
    num_calibration: int = 200,
    progress: bool = False,
    log=print,
) -> Predictor:
    """A .keras model built for RKNN as `convert --to rknn` builds it, running in the toolkit's simulator: a
    predictor (an edgeseg.converters.rknn.RknnSimulator) to score on a dataset (benchmarks/rknn_sim.py). Close it
    when done (or use it in a `with`).

    Args:
        model_path: the .keras model (its spec beside it).
        precision: "int8" or "fp16".
        platform: the Rockchip SoC (edgeseg.choices.RKNN_PLATFORMS).
        calibration: a dataset or image folder for int8 (default: the training data the spec records).
        num_calibration: calibration images.
        progress: show a bar while calibrating.
        log: where progress lines and warnings go.
    """
    from edgeseg.converters.rknn import build_fp16, build_int8
    from edgeseg.predictors.keras import KerasSegmenter

    if precision not in ("int8", "fp16"):
        raise EdgesegError(f"RKNN builds int8 or fp16, not {precision!r}")
    keras = KerasSegmenter(Path(model_path))
    spec = with_cost(keras, precision)
    cal = None
    if precision == "int8":
        source = calibration or spec.train_data_from(Path(model_path).parent)
        cal = calibration_for(ConvertOptions(num_calibration=num_calibration, log=log), spec, source)
    job = Job(keras, spec, cal, progress=progress, log=log, platform=platform)
    return (build_int8 if precision == "int8" else build_fp16)(job).live
