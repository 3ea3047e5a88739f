"""Edge TPU readiness, read from the flatbuffer alone (no TensorFlow, no compiler): lint an int8 .tflite against the
Edge TPU's supported operations and predict how the compiler will partition it. `edgeseg info` and `edgetpu` use
it on any machine; edgeseg.converters.edgetpu runs the compiler itself where it is installed.

The supported-operations table is transcribed from Coral's documentation, "TensorFlow models on the Edge TPU",
section "Supported operations" (coral.ai/docs/edgetpu/models-intro/#supported-operations), for compiler 16;
the limitations are shortened. Op-version limits are not in that table: the one enforced here,
TRANSPOSE_CONV above version 3, is the compiler's own error ("Didn't find op for builtin opcode
'TRANSPOSE_CONV' version '4'", google-coral/edgetpu issue 845), which today's converter produces when a
Conv2DTranspose is followed by BatchNormalization and an activation (both fold into the op).

Partition (`LintReport.placement`, `cpu_ops`): compiler 16 without `-a` (multiple subgraphs) makes one
`edgetpu-custom-op` for one Edge TPU segment. Ops that cannot map and that depend on no Edge TPU op stay before
it on the CPU (a CPU prefix, such as a float-input QUANTIZE); an op that cannot map after the segment begins
stays on the CPU, and so does every op that depends on it, through data dependencies (a CPU suffix); a supported
op that does not depend on the suffix stays in the segment, wherever it sits in op order. Checked against
Coral's compiled DeepLabV3 pair (`deeplabv3_mnv2_pascal_quant{,_edgetpu}.tflite`): the 8 ops it keeps on the
CPU are the 8 predicted, in order, and the two 1x1 convolutions in op order just before the first CPU op stay on
the Edge TPU because nothing on the CPU feeds them.

The resize rule is inferred, not documented: Coral says only that a resize "may not be mapped, depending on
input/output size, to avoid loss in precision". In that pair the compiler kept on the CPU a RESIZE_BILINEAR that
upsamples 1x1 to 33x33; here a resize that enlarges a side more than MAX_UPSCALE times is predicted to stay
on the CPU (our models resize by 2, 4 or 8 at most). A resize whose output is very large gets a warning.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path

from edgeseg.tflite_checks import check_graph
from edgeseg.tflite_file import GraphOp, GraphTensor, elements, read_model_bytes

SOURCE = "coral.ai/docs/edgetpu/models-intro/#supported-operations (Edge TPU compiler 16)"

# TFLite builtin -> limitation note ("" when none is documented).
SUPPORTED = {
    "ADD": "",
    "AVERAGE_POOL_2D": "no fused activation",
    "CONCATENATION": "no fused activation; a constant input must be all zeros (padding)",
    "CONV_2D": "same dilation in x and y",
    "DEPTHWISE_CONV_2D": "same dilation in x and y",
    "EXPAND_DIMS": "runtime 13+",
    "FULLY_CONNECTED": "default weights format; 1-D output",
    "L2_NORMALIZATION": "",
    "LOGISTIC": "",
    "UNIDIRECTIONAL_SEQUENCE_LSTM": "runtime 14+",
    "MAXIMUM": "",
    "MAX_POOL_2D": "no fused activation",
    "MEAN": "no reduction over the batch",
    "MINIMUM": "",
    "MUL": "",
    "PACK": "runtime 13+, not along the batch",
    "PAD": "not along the batch",
    "PRELU": "runtime 13+, alpha per channel only",
    "QUANTIZE": "runtime 13+",
    "REDUCE_MAX": "runtime 14+",
    "REDUCE_MIN": "runtime 14+",
    "RELU": "",
    "RELU6": "",
    "RELU_N1_TO_1": "",
    "RESHAPE": "large tensors may not map",
    "RESIZE_BILINEAR": "3-D input/output; may stay on the CPU for some sizes (precision)",
    "RESIZE_NEAREST_NEIGHBOR": "3-D input/output; may stay on the CPU for some sizes (precision)",
    "RSQRT": "runtime 14+",
    "SLICE": "",
    "SOFTMAX": "1-D input, at most 16,000 elements",
    "SPACE_TO_DEPTH": "",
    "SPLIT": "not along the batch",
    "SQUEEZE": "",
    "STRIDED_SLICE": "all strides 1, no ellipsis or new-axis masks",
    "SUB": "",
    "SUM": "runtime 13+, not along the batch",
    "SQUARED_DIFFERENCE": "runtime 14+",
    "TANH": "",
    "TRANSPOSE": "runtime 14+",
    "TRANSPOSE_CONV": "",
    "HARD_SWISH": "",
    "DEQUANTIZE": "",
}
MAX_VERSION = {"TRANSPOSE_CONV": 3}
LARGE_RESIZE = 1_000_000  # output elements above which the compiler may keep a resize on the CPU
MAX_UPSCALE = 8  # a resize that enlarges a side more than this stays on the CPU (inferred; see above)
CUSTOM_OP = "edgetpu-custom-op"
WHY = {
    "TILE": "TILE is not supported (UpSampling2D with nearest interpolation becomes TILE): use bilinear resize",
    "SHAPE": "SHAPE comes from a dynamic batch: export with a static batch of 1",
    "ARG_MAX": "ARG_MAX is not supported: take the argmax on the CPU after the model",
    "GATHER": "GATHER is not supported",
}


@dataclass
class Finding:
    """One op's problem for the Edge TPU, and how bad it is."""

    op: str
    index: int
    severity: str  # "cpu": will run on the CPU; "warn": may not map; "error": the compiler will refuse the model
    reason: str


@dataclass
class LintReport:
    """A model's lint: its findings and where each op is predicted to run."""

    model: str
    ops: int
    findings: list[Finding] = field(default_factory=list)
    source: str = SOURCE
    op_names: list[str] = field(default_factory=list)
    placement: list[str] = field(default_factory=list)  # per op: "cpu-prefix" | "edgetpu" | "cpu-suffix"
    compiled: bool = False  # the file is already compiled: its CPU ops are the compiler's, not a prediction

    @property
    def ready(self) -> bool:
        """Nothing keeps an op on the CPU or makes the compiler refuse the model."""
        return not self.compiled and not any(f.severity in ("cpu", "error") for f in self.findings)

    @property
    def cpu_ops(self) -> list[str]:
        """The op names, one entry per op in op order, that stay on the CPU after compiling."""
        return [n for n, p in zip(self.op_names, self.placement, strict=True) if p != "edgetpu"]

    def to_dict(self) -> dict:
        """The report as JSON values."""
        first_cpu = next((f.index for f in self.findings if f.severity in ("cpu", "error")), None)
        return {
            "model": self.model,
            "ops": self.ops,
            "ready": self.ready,
            "compiled": self.compiled,
            "first_cpu_op": first_cpu,
            "cpu_ops": self.cpu_ops,
            "partition": {p: self.placement.count(p) for p in ("cpu-prefix", "edgetpu", "cpu-suffix")},
            "findings": [asdict(f) for f in self.findings],
            "table": self.source,
        }


def lint(model: Path) -> LintReport:
    """Check each op of an int8 .tflite against the Edge TPU's rules and predict the compiler's partition.
    On a file that is already compiled, report the split the compiler made."""
    buf = read_model_bytes(model)
    graph = check_graph(buf, Path(model).name)  # a damaged file is one line, not an IndexError in the checks
    ops, tensors = graph.ops, graph.tensors
    rep = LintReport(str(model), len(ops), op_names=[op.name for op in ops])
    if any(op.name == CUSTOM_OP for op in ops):
        rep.compiled = True
        rep.placement = ["edgetpu" if op.name == CUSTOM_OP else "cpu-suffix" for op in ops]
        first = next(op.index for op in ops if op.name == CUSTOM_OP)
        rep.placement[:first] = ["cpu-prefix"] * first
        return rep
    for op in ops:
        rep.findings += check_op(op, tensors)
    unmapped = {f.index for f in rep.findings if f.severity in ("cpu", "error")}
    rep.placement = partition(ops, unmapped)
    return rep


def partition(ops: list[GraphOp], unmapped: set[int]) -> list[str]:
    """Where each op runs after compiling (see the module's docstring): walk the ops in execution order (a
    .tflite lists them so) and follow which op produced each input."""
    producer = {t: op.index for op in ops for t in op.outputs}
    place: list[str] = []
    after_tpu: list[bool] = []  # the op depends, directly or not, on an Edge TPU op
    for op in ops:
        deps = [producer[t] for t in op.inputs if t in producer]
        feeds_from_tpu = any(place[d] == "edgetpu" or after_tpu[d] for d in deps)
        if any(place[d] == "cpu-suffix" for d in deps):
            where = "cpu-suffix"
        elif op.index in unmapped:
            where = "cpu-suffix" if feeds_from_tpu else "cpu-prefix"
        else:
            where = "edgetpu"
        place.append(where)
        after_tpu.append(feeds_from_tpu)
    return place


def check_op(op: GraphOp, tensors: list[GraphTensor]) -> list[Finding]:
    """What keeps one op off the Edge TPU ("cpu"), makes the compiler refuse the model ("error"), or may keep
    it off ("warn")."""
    out = []
    if op.name not in SUPPORTED:
        reason = WHY.get(op.name, f"{op.name} is not in the Edge TPU's supported operations")
        out.append(
            Finding(op.name, op.index, "cpu", reason + "; it runs on the CPU, and so does every op that depends on it")
        )
        return out
    if op.version > MAX_VERSION.get(op.name, 99):
        out.append(
            Finding(
                op.name,
                op.index,
                "error",
                f"{op.name} version {op.version}: compiler 16 knows up to "
                f"version {MAX_VERSION[op.name]} and refuses the model (BatchNormalization + activation "
                "after a Conv2DTranspose fold into it: upsample with a bilinear resize + conv instead)",
            )
        )
    # activations only: the op's data input and its outputs (weights are 4-D and may be int32 biases)
    for t in (tensors[i] for i in op.inputs[:1] + op.outputs if 0 <= i < len(tensors)):
        if -1 in t.shape_signature:
            out.append(
                Finding(
                    op.name,
                    op.index,
                    "cpu",
                    f"tensor {t.name!r} has a dynamic shape "
                    f"{list(t.shape_signature)}: export with static shapes (batch 1)",
                )
            )
            break
        if t.dtype in ("float32", "float16", "int16", "int64"):
            why = (
                (
                    "converts between float and 8-bit: it stays on the CPU (use --int8 with 8-bit input and output "
                    "to keep it out)"
                )
                if op.name in ("QUANTIZE", "DEQUANTIZE")
                else "the Edge TPU needs the whole graph in 8-bit (convert with --int8)"
            )
            out.append(Finding(op.name, op.index, "cpu", f"tensor {t.name!r} is {t.dtype}: {why}"))
            break
        if sum(1 for d in t.shape if d > 1) > 3:
            out.append(
                Finding(
                    op.name, op.index, "cpu", f"tensor {t.name!r} {list(t.shape)} has more than 3 dimensions above 1"
                )
            )
            break
    if op.name.startswith("RESIZE_") and op.inputs and op.outputs:
        i, o = tensors[op.inputs[0]], tensors[op.outputs[0]]
        if len(i.shape) == 4 and len(o.shape) == 4:
            factor = max(o.shape[1] / max(i.shape[1], 1), o.shape[2] / max(i.shape[2], 1))
            if factor > MAX_UPSCALE:
                out.append(
                    Finding(
                        op.name,
                        op.index,
                        "cpu",
                        f"resize {i.shape[1]}x{i.shape[2]} -> "
                        f"{o.shape[1]}x{o.shape[2]} enlarges {factor:.3g}x (more than {MAX_UPSCALE}x): "
                        "the compiler keeps such a resize on the CPU (seen in Coral's compiled "
                        "DeepLabV3); upsample in steps of 2-8x instead",
                    )
                )
        n = elements(o.shape)
        if n > LARGE_RESIZE and not any(f.severity == "cpu" for f in out):
            out.append(
                Finding(
                    op.name,
                    op.index,
                    "warn",
                    f"large resize ({'x'.join(map(str, o.shape))}): the "
                    "compiler may keep it on the CPU to protect precision",
                )
            )
    return out


def format_lint(d: dict) -> list[str]:
    """The terminal lines for a lint report (LintReport.to_dict()): each finding, and the predicted split (or,
    for a compiled model, the actual one)."""
    lines = [f"Edge TPU lint of {Path(d['model']).name} ({d['ops']} ops) against {d['table']}:"]
    if d["compiled"]:
        lines.append(
            "  already compiled for the Edge TPU (it holds an edgetpu-custom-op): not linted or compiled again"
        )
    elif not d["findings"]:
        lines.append("  every op is on the Edge TPU's supported list, int8, with static shapes")
    for f in d["findings"]:
        lines.append(f"  op {f['index']:>3} {f['op']:<20} {f['severity']:<5} {f['reason']}")
    part = d["partition"]
    verb = "the compiler put" if d["compiled"] else "predicted after compiling:"
    lines.append(
        f"  {verb} {part['edgetpu']} op(s) on the Edge TPU, {part['cpu-prefix']} on the CPU before it and "
        f"{part['cpu-suffix']} after it" + (f": {', '.join(d['cpu_ops'])}" if d["cpu_ops"] else "")
    )
    return lines
