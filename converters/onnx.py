"""convert_onnx: a trained .keras model -> an .onnx file (tf2onnx, opset 17, batch 1), with the model spec in the
ONNX metadata (`edgeseg_spec`), checked against Keras on a few images, written atomically. For runtimes that
take ONNX: ONNX Runtime (`edgeseg run|bench|eval MODEL.onnx`), OpenVINO, Hailo, RKNN."""

from __future__ import annotations

import itertools
import time
from collections import Counter
from pathlib import Path

from converters.calibration import calibration_set
from converters.tflite import ConversionResult
from converters.verify import OpReport, argmax_agreement
from edgeseg.errors import ModelError, missing_extra
from edgeseg.io import atomic_write_bytes
from edgeseg.tflite_file import SPEC_METADATA_NAME

OPSET = 17


def convert_onnx(
    model_path: Path,
    out: Path | None = None,
    *,
    spec=None,
    calibration: Path | None = None,
    verify_images: int = 8,
    log=print,
) -> ConversionResult:
    """Export `model_path` to ONNX beside it (or at `out`); compare its argmax with Keras' on `verify_images`
    images of `calibration` (default: the spec's training data)."""
    try:
        import onnx
        import tf2onnx
    except ImportError:
        raise missing_extra("tf2onnx and onnx (for --onnx)", "onnx") from None
    import tensorflow as tf

    from edgeseg.training.predict import KerasSegmenter

    t0 = time.perf_counter()
    keras_seg = KerasSegmenter(model_path, spec)
    spec = keras_seg.spec
    out = Path(out) if out else Path(model_path).with_suffix(".onnx")
    h, w = spec.input_hw
    fn = tf.function(lambda x: keras_seg.model(x, training=False))
    try:
        proto, _ = tf2onnx.convert.from_function(
            fn, input_signature=[tf.TensorSpec((1, h, w, 3), tf.float32, name="image")], opset=OPSET
        )
    except Exception as e:  # tf2onnx raises many kinds, with long logs
        raise ModelError(f"ONNX export failed: {str(e).strip().splitlines()[-1][:300]}") from None
    del proto.metadata_props[:]
    entry = proto.metadata_props.add()
    entry.key, entry.value = SPEC_METADATA_NAME, spec.to_json()
    onnx.checker.check_model(proto)
    data = proto.SerializeToString()
    ops = Counter(node.op_type for node in proto.graph.node)
    result = ConversionResult(Path(), "onnx", len(data), 0.0, OpReport(ops=ops))
    source = calibration or spec.train_data_from(Path(model_path).parent)
    if verify_images and source and Path(source).exists():
        frames = list(itertools.islice(calibration_set(Path(source), spec, verify_images).frames(), verify_images))
        result.agreement, result.verify_images = _agreement(data, keras_seg, frames), len(frames)
    atomic_write_bytes(out, data)
    result.path, result.seconds = out, time.perf_counter() - t0
    if result.agreement is not None and result.agreement < 0.99:
        result.warnings.append(f"the ONNX model agrees with Keras on only {100 * result.agreement:.2f}% of pixels")
    return result


def _agreement(data: bytes, keras_seg, frames) -> float:
    from edgeseg.onnx_runtime import OnnxSegmenter

    onnx_seg = OnnxSegmenter(data, name="converted.onnx")
    ref = [keras_seg.segment(f) for f in frames]
    got = [onnx_seg.segment(f) for f in frames]
    return argmax_agreement(ref, got)
