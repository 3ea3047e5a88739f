"""Keras -> OpenVINO IR (the `openvino` extra): the .xml graph and its .bin weights, for Intel CPUs, GPUs and NPUs
and for the Arm CPUs OpenVINO runs on. Two targets, each a function of a Job that returns ModelFiles: float32,
and int8.

The route is the ONNX export (edgeseg.converters.onnx: the same graph ONNX Runtime runs) read by OpenVINO's
converter. The int8 model is quantised by NNCF's post-training quantisation on the same calibration images,
through the same preprocessing, as the TFLite int8 target: NNCF inserts FakeQuantize nodes that OpenVINO's CPU
plugin runs as int8 kernels. Input and output stay float32, NHWC as in Keras. The spec travels inside the .xml
(its rt_info, under `edgeseg_spec`)."""

from __future__ import annotations

import tempfile
from collections import Counter
from pathlib import Path

from edgeseg.converters.files import ModelFiles
from edgeseg.converters.job import Job
from edgeseg.converters.onnx import export
from edgeseg.converters.verify import OpReport
from edgeseg.errors import ModelError, missing_extra
from edgeseg.tflite_file import SPEC_METADATA_NAME

# What the op list leaves out: the graph's plumbing, not its work.
_PLUMBING = {"Parameter", "Result", "Constant", "Convert"}


def build_float32(job: Job) -> ModelFiles:
    """The float graph as OpenVINO IR (float32 weights), the spec in its rt_info."""
    return _save(_read(job), job)


def build_int8(job: Job) -> ModelFiles:
    """The float graph quantised by NNCF on the job's calibration set, the spec in its rt_info."""
    model = _read(job)
    try:
        import nncf
    except ImportError:
        raise missing_extra("nncf (for OpenVINO int8)", "openvino") from None
    tensors = list(job.calibration_tensors())
    try:
        quantised = nncf.quantize(model, nncf.Dataset(tensors), subset_size=len(tensors))
    except Exception as e:  # NNCF raises many kinds
        raise ModelError(f"OpenVINO int8 quantisation failed: {str(e).strip().splitlines()[-1][:300]}") from None
    return _save(quantised, job)


def _read(job: Job):
    try:
        import openvino as ov
    except ImportError:
        raise missing_extra("openvino", "openvino") from None
    import onnx

    with tempfile.TemporaryDirectory(prefix="edgeseg-openvino-") as tmp:
        path = Path(tmp) / "model.onnx"
        onnx.save(export(job), path)
        try:
            return ov.convert_model(path)
        except Exception as e:  # OpenVINO raises RuntimeError and its own kinds
            raise ModelError(f"OpenVINO conversion failed: {str(e).strip().splitlines()[-1][:300]}") from None


def _save(model, job: Job) -> ModelFiles:
    import openvino as ov

    model.set_rt_info(job.spec.to_json(), [SPEC_METADATA_NAME])
    with tempfile.TemporaryDirectory(prefix="edgeseg-openvino-") as tmp:
        xml = Path(tmp) / "model.xml"
        ov.save_model(model, xml, compress_to_fp16=False)  # float32 means float32 weights
        return ModelFiles(xml.read_bytes(), {".bin": xml.with_suffix(".bin").read_bytes()})


def ops(data: bytes, predictor) -> OpReport:
    """The IR's op types and counts (its plumbing left out). Not checked for int8, as for ONNX: OpenVINO keeps
    float tensors between FakeQuantize nodes and fuses them into int8 kernels when it compiles."""
    return OpReport(
        ops=Counter(t for t in (op.get_type_name() for op in predictor.model.get_ordered_ops()) if t not in _PLUMBING),
        checked=False,
    )
