"""convert_keras: a trained .keras model -> a .tflite file, one small function per target.

TARGETS lists them: float32, float16 weights, dynamic-range (int8 weights, float activations) and full-integer
int8 (int8 weights and activations, int8 or uint8 input/output, calibrated on sample images). The exported graph has a
static batch of 1: a dynamic batch adds SHAPE/STRIDED_SLICE ops that split the XNNPACK graph and that the
Edge TPU compiler cannot map. The model spec is embedded as metadata; the file is written atomically.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

from converters.calibration import CalibrationSet, calibration_set
from converters.metadata import embed_metadata
from converters.verify import OpReport, argmax_agreement, op_report
from edgeseg.choices import IO_DTYPES
from edgeseg.errors import EdgesegError, ModelError
from edgeseg.io import atomic_write_bytes
from edgeseg.postprocess import index_mask, output_kind
from edgeseg.spec import ModelSpec
from edgeseg.tflite_file import SPEC_METADATA_NAME


@dataclass(frozen=True)
class Target:
    suffix: str
    configure: Callable  # (converter, tf, options) -> None
    calibrated: bool = False


def _float(conv, tf, opts) -> None:
    pass


def _dynamic(conv, tf, opts) -> None:
    conv.optimizations = [tf.lite.Optimize.DEFAULT]


def _fp16(conv, tf, opts) -> None:
    # float16 weights, float32 input/output: half the size of float32. On x86 the runtime widens the weights
    # to float32 at load; XNNPACK can run the graph in fp16 arithmetic on CPUs that have it (ARMv8.2+, e.g. the
    # Raspberry Pi 5's Cortex-A76), which this project's machines cannot measure.
    conv.optimizations = [tf.lite.Optimize.DEFAULT]
    conv.target_spec.supported_types = [tf.float16]


def _int8(conv, tf, opts) -> None:
    conv.optimizations = [tf.lite.Optimize.DEFAULT]
    conv.representative_dataset = opts["representative"]
    conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    io = {"int8": tf.int8, "uint8": tf.uint8}[opts["io_dtype"]]
    conv.inference_input_type = io
    conv.inference_output_type = io


TARGETS = {
    "float": Target("float32", _float),  # float32 weights and activations
    "fp16": Target("float16", _fp16),  # float16 weights, float32 input and output
    "dynamic": Target("dynamic", _dynamic),  # int8 weights, float activations (no calibration)
    "int8": Target("int8", _int8, calibrated=True),  # full-integer: int8 weights and activations
}


@dataclass
class ConversionResult:
    path: Path
    target: str
    size_bytes: int
    seconds: float
    ops: OpReport
    agreement: float | None = None  # argmax agreement with the Keras model on verification images
    verify_images: int = 0
    calibration_images: int = 0
    class_pixels: dict | None = None
    warnings: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        ops = self.ops.to_dict()
        if self.target.startswith("onnx"):  # the int8 check reads TFLite tensors; an ONNX graph only counts its ops
            ops = {"ops": ops["ops"]}
        return {
            "path": str(self.path),
            "target": self.target,
            "size_bytes": self.size_bytes,
            "seconds": round(self.seconds, 2),
            "ops": ops,
            "argmax_agreement": self.agreement,
            "verify_images": self.verify_images,
            "calibration_images": self.calibration_images,
            "calibration_class_pixels": self.class_pixels,
            "warnings": self.warnings,
        }


def keras_converter(model):
    """A TFLiteConverter for a Keras model, every input's batch fixed at 1. The one place that builds one
    (convert_keras, the quantisation report's layer statistics, benchmarks/int8_costs.py): a dynamic batch adds
    SHAPE/STRIDED_SLICE ops that split the XNNPACK graph and that the Edge TPU compiler cannot map. Inputs keep
    the model's order; a representative dataset yields a list in that order."""
    import tensorflow as tf

    signature = [
        tf.TensorSpec((1, *t.shape[1:]), tf.float32, name=f"input_{i}" if i else "image")
        for i, t in enumerate(model.inputs)
    ]
    if len(signature) == 1:
        fn = tf.function(lambda x: model(x, training=False), input_signature=signature)
    else:
        fn = tf.function(lambda *xs: model(list(xs), training=False), input_signature=signature)
    return tf.lite.TFLiteConverter.from_concrete_functions([fn.get_concrete_function()], fn)


@dataclass
class ConvertOptions:
    """How convert_keras converts. target: one of TARGETS; spec: a ModelSpec or spec JSON (default: the one
    beside the model); calibration: a dataset or image folder for int8 (default: the spec's train_data);
    io_dtype: the int8 model's input and output type; verify_images: images on which to compare the result's
    argmax with Keras'; strict: refuse an int8 model that keeps a float op; mediapipe: also write the standard
    TFLite Metadata that MediaPipe's ImageSegmenter reads (needs a float or uint8 input); progress: a calibration
    bar; log: where progress lines and warnings go."""

    target: str = "float"
    spec: ModelSpec | Path | None = None
    calibration: Path | None = None
    num_calibration: int = 200
    io_dtype: str = "int8"
    verify_images: int = 8
    strict: bool = False
    mediapipe: bool = False
    progress: bool = True
    log: Callable[[str], None] = print

    def check(self) -> None:
        if self.target not in TARGETS:
            raise EdgesegError(f"unknown target {self.target!r}: choose one of {', '.join(TARGETS)}")
        if self.io_dtype not in IO_DTYPES:
            raise EdgesegError(f"unknown input/output type {self.io_dtype!r}: choose one of {', '.join(IO_DTYPES)}")
        if self.mediapipe and self.target == "int8" and self.io_dtype != "uint8":
            raise EdgesegError("MediaPipe's ImageSegmenter takes a uint8 or float32 image: use --io uint8 with --int8")


def default_output(model_path: Path, target: str, io_dtype: str = "int8") -> Path:
    suffix = TARGETS[target].suffix if target != "int8" else io_dtype
    return Path(model_path).with_name(f"{Path(model_path).stem}_{suffix}.tflite")


def convert_keras(
    model_path: Path, out: Path | None = None, options: ConvertOptions | None = None, **overrides
) -> ConversionResult:
    """Convert a .keras model (`options`, or ConvertOptions fields given as keywords), embed its spec, verify the
    result against Keras, and write it atomically to `out` (default: beside the model, named by target).
    Raises EdgesegError on anything the user can fix."""
    o = replace(options or ConvertOptions(), **overrides)
    o.check()
    import tensorflow as tf

    from edgeseg.training.predict import KerasSegmenter  # loads TensorFlow + Keras

    t0 = time.perf_counter()
    keras_seg = KerasSegmenter(model_path, o.spec)
    spec = keras_seg.spec
    out = Path(out) if out else default_output(Path(model_path), o.target, o.io_dtype)
    cal_source = o.calibration or spec.train_data_from(Path(model_path).parent)
    cal = _calibration(o, spec, cal_source) if TARGETS[o.target].calibrated else None

    conv = keras_converter(keras_seg.model)
    TARGETS[o.target].configure(
        conv, tf, {"representative": _representative(cal, spec, o.progress), "io_dtype": o.io_dtype}
    )
    try:
        flat = conv.convert()
    except Exception as e:  # the converter raises ConverterError and friends with long MLIR logs
        raise ModelError(f"TFLite conversion failed: {str(e).strip().splitlines()[-1][:300]}") from None
    flat = embed_metadata(bytes(flat), SPEC_METADATA_NAME, spec.to_json().encode())
    if o.mediapipe:
        flat = _with_segmenter_metadata(flat, keras_seg)

    result = _verify(flat, keras_seg, o.target, cal, o.calibration or cal_source, o.verify_images)
    result.warnings = list(cal.warnings) if cal else []
    if o.target == "int8" and not result.ops.fully_int8:
        msg = f"not fully int8: {', '.join(result.ops.non_int8_ops[:8]) or ', '.join(result.ops.non_int8_tensors[:8])}"
        if o.strict:
            raise ModelError(msg + " (--strict)")
        result.warnings.append(msg)
    atomic_write_bytes(out, flat)
    result.path, result.size_bytes, result.seconds = out, len(flat), time.perf_counter() - t0
    if cal:
        result.calibration_images, result.class_pixels = len(cal), cal.class_pixels
    return result


def _with_segmenter_metadata(flat: bytes, keras_seg) -> bytes:
    """flat with MediaPipe's ImageSegmenter metadata; the activation is SOFTMAX unless the Keras model ends in
    a softmax already (its output is then a probability)."""
    from converters.mediapipe import add_segmenter_metadata
    from edgeseg.postprocess import OutputKind

    model = keras_seg.model
    if len(model.inputs) != 1 or keras_seg.kind is not OutputKind.SCORES:
        raise ModelError("--mediapipe needs one image input and one [1,H,W,C] score output")
    last = model.layers[-1]
    activation = getattr(getattr(last, "activation", None), "__name__", "") or type(last).__name__.lower()
    return add_segmenter_metadata(flat, keras_seg.spec, "none" if activation == "softmax" else "softmax")


def _calibration(o: ConvertOptions, spec: ModelSpec, source) -> CalibrationSet:
    if not source or not Path(source).exists():
        raise EdgesegError("int8 needs calibration images: give a dataset or an image folder with --calibration")
    cal = calibration_set(Path(source), spec, o.num_calibration)
    for w in cal.warnings:
        o.log(f"warning: {w}")
    return cal


def _representative(cal: CalibrationSet | None, spec: ModelSpec, progress: bool):
    """The converter's representative dataset: the calibration tensors, one list per sample."""

    def representative():
        tensors = cal.tensors(spec)
        if progress:
            from tqdm import tqdm

            tensors = tqdm(tensors, total=len(cal), desc="calibrating", unit="img", leave=False)
        for t in tensors:
            yield [t]

    return representative


def _verify(flat: bytes, keras_seg, target: str, cal: CalibrationSet | None, source, n: int) -> ConversionResult:
    """Load the converted bytes in an interpreter; list its ops; compare its argmax with Keras' on n images."""
    from edgeseg.runtime import pick_runtime

    rt = pick_runtime("auto")
    it = rt.interpreter_cls(model_content=flat, num_threads=2)
    it.allocate_tensors()
    ops = op_report(it)
    result = ConversionResult(Path(), target, len(flat), 0.0, ops)
    frames = []
    if cal is not None:
        frames = list(itertools.islice(cal.frames(), n))
    elif source and Path(source).exists():
        frames = list(itertools.islice(calibration_set(Path(source), keras_seg.spec, n).frames(), n))
    if not frames:
        return result
    from edgeseg.preprocess import preprocess

    inp, outp = it.get_input_details()[0], it.get_output_details()[0]
    kind = output_kind(outp)
    ref, got = [], []
    for frame in frames:
        x, _ = preprocess(frame, keras_seg.spec, keras_seg.input_detail)
        ref.append(index_mask(keras_seg.logits(x), keras_seg.output_detail, keras_seg.kind))
        q, _ = preprocess(frame, keras_seg.spec, inp)
        it.set_tensor(inp["index"], q)
        it.invoke()
        got.append(index_mask(it.get_tensor(outp["index"]), outp, kind))
    result.agreement = argmax_agreement(ref, got)
    result.verify_images = len(frames)
    return result
