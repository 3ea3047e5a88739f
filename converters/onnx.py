"""Keras -> ONNX (tf2onnx, opset 17, batch 1) with the model spec in the ONNX metadata (`edgeseg_spec`), for runtimes
that take ONNX: ONNX Runtime (`edgeseg run|bench|eval MODEL.onnx`), OpenVINO, Hailo, RKNN. Two targets, each a
function of a Job that returns the .onnx bytes: float32, and int8.

The int8 graph is the float one quantised statically by onnxruntime.quantization: QDQ format (the
QuantizeLinear/DequantizeLinear pairs that ONNX Runtime, OpenVINO and TensorRT fuse into int8 kernels), int8
weights per output channel, uint8 activations (ONNX Runtime's fast U8S8 path on x86), calibrated with min/max on the
same calibration images, through the same preprocessing, as the TFLite int8 target. Input and output stay
float32."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from edgeseg.converters.job import Job
from edgeseg.converters.verify import OpReport
from edgeseg.errors import ModelError, missing_extra
from edgeseg.tflite_file import SPEC_METADATA_NAME

OPSET = 17


def build_float32(job: Job) -> bytes:
    """The float graph, exported by tf2onnx, with the spec in its metadata."""
    return _finish(export(job))


def build_int8(job: Job) -> bytes:
    """The float graph quantised statically on the job's calibration set (QDQ), with the spec in its metadata."""
    return _finish(_quantise(export(job), job))


def export(job: Job, channels_first: bool = False):
    """The job's Keras model as an ONNX ModelProto (float32, batch 1, the spec in its metadata). The input and
    output are NHWC like the Keras model's; `channels_first` makes both NCHW (what ncnn's converter takes),
    tf2onnx's optimiser then cancels the transposes that would otherwise stand at either end."""
    try:
        import onnx  # noqa: F401  (tf2onnx needs it; say which extra when it is missing)
        import tf2onnx
    except ImportError:
        raise missing_extra("tf2onnx and onnx (for ONNX)", "onnx") from None
    import tensorflow as tf

    h, w = job.spec.input_hw
    model = job.keras.model
    fn = tf.function(lambda x: model(x, training=False))
    signature = [tf.TensorSpec((1, h, w, 3), tf.float32, name="image")]
    layout = {}
    if channels_first:
        outputs = [t.name for t in fn.get_concrete_function(*signature).outputs]
        layout = {"inputs_as_nchw": ["image"], "outputs_as_nchw": outputs}
    try:
        proto, _ = tf2onnx.convert.from_function(fn, input_signature=signature, opset=OPSET, **layout)
    except Exception as e:  # tf2onnx raises many kinds, with long logs
        raise ModelError(f"ONNX export failed: {str(e).strip().splitlines()[-1][:300]}") from None
    proto.ClearField("metadata_props")
    entry = proto.metadata_props.add()
    entry.key, entry.value = SPEC_METADATA_NAME, job.spec.to_json()
    return proto


def fold_zero_pads(proto):
    """Every zero Pad in front of a convolution (Keras' ZeroPadding2D before MobileNetV2's strided convolutions)
    folded into the convolution's own padding, by onnxoptimizer: pnnx (ncnn) leaves such a Pad unconverted, and
    rknn-toolkit2's own fusion of it fails."""
    try:
        import onnxoptimizer
    except ImportError:
        raise missing_extra("onnxoptimizer (for ncnn and RKNN)", "ncnn") from None
    return onnxoptimizer.optimize(proto, ["fuse_pad_into_conv"])


def _finish(proto) -> bytes:
    import onnx

    onnx.checker.check_model(proto)
    return proto.SerializeToString()


# onnxruntime.quantization.quantize_static's settings, by name (benchmarks/onnx_int8.py compares others)
QUANTISATION = {
    "quant_format": "QDQ",
    "per_channel": True,
    "activation_type": "QUInt8",
    "weight_type": "QInt8",
    "calibrate_method": "MinMax",
}


def _quantise(proto, job: Job):
    """The float ModelProto quantised statically per QUANTISATION (QDQ, int8 weights per output channel, uint8
    activations, min/max calibration on the job's images).

    Per-channel weights, measured on the shipped models (CamVid val mIoU, float 78.00 small / 68.69 nano): 77.71 /
    68.40 on an AVX-512 VNNI Xeon, where per-tensor weights scored 67.57 / 67.80 (small's dense decoder has
    output channels whose weights span very different ranges). On AVX2 without VNNI (emulated), where ONNX Runtime
    multiplies uint8 by int8 with VPMADDUBSW and its 16-bit sums can saturate, per-channel still won on both
    (benchmarks/onnx_int8.py). reduce_range (7-bit weights) lost 18 points on small and 42 on nano."""
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
            self._tensors = iter(job.calibration_tensors())

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
                quant_format=QuantFormat[QUANTISATION["quant_format"]],
                per_channel=bool(QUANTISATION["per_channel"]),
                reduce_range=bool(QUANTISATION.get("reduce_range", False)),
                activation_type=QuantType[QUANTISATION["activation_type"]],
                weight_type=QuantType[QUANTISATION["weight_type"]],
                calibrate_method=CalibrationMethod[QUANTISATION["calibrate_method"]],
                extra_options={"CalibMaxIntermediateOutputs": 16},  # fold min/max every 16 images: bounded memory
            )
        except Exception as e:  # onnxruntime raises many kinds
            raise ModelError(f"ONNX int8 quantisation failed: {str(e).strip().splitlines()[-1][:300]}") from None
        quantised = onnx.load(q8)
    quantised.ClearField("metadata_props")
    quantised.metadata_props.extend(proto.metadata_props)
    return quantised


def ops(data: bytes, predictor) -> OpReport:
    """The converted graph's op types and counts. Its int8 check is not made: an ONNX graph keeps float tensors
    between QDQ pairs by design, and what a runtime fuses is the runtime's business."""
    import onnx

    proto = onnx.load_from_string(data)
    return OpReport(ops=Counter(node.op_type for node in proto.graph.node), checked=False)
