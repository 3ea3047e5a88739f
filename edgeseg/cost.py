"""What a .tflite costs per frame, read from its graph: multiply-accumulates (MACs), parameters, op mix.

A time is true only on the machine that measured it; the MACs a model needs per frame are the same on every
machine. Counted from the flatbuffer alone (pure Python, any runtime or none), so it works on third-party
models too. Per op, with the tensor shapes the model declares (batch 1):

- CONV_2D: output elements x kernel_h x kernel_w x input channels per group (filter [O, kh, kw, I])
- DEPTHWISE_CONV_2D: output elements x kernel_h x kernel_w (filter [1, kh, kw, O])
- TRANSPOSE_CONV: input elements x kernel_h x kernel_w x output channels (each input pixel is scattered
  through the whole kernel; filter [O, kh, kw, I], inputs (output_shape, filter, input))
- FULLY_CONNECTED: output elements x input features (weights [units, features])
- CONV_3D: output elements x kd x kh x kw x input channels; BATCH_MATMUL: output elements x the shared dimension
- MediaPipe's custom Convolution2DTransposeBias: as TRANSPOSE_CONV (inputs: input, filter, bias)

Everything else (adds, resizes, pooling, activations) is left out, as the usual MAC counts do: it is memory
traffic more than arithmetic. Parameters are the elements of the constant tensors: weights and biases, plus
any other float or 8-bit constant; int32/int64 constants that only give shapes, sizes or axes are not counted.
An op whose work cannot be seen (an `edgetpu-custom-op`, which holds the compiled Edge TPU program, or any other
custom op) is listed under `uncounted`, so a total is never silently short.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from edgeseg.tflite_file import Graph, GraphOp, GraphTensor, elements, read_model_bytes, read_model_graph

# Builtin operator codes of the TFLite schema, so counting works even where no generated schema is importable
# (read_model_graph then names ops BUILTIN_<code>).
MAC_OPS = {
    "CONV_2D": 3,
    "DEPTHWISE_CONV_2D": 4,
    "FULLY_CONNECTED": 9,
    "TRANSPOSE_CONV": 67,
    "CONV_3D": 133,
    "BATCH_MATMUL": 126,
}
_BY_CODE = {f"BUILTIN_{code}": name for name, code in MAC_OPS.items()}
# Custom ops with known arithmetic: MediaPipe's transposed convolution with bias (inputs: input, filter
# [O, kh, kw, I], bias), used by its selfie segmenter's last layer.
CUSTOM_TRANSPOSE_CONV = {"Convolution2DTransposeBias"}
_FLOAT = {"float32", "float16", "float64"}
_SHAPE_TYPES = {"int32", "int64"}


def _op_name(op: GraphOp) -> str:
    return _BY_CODE.get(op.name, op.name)


def op_macs(op: GraphOp, tensors: list[GraphTensor]) -> int | None:
    """Multiply-accumulates of one op at batch 1; None when it is not a MAC op or its shapes are unknown."""
    name = _op_name(op)
    if name not in MAC_OPS and name not in CUSTOM_TRANSPOSE_CONV:
        return None

    def t(k: int) -> GraphTensor | None:
        i = op.inputs[k] if k < len(op.inputs) else -1
        return tensors[i] if 0 <= i < len(tensors) else None

    out = tensors[op.outputs[0]] if op.outputs and 0 <= op.outputs[0] < len(tensors) else None
    try:
        if name == "CONV_2D":
            f = t(1)
            return _batch1(out) * f.shape[1] * f.shape[2] * f.shape[3]
        if name == "DEPTHWISE_CONV_2D":
            f = t(1)
            return _batch1(out) * f.shape[1] * f.shape[2]
        if name == "TRANSPOSE_CONV":
            f, x = t(1), t(2)
            return _batch1(x) * f.shape[0] * f.shape[1] * f.shape[2]
        if name in CUSTOM_TRANSPOSE_CONV:
            f, x = t(1), t(0)
            return _batch1(x) * f.shape[0] * f.shape[1] * f.shape[2]
        if name == "FULLY_CONNECTED":
            w = t(1)
            return _batch1(out) * w.shape[-1]
        if name == "CONV_3D":
            f = t(1)  # [kd, kh, kw, in, out]
            return _batch1(out) * f.shape[0] * f.shape[1] * f.shape[2] * f.shape[3]
        if name == "BATCH_MATMUL":
            a = t(0)
            return _batch1(out) * a.shape[-1]
    except (AttributeError, IndexError, TypeError):
        return None
    return None


def _batch1(t: GraphTensor) -> int:
    """Elements of an activation tensor at batch 1 (a dynamic or larger batch counts as one frame)."""
    shape = list(t.shape)
    if len(shape) >= 3:  # [N, ..., C]: the first dimension is the batch
        shape = shape[1:]
    return elements(shape)


@dataclass
class GraphCost:
    """MACs, parameters and the op mix of one model's main subgraph."""

    macs: int
    params: int
    ops: Counter = field(default_factory=Counter)
    macs_by_op: dict[str, int] = field(default_factory=dict)
    integer_ops: int = 0  # ops with no float tensor: int8/uint8 data, int32 biases and indices
    uncounted: list[str] = field(default_factory=list)  # ops whose work is hidden (compiled or custom)

    @property
    def gmacs(self) -> float:
        """Multiply-accumulates per frame, in billions."""
        return self.macs / 1e9

    @property
    def op_count(self) -> int:
        """How many ops the graph has."""
        return sum(self.ops.values())

    @property
    def int8_share(self) -> float | None:
        """The share of ops with no float tensor (None for an empty graph)."""
        return self.integer_ops / self.op_count if self.op_count else None

    def to_dict(self) -> dict:
        """The cost as JSON values (what `edgeseg info --json` reports)."""
        return {
            "gmacs": round(self.gmacs, 4),
            "macs": self.macs,
            "params": self.params,
            "ops": dict(sorted(self.ops.items(), key=lambda kv: (-kv[1], kv[0]))),
            "macs_by_op": self.macs_by_op,
            "op_count": self.op_count,
            "integer_ops": self.integer_ops,
            "int8_op_share": None if self.int8_share is None else round(self.int8_share, 4),
            "uncounted": self.uncounted,
        }


def graph_cost(graph: Graph) -> GraphCost:
    """MACs per frame (batch 1), parameters and the op histogram of a .tflite graph; ops whose work hides inside
    compiled or custom code are listed as uncounted."""
    ops, tensors = graph.ops, graph.tensors
    cost = GraphCost(0, 0)
    by_op: Counter = Counter()
    mac_inputs: set[int] = set()
    for op in ops:
        name = _op_name(op)
        cost.ops[name] += 1
        macs = op_macs(op, tensors)
        if macs is not None:
            by_op[name] += macs
            mac_inputs.update(i for i in op.inputs[1:] if 0 <= i < len(tensors))
        elif name in MAC_OPS or name.startswith("BUILTIN_") or _is_custom(name):
            cost.uncounted.append(f"{name} #{op.index}")
        touched = [tensors[i] for i in (*op.inputs, *op.outputs) if 0 <= i < len(tensors)]
        if not any(t.dtype in _FLOAT for t in touched):
            cost.integer_ops += 1
    cost.macs = sum(by_op.values())
    cost.macs_by_op = dict(by_op)
    cost.params = sum(
        t.elements for t in tensors if t.constant and (t.index in mac_inputs or t.dtype not in _SHAPE_TYPES)
    )
    return cost


def _is_custom(name: str) -> bool:
    # builtin names are UPPER_SNAKE_CASE; custom ops are whatever their authors called them (edgetpu-custom-op)
    return not name.replace("_", "").isalnum() or name != name.upper()


def model_cost(path: Path) -> GraphCost:
    """GraphCost of a .tflite file (ModelError when it is not one)."""
    buf = read_model_bytes(Path(path))
    return graph_cost(read_model_graph(buf, str(path)))
