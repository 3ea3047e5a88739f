"""Keras -> TFLite, one small function per precision: float32, float16 weights, dynamic range (int8 weights, float
activations) and full-integer int8 (int8 weights and activations, int8 or uint8 input and output, calibrated on
sample images). Each takes a Job and returns the .tflite bytes with the spec embedded; edgeseg.converters.targets
lists them and edgeseg.converters.pipeline runs them.

The exported graph has a static batch of 1: a dynamic batch adds SHAPE/STRIDED_SLICE ops that split the XNNPACK
graph and that the Edge TPU compiler cannot map.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from edgeseg.converters.job import Job
from edgeseg.converters.metadata import embed_metadata
from edgeseg.converters.verify import OpReport, op_report
from edgeseg.errors import ModelError
from edgeseg.tflite_file import SPEC_METADATA_NAME


def keras_converter(model):
    """A TFLiteConverter for a Keras model, every input's batch fixed at 1. The one place that builds one
    (the targets here, the quantisation report's layer statistics, benchmarks/int8_costs.py, the tests' toy
    models). Inputs keep the model's order; a representative dataset yields a list in that order."""
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


def int8_settings(
    conv, representative: Callable[[], Iterable[list]], input_type: str = "int8", output_type: str | None = None
) -> None:
    """Set a TFLiteConverter for full-integer int8: every op an int8 builtin, calibrated on `representative`
    (a callable that yields one list of float32 input tensors per sample). The one place these settings are
    written: the int8 target, the quantisation report, benchmarks/int8_costs.py and the tests' toy models.

    Args:
        conv: the converter (keras_converter's).
        representative: the calibration samples.
        input_type: "int8", "uint8" or "float32" (a float input gets a QUANTIZE op in front).
        output_type: the same choices (default: input_type).
    """
    import tensorflow as tf

    types = {"int8": tf.int8, "uint8": tf.uint8, "float32": tf.float32}
    conv.optimizations = [tf.lite.Optimize.DEFAULT]
    conv.representative_dataset = representative
    conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    conv.inference_input_type = types[input_type]
    conv.inference_output_type = types[output_type or input_type]


def build_float32(job: Job) -> bytes:
    """float32 weights and activations."""
    return _convert(job, keras_converter(job.keras.model))


def build_fp16(job: Job) -> bytes:
    """float16 weights, float32 input and output: half the size of float32. On x86 the runtime widens the
    weights to float32 at load; XNNPACK can run the graph in fp16 arithmetic on CPUs that have it (ARMv8.2+, such
    as the Raspberry Pi 5's Cortex-A76), which this project's machines cannot measure."""
    import tensorflow as tf

    conv = keras_converter(job.keras.model)
    conv.optimizations = [tf.lite.Optimize.DEFAULT]
    conv.target_spec.supported_types = [tf.float16]
    return _convert(job, conv)


def build_dynamic(job: Job) -> bytes:
    """Dynamic range: int8 weights, float activations (no calibration)."""
    import tensorflow as tf

    conv = keras_converter(job.keras.model)
    conv.optimizations = [tf.lite.Optimize.DEFAULT]
    return _convert(job, conv)


def build_int8(job: Job) -> bytes:
    """Full-integer: int8 weights and activations, calibrated on the job's calibration set; int8 or uint8 input
    and output (job.io_dtype)."""
    conv = keras_converter(job.keras.model)
    int8_settings(conv, job.representative, job.io_dtype)
    return _convert(job, conv)


def _convert(job: Job, conv) -> bytes:
    from edgeseg.quiet import libraries_quiet

    try:
        with libraries_quiet():  # the converter's own notes (fully_quantize: 0, ..., its UserWarning on int8 inputs)
            flat = conv.convert()
    except Exception as e:  # the converter raises ConverterError and friends with long MLIR logs
        raise ModelError(f"TFLite conversion failed: {str(e).strip().splitlines()[-1][:300]}") from None
    flat = embed_metadata(bytes(flat), SPEC_METADATA_NAME, job.spec.to_json().encode())
    if job.mediapipe:
        flat = _with_segmenter_metadata(flat, job)
    return flat


def _with_segmenter_metadata(flat: bytes, job: Job) -> bytes:
    """flat with MediaPipe's ImageSegmenter metadata; the activation is SOFTMAX unless the Keras model ends in
    a softmax already (its output is then a probability)."""
    from edgeseg.converters.mediapipe import add_segmenter_metadata
    from edgeseg.postprocess import OutputKind

    model = job.keras.model
    if len(model.inputs) != 1 or job.keras.kind is not OutputKind.SCORES:
        raise ModelError("--mediapipe needs one image input and one [1,H,W,C] score output")
    last = model.layers[-1]
    activation = getattr(getattr(last, "activation", None), "__name__", "") or type(last).__name__.lower()
    return add_segmenter_metadata(flat, job.spec, "none" if activation == "softmax" else "softmax")


def ops(data: bytes, predictor) -> OpReport:
    """The converted model's ops, with those that are not int8, from its interpreter."""
    return op_report(predictor.interpreter)
