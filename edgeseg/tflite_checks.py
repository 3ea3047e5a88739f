"""check_graph: what a TFLite interpreter trusts in a .tflite, checked before any interpreter sees the file (indices,
buffer sizes, quantisation parameters), so that a damaged or hostile file is an error, not a crash in native
code. Pure Python, on edgeseg.tflite_file's reader."""

from __future__ import annotations

import struct

from edgeseg.errors import ModelError
from edgeseg.tflite_file import FlatTable, Graph, buffer_size, floats, model_table, read_model_graph

_ITEMSIZE = {
    "float32": 4,
    "float16": 2,
    "int32": 4,
    "uint8": 1,
    "int64": 8,
    "bool": 1,
    "int16": 2,
    "int8": 1,
    "float64": 8,
    "uint16": 2,
    "uint32": 4,
    "uint64": 8,
    "complex64": 8,
}
_ZERO_POINT_RANGE = {"int8": (-128, 127), "uint8": (0, 255), "int16": (0, 0), "int32": (0, 0), "int64": (0, 0)}
MAX_TENSOR_ELEMENTS = 2**31 - 1
# Quantization scales seen in real models run from about 1e-9 (int32 biases) to 1e2; a fuzzed scale of 3.4e38
# (finite) made LiteRT abort with "double free or corruption" when it derived its fixed-point multipliers.
MIN_SCALE, MAX_SCALE = 1e-20, 1e6


def check_graph(buf: bytes, name: str = "model") -> Graph:
    """What the interpreter trusts, checked first: a damaged file must be an error, not a crash in native code.

    A flatbuffer can be well-formed yet hold values the runtime does not check: a per-channel quantization
    scale of NaN or infinity (a fuzzed model made LiteRT abort with "double free or corruption"), a zero
    point out of its type's range, a constant tensor whose buffer is shorter than its shape, an operator
    input that points past the tensor list. Quantization{2 scale, 3 zero_point, 6 quantized_dimension}.
    Returns the graph it checked.
    """
    model = model_table(buf, name)
    try:
        graph = read_model_graph(buf, name)
        buffers = model.tables(4)
        raw = model.tables(2)[0].tables(0)
        n = len(graph.tensors)
        for t, table in zip(graph.tensors, raw, strict=True):
            if any(d < 0 for d in t.shape) or t.elements > MAX_TENSOR_ELEMENTS:
                raise ModelError(f"{name}: tensor {t.index} has an impossible shape {list(t.shape)}")
            b = table.scalar(2, "I")
            if b >= len(buffers):
                raise ModelError(f"{name}: tensor {t.index} points at buffer {b} of {len(buffers)}")
            size = buffer_size(buffers[b]) if b else 0
            if size and t.dtype in _ITEMSIZE and size != t.elements * _ITEMSIZE[t.dtype]:
                raise ModelError(
                    f"{name}: tensor {t.index} ({t.dtype} {list(t.shape)}) has {size} bytes of data, "
                    f"not {t.elements * _ITEMSIZE[t.dtype]}"
                )
            q = table.field(4)
            if q is None:
                continue
            quant = FlatTable(buf, q + struct.unpack_from("<I", buf, q)[0])
            scales = floats(quant, 2)
            zero_points = longs(quant, 3)
            if any(not MIN_SCALE <= v <= MAX_SCALE for v in scales):  # NaN fails the comparison too
                bad = next(v for v in scales if not MIN_SCALE <= v <= MAX_SCALE)
                raise ModelError(
                    f"{name}: tensor {t.index} has a quantization scale of {bad:g}, outside "
                    f"{MIN_SCALE:g}..{MAX_SCALE:g}"
                )
            lo, hi = _ZERO_POINT_RANGE.get(t.dtype, (-(2**63), 2**63 - 1))
            if any(not lo <= z <= hi for z in zero_points):
                raise ModelError(f"{name}: tensor {t.index} ({t.dtype}) has a zero point outside {lo}..{hi}")
            if scales and zero_points and len(scales) != len(zero_points):
                raise ModelError(
                    f"{name}: tensor {t.index} has {len(scales)} scales but {len(zero_points)} zero points"
                )
            if len(scales) > 1:
                axis = quant.scalar(6, "i")
                if not 0 <= axis < len(t.shape) or t.shape[axis] != len(scales):
                    raise ModelError(
                        f"{name}: tensor {t.index} has {len(scales)} per-channel scales that do not fit "
                        f"its shape {list(t.shape)} along axis {axis}"
                    )
        for op in graph.ops:
            if any(not -1 <= i < n for i in (*op.inputs, *op.outputs)):
                raise ModelError(f"{name}: operator {op.index} ({op.name}) names a tensor that does not exist")
        if any(not 0 <= i < n for i in (*graph.inputs, *graph.outputs)):
            raise ModelError(f"{name}: the graph's inputs or outputs name a tensor that does not exist")
        return graph
    except (struct.error, IndexError, OverflowError):
        raise ModelError(f"{name}: corrupt TFLite flatbuffer (tensors unreadable)") from None


def longs(table: FlatTable, i: int) -> tuple[int, ...]:
    """A vector of int64 at field `i` (empty when absent)."""
    v = table.vector(i)
    return () if v is None else struct.unpack_from(f"<{v[1]}q", table.buf, v[0])
