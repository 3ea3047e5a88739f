"""Edge TPU readiness: lint an int8 .tflite against the Edge TPU's supported operations before compiling,
run edgetpu_compiler when it is installed, and turn its log into JSON.

The supported-operations table is transcribed from Coral's documentation, "TensorFlow models on the Edge TPU",
section "Supported operations" (coral.ai/docs/edgetpu/models-intro/#supported-operations), for compiler 16;
the limitations are shortened. Op-version limits are not in that table: the one enforced here,
TRANSPOSE_CONV above version 3, is the compiler's own error ("Didn't find op for builtin opcode
'TRANSPOSE_CONV' version '4'", google-coral/edgetpu issue 845), which today's converter produces when a
Conv2DTranspose is followed by BatchNormalization and an activation (both fold into the op).
"""

from __future__ import annotations

import re
import shutil
import subprocess
from dataclasses import asdict, dataclass, field
from pathlib import Path

from edgeseg.tflite_file import GraphOp, GraphTensor, read_graph, read_model_bytes

SOURCE = "coral.ai/docs/edgetpu/models-intro/#supported-operations (Edge TPU compiler 16)"

# TFLite builtin -> limitation note ("" when none is documented).
SUPPORTED = {
    "ADD": "", "AVERAGE_POOL_2D": "no fused activation", "CONCATENATION": "no fused activation; a constant input "
    "must be all zeros (padding)", "CONV_2D": "same dilation in x and y", "DEPTHWISE_CONV_2D": "same dilation in x "
    "and y", "EXPAND_DIMS": "runtime 13+", "FULLY_CONNECTED": "default weights format; 1-D output",
    "L2_NORMALIZATION": "", "LOGISTIC": "", "UNIDIRECTIONAL_SEQUENCE_LSTM": "runtime 14+", "MAXIMUM": "",
    "MAX_POOL_2D": "no fused activation", "MEAN": "no reduction over the batch", "MINIMUM": "", "MUL": "",
    "PACK": "runtime 13+, not along the batch", "PAD": "not along the batch", "PRELU": "runtime 13+, alpha per "
    "channel only", "QUANTIZE": "runtime 13+", "REDUCE_MAX": "runtime 14+", "REDUCE_MIN": "runtime 14+",
    "RELU": "", "RELU6": "", "RELU_N1_TO_1": "", "RESHAPE": "large tensors may not map",
    "RESIZE_BILINEAR": "3-D input/output; may stay on the CPU for some sizes (precision)",
    "RESIZE_NEAREST_NEIGHBOR": "3-D input/output; may stay on the CPU for some sizes (precision)",
    "RSQRT": "runtime 14+", "SLICE": "", "SOFTMAX": "1-D input, at most 16,000 elements",
    "SPACE_TO_DEPTH": "", "SPLIT": "not along the batch", "SQUEEZE": "", "STRIDED_SLICE": "all strides 1, no "
    "ellipsis or new-axis masks", "SUB": "", "SUM": "runtime 13+, not along the batch", "SQUARED_DIFFERENCE":
    "runtime 14+", "TANH": "", "TRANSPOSE": "runtime 14+", "TRANSPOSE_CONV": "",
    "HARD_SWISH": "", "DEQUANTIZE": "",
}
MAX_VERSION = {"TRANSPOSE_CONV": 3}
LARGE_RESIZE = 1_000_000  # output elements above which the compiler may keep a resize on the CPU
WHY = {
    "TILE": "TILE is not supported (UpSampling2D with nearest interpolation becomes TILE): use bilinear resize",
    "SHAPE": "SHAPE comes from a dynamic batch: export with a static batch of 1",
    "ARG_MAX": "ARG_MAX is not supported: take the argmax on the CPU after the model",
    "GATHER": "GATHER is not supported",
}


@dataclass
class Finding:
    op: str
    index: int
    severity: str  # "cpu": will run on the CPU; "warn": may not map; "error": the compiler will refuse the model
    reason: str


@dataclass
class LintReport:
    model: str
    ops: int
    findings: list[Finding] = field(default_factory=list)
    source: str = SOURCE

    @property
    def ready(self) -> bool:
        return not any(f.severity in ("cpu", "error") for f in self.findings)

    def to_dict(self) -> dict:
        first_cpu = next((f.index for f in self.findings if f.severity in ("cpu", "error")), None)
        return {"model": self.model, "ops": self.ops, "ready": self.ready, "first_cpu_op": first_cpu,
                "findings": [asdict(f) for f in self.findings], "table": self.source}


def lint(model: Path) -> LintReport:
    buf = read_model_bytes(model)
    ops, tensors = read_graph(buf, str(model))
    rep = LintReport(str(model), len(ops))
    for op in ops:
        rep.findings += _check(op, tensors)
    return rep


def _check(op: GraphOp, tensors: list[GraphTensor]) -> list[Finding]:
    out = []
    if op.name not in SUPPORTED:
        reason = WHY.get(op.name, f"{op.name} is not in the Edge TPU's supported operations")
        out.append(Finding(op.name, op.index, "cpu", reason + "; it and every op after it run on the CPU"))
        return out
    if op.version > MAX_VERSION.get(op.name, 99):
        out.append(Finding(op.name, op.index, "error", f"{op.name} version {op.version}: compiler 16 knows up to "
                           f"version {MAX_VERSION[op.name]} and refuses the model (BatchNormalization + activation "
                           "after a Conv2DTranspose fold into it: upsample with a bilinear resize + conv instead)"))
    # activations only: the op's data input and its outputs (weights are 4-D and may be int32 biases)
    for t in (tensors[i] for i in op.inputs[:1] + op.outputs if 0 <= i < len(tensors)):
        if -1 in t.shape_signature:
            out.append(Finding(op.name, op.index, "cpu", f"tensor {t.name!r} has a dynamic shape "
                               f"{list(t.shape_signature)}: export with static shapes (batch 1)"))
            break
        if t.dtype in ("float32", "float16", "int16", "int64") and op.name not in ("QUANTIZE", "DEQUANTIZE"):
            out.append(Finding(op.name, op.index, "cpu", f"tensor {t.name!r} is {t.dtype}: the Edge TPU needs the "
                               "whole graph in 8-bit (convert with --int8)"))
            break
        if sum(1 for d in t.shape if d > 1) > 3:
            out.append(Finding(op.name, op.index, "cpu", f"tensor {t.name!r} {list(t.shape)} has more than 3 "
                               "dimensions above 1"))
            break
    if op.name.startswith("RESIZE_"):
        o = tensors[op.outputs[0]]
        n = 1
        for d in o.shape:
            n *= max(d, 1)
        if n > LARGE_RESIZE:
            out.append(Finding(op.name, op.index, "warn", f"large resize ({'x'.join(map(str, o.shape))}): the "
                               "compiler may keep it on the CPU to protect precision"))
    return out


# ------------------------------------------------------------------------------------------- the compiler
INSTALL_HINT = ("edgetpu_compiler is not installed: it runs on x86-64 Debian/Ubuntu from Coral's apt repository "
                "(package edgetpu-compiler), or in Coral's Colab notebook; edgeseg never installs it for you")


def parse_compiler_log(text: str) -> dict:
    """edgetpu_compiler's stdout (-s for the per-op table) -> JSON-able summary."""
    out: dict = {"compiled": False, "errors": [], "operators": []}
    m = re.search(r"Edge TPU Compiler version (\S+)", text)
    out["compiler_version"] = m.group(1) if m else None
    out["compiled"] = "Model compiled successfully" in text
    keys = {
        "Input model": "input_model", "Input size": "input_size", "Output model": "output_model",
        "Output size": "output_size", "On-chip memory used for caching model parameters": "on_chip_used",
        "On-chip memory remaining for caching model parameters": "on_chip_remaining",
        "Off-chip memory used for streaming uncached model parameters": "off_chip_used",
        "Number of Edge TPU subgraphs": "tpu_subgraphs", "Total number of operations": "total_ops",
        "Number of operations that will run on Edge TPU": "ops_on_tpu",
        "Number of operations that will run on CPU": "ops_on_cpu", "Operation log": "operation_log",
    }
    for line in text.splitlines():
        line = line.strip()
        if line.startswith("ERROR:"):
            out["errors"].append(line[6:].strip())
            continue
        key, sep, value = line.partition(":")
        if sep and key in keys:
            value = value.strip()
            field_name = keys[key]
            out[field_name] = int(value) if value.isdigit() else value
            if field_name in ("input_size", "output_size", "on_chip_used", "on_chip_remaining", "off_chip_used"):
                out[field_name + "_bytes"] = _bytes(value)
        row = re.match(r"^([A-Z][A-Z0-9_]+|edgetpu-custom-op)\s+(\d+)\s+(\S.*)$", line)
        if row and not line.startswith("Operator"):
            out["operators"].append({"operator": row.group(1), "count": int(row.group(2)), "status": row.group(3),
                                     "on_tpu": row.group(3).startswith("Mapped to Edge TPU")})
    if "Invalid model" in text or "Model could not be parsed" in text:
        out["compiled"] = False
    if out["operators"] and "ops_on_tpu" not in out:
        out["ops_on_tpu"] = sum(r["count"] for r in out["operators"] if r["on_tpu"])
        out["ops_on_cpu"] = sum(r["count"] for r in out["operators"] if not r["on_tpu"])
    return out


def _bytes(text: str) -> int | None:
    m = re.match(r"([\d.]+)\s*(B|KiB|MiB|GiB)", text)
    if not m:
        return None
    return int(float(m.group(1)) * {"B": 1, "KiB": 2**10, "MiB": 2**20, "GiB": 2**30}[m.group(2)])


def compile_model(model: Path, out_dir: Path | None = None, timeout: int = 600) -> dict:
    exe = shutil.which("edgetpu_compiler")
    if exe is None:
        return {"compiled": False, "skipped": INSTALL_HINT}
    out_dir = Path(out_dir or Path(model).parent)
    proc = subprocess.run([exe, "-s", "-o", str(out_dir), str(model)], capture_output=True, text=True,
                          timeout=timeout)
    result = parse_compiler_log(proc.stdout + "\n" + proc.stderr)
    result["returncode"] = proc.returncode
    return result
