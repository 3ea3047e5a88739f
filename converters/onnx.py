"""convert_onnx: a trained .keras model -> an .onnx file (tf2onnx, opset 17, batch 1), with the model spec in the
ONNX metadata (`edgeseg_spec`), checked against Keras on a few images, written atomically. For runtimes that
take ONNX: ONNX Runtime (`edgeseg run|bench|eval MODEL.onnx`), OpenVINO, Hailo, RKNN.

With int8=True the float graph is then quantised statically by onnxruntime.quantization: QDQ format (the
QuantizeLinear/DequantizeLinear pairs that ONNX Runtime, OpenVINO and TensorRT fuse into int8 kernels), int8
weights per tensor, uint8 activations (ONNX Runtime's fast U8S8 path on x86), calibrated with min/max on the
same calibration images, through the same preprocessing, as `convert --int8` for TFLite. Input and output stay
float32."""

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
    int8: bool = False,
    num_calibration: int = 200,
    log=print,
) -> ConversionResult:
    """Export `model_path` to ONNX beside it (or at `out`); with `int8`, quantise it on `num_calibration` images of
    `calibration`; compare its argmax with Keras' on `verify_images` images of `calibration` (default: the
    spec's training data)."""
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
    out = Path(out) if out else Path(model_path).with_name(f"{Path(model_path).stem}{'_int8' if int8 else ''}.onnx")
    source = calibration or spec.train_data_from(Path(model_path).parent)
    h, w = spec.input_hw
    fn = tf.function(lambda x: keras_seg.model(x, training=False))
    try:
        proto, _ = tf2onnx.convert.from_function(
            fn, input_signature=[tf.TensorSpec((1, h, w, 3), tf.float32, name="image")], opset=OPSET
        )
    except Exception as e:  # tf2onnx raises many kinds, with long logs
        raise ModelError(f"ONNX export failed: {str(e).strip().splitlines()[-1][:300]}") from None
    target = "onnx"
    if int8:
        if not source or not Path(source).exists():
            raise ModelError(
                "an int8 ONNX needs calibration images: give a dataset or an image folder with --calibration"
            )
        cal = calibration_set(Path(source), spec, num_calibration)
        for w in cal.warnings:
            log(f"warning: {w}")
        proto, target = _quantise(proto, cal, spec), "onnx-int8"
    del proto.metadata_props[:]
    entry = proto.metadata_props.add()
    entry.key, entry.value = SPEC_METADATA_NAME, spec.to_json()
    onnx.checker.check_model(proto)
    data = proto.SerializeToString()
    ops = Counter(node.op_type for node in proto.graph.node)
    result = ConversionResult(Path(), target, len(data), 0.0, OpReport(ops=ops))
    if int8:
        result.calibration_images = len(cal)
    if verify_images and source and Path(source).exists():
        frames = list(itertools.islice(calibration_set(Path(source), spec, verify_images).frames(), verify_images))
        result.agreement, result.verify_images = _agreement(data, keras_seg, frames), len(frames)
    atomic_write_bytes(out, data)
    result.path, result.seconds = out, time.perf_counter() - t0
    floor = 0.95 if int8 else 0.99  # int8 moves some boundary pixels; more than this is a broken conversion
    if result.agreement is not None and result.agreement < floor:
        result.warnings.append(f"the ONNX model agrees with Keras on only {100 * result.agreement:.2f}% of pixels")
    return result


def _quantise(proto, cal, spec):
    """The float ModelProto quantised statically (QDQ, int8 weights, uint8 activations, min/max calibration on
    `cal`). Measured on the nano CamVid model (val mIoU, float 60.71): per-tensor weights 59.48, per-channel
    58.28, per-channel with int8 activations 58.52, reduce_range 31.41; percentile calibration was no better
    (59.42) and took 11 GB. On AVX2 ONNX Runtime multiplies uint8 by int8 with VPMADDUBSW, whose 16-bit sums
    can saturate: the wider per-channel weights lose more there."""
    import tempfile

    import onnx
    from onnxruntime.quantization import (
        CalibrationDataReader,
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_static,
    )

    name = proto.graph.input[0].name

    class Reader(CalibrationDataReader):
        def __init__(self):
            self._tensors = cal.tensors(spec)

        def get_next(self):
            t = next(self._tensors, None)
            return None if t is None else {name: t}

    with tempfile.TemporaryDirectory(prefix="edgeseg-onnx-") as tmp:
        f32, q8 = Path(tmp) / "float.onnx", Path(tmp) / "int8.onnx"
        onnx.save(proto, f32)
        try:
            quantize_static(
                str(f32),
                str(q8),
                Reader(),
                quant_format=QuantFormat.QDQ,
                per_channel=False,
                activation_type=QuantType.QUInt8,
                weight_type=QuantType.QInt8,
                calibrate_method=CalibrationMethod.MinMax,
                extra_options={"CalibMaxIntermediateOutputs": 16},  # fold min/max every 16 images: bounded memory
            )
        except Exception as e:  # onnxruntime raises many kinds
            raise ModelError(f"ONNX int8 quantisation failed: {str(e).strip().splitlines()[-1][:300]}") from None
        return onnx.load(q8)


def _agreement(data: bytes, keras_seg, frames) -> float:
    from edgeseg.onnx_runtime import OnnxSegmenter

    onnx_seg = OnnxSegmenter(data, name="converted.onnx")
    ref = [keras_seg.segment(f) for f in frames]
    got = [onnx_seg.segment(f) for f in frames]
    return argmax_agreement(ref, got)
