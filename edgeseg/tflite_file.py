"""Read what edgeseg needs straight from a .tflite flatbuffer: metadata entries and operator codes.

Pure Python (struct), so it works with any runtime or none: the device path reads the embedded spec without
TensorFlow, and the Edge TPU lint can read op versions. Layout per the TFLite schema (schema.fbs):
Model{0 version, 1 operator_codes, 2 subgraphs, 3 description, 4 buffers, 5 metadata_buffer, 6 metadata},
Metadata{0 name, 1 buffer}, Buffer{0 data, 1 offset, 2 size},
OperatorCode{0 deprecated_builtin_code, 1 custom_code, 2 version, 3 builtin_code}.
"""

from __future__ import annotations

import functools
import struct
from dataclasses import dataclass
from pathlib import Path

from edgeseg.errors import ModelError

SPEC_METADATA_NAME = "edgeseg_spec"
_IDENTIFIER = b"TFL3"


class FlatTable:
    """One flatbuffer table: its fields by index, read with struct (the generated readers need flatbuffers)."""

    __slots__ = ("buf", "pos", "vt", "vt_len")

    def __init__(self, buf: bytes, pos: int):
        self.buf, self.pos = buf, pos
        self.vt = pos - struct.unpack_from("<i", buf, pos)[0]
        self.vt_len = struct.unpack_from("<H", buf, self.vt)[0]

    def field(self, i: int) -> int | None:
        """The absolute offset of field `i`, or None when the table does not have it."""
        off = 4 + 2 * i
        if off >= self.vt_len:
            return None
        rel = struct.unpack_from("<H", self.buf, self.vt + off)[0]
        return self.pos + rel if rel else None

    def scalar(self, i: int, fmt: str, default=0):
        """Field `i` as a struct scalar of format `fmt` (`default` when absent)."""
        p = self.field(i)
        return default if p is None else struct.unpack_from("<" + fmt, self.buf, p)[0]

    def vector(self, i: int) -> tuple[int, int] | None:
        """(offset of the first element, length) of the vector at field `i`, or None."""
        p = self.field(i)
        if p is None:
            return None
        start = p + struct.unpack_from("<I", self.buf, p)[0]
        return start + 4, struct.unpack_from("<I", self.buf, start)[0]

    def bytes_(self, i: int) -> bytes | None:
        """The byte vector (or string) at field `i`, or None."""
        v = self.vector(i)
        return None if v is None else bytes(self.buf[v[0] : v[0] + v[1]])

    def tables(self, i: int) -> list[FlatTable]:
        """The vector of tables at field `i` (empty when absent)."""
        v = self.vector(i)
        if v is None:
            return []
        start, n = v
        out = []
        for k in range(n):
            p = start + 4 * k
            out.append(FlatTable(self.buf, p + struct.unpack_from("<I", self.buf, p)[0]))
        return out


@dataclass(frozen=True)
class OpCode:
    """One entry of the model's operator codes: builtin code, custom name, version."""

    builtin: int
    custom: str | None
    version: int


def model_table(buf: bytes, name: str) -> FlatTable:
    """The flatbuffer's root Model table (ModelError for what is not a TFLite model)."""
    if len(buf) < 8 or buf[4:8] != _IDENTIFIER:
        raise ModelError(f"{name}: not a TFLite model (no TFL3 flatbuffer identifier)")
    try:
        return FlatTable(buf, struct.unpack_from("<I", buf, 0)[0])
    except struct.error:
        raise ModelError(f"{name}: not a TFLite model (truncated flatbuffer)") from None


MAX_MODEL_BYTES = 2**31 - 1  # a flatbuffer addresses at most 2 GiB: a larger file is not one


def read_model_bytes(path: Path) -> bytes:
    """A model file's bytes; ModelError when it cannot be read, is not a regular file, is larger than a
    flatbuffer can be, or does not start like a TFLite model (checked on its first 8 bytes, before the rest is
    read: an 8 GB file is refused at once)."""
    path = Path(path)
    try:
        if not path.exists():
            raise ModelError(f"{path}: no such file")
        if not path.is_file():
            raise ModelError(f"{path}: not a model file ({'a folder' if path.is_dir() else 'a device or a pipe'})")
        size = path.stat().st_size
        with path.open("rb") as f:
            head = f.read(8)
            if path.suffix.lower() == ".tflite" and (len(head) < 8 or head[4:8] != _IDENTIFIER):
                raise ModelError(f"{path.name}: not a TFLite model (no TFL3 flatbuffer identifier)")
            if size > MAX_MODEL_BYTES:
                raise ModelError(f"{path.name}: {size / 2**30:.1f} GiB, more than a flatbuffer can hold (2 GiB)")
            return head + f.read()
    except OSError as e:
        raise ModelError(f"{path}: cannot read ({e.strerror or type(e).__name__})") from None


def check_tflite(buf: bytes, name: str = "model") -> None:
    """Raise ModelError unless `buf` starts like a TFLite flatbuffer."""
    model_table(buf, name)


def read_metadata(buf: bytes, name: str = "model") -> dict[str, bytes]:
    """All metadata entries (name -> bytes) of a TFLite flatbuffer."""
    model = model_table(buf, name)
    try:
        buffers = model.tables(4)
        out = {}
        for md in model.tables(6):
            key = (md.bytes_(0) or b"").decode("utf-8", "replace")
            idx = md.scalar(1, "I")
            if idx >= len(buffers):
                continue
            b = buffers[idx]
            data = b.bytes_(0)
            offset, size = b.scalar(1, "Q"), b.scalar(2, "Q")
            if offset > 1:  # large models keep buffers outside the flatbuffer, at an absolute file offset
                data = bytes(buf[offset : offset + size])
            out[key] = data or b""
        return out
    except (struct.error, IndexError):
        raise ModelError(f"{name}: corrupt TFLite flatbuffer (metadata unreadable)") from None


def read_opcodes(buf: bytes, name: str = "model") -> list[OpCode]:
    """Operator codes (builtin code, custom name, version) in the order the model lists them."""
    model = model_table(buf, name)
    try:
        out = []
        for oc in model.tables(1):
            deprecated = oc.scalar(0, "b")
            builtin = max(deprecated, oc.scalar(3, "i"))
            custom = oc.bytes_(1)
            out.append(OpCode(builtin, custom.decode() if custom else None, oc.scalar(2, "i", 1)))
        return out
    except (struct.error, IndexError):
        raise ModelError(f"{name}: corrupt TFLite flatbuffer (operator codes unreadable)") from None


def read_spec_json(buf: bytes, name: str = "model") -> bytes | None:
    """The edgeseg spec embedded in a .tflite (JSON bytes), or None when it carries none."""
    return read_metadata(buf, name).get(SPEC_METADATA_NAME)


# TensorType enum of the TFLite schema
TENSOR_TYPES = {
    0: "float32",
    1: "float16",
    2: "int32",
    3: "uint8",
    4: "int64",
    5: "string",
    6: "bool",
    7: "int16",
    8: "complex64",
    9: "int8",
    10: "float64",
    16: "uint16",
    15: "uint32",
    12: "uint64",
}


@dataclass(frozen=True)
class GraphOp:
    """One operator of the main subgraph, in execution order: name, version, input and output tensor indices."""

    index: int
    name: str  # builtin name (CONV_2D) or the custom op's name
    version: int
    inputs: tuple[int, ...]
    outputs: tuple[int, ...]


@dataclass(frozen=True)
class GraphTensor:
    """One tensor of the main subgraph: name, type, shape (and its signature), quantisation, constant or not."""

    index: int
    name: str
    dtype: str
    shape: tuple[int, ...]
    shape_signature: tuple[int, ...]  # -1 marks a dynamic dimension
    constant: bool = False  # backed by a buffer with data: weights, biases, shape constants

    @property
    def elements(self) -> int:
        """How many values the tensor holds (its shape's product)."""
        return elements(self.shape)


def elements(shape) -> int:
    """Number of elements of a shape; a dynamic (-1) or empty dimension counts as 1."""
    n = 1
    for d in shape:
        n *= max(int(d), 1)
    return n


@dataclass(frozen=True)
class Graph:
    """The main subgraph: operators in execution order, tensors, and the graph's input and output indices."""

    ops: list[GraphOp]
    tensors: list[GraphTensor]
    inputs: tuple[int, ...]
    outputs: tuple[int, ...]


@functools.lru_cache(maxsize=1)
def builtin_names() -> dict[int, str]:
    """BuiltinOperator code -> name, from whichever generated schema is installed (LiteRT's or TensorFlow's)."""
    for mod in (
        "ai_edge_litert.schema_py_generated",
        "tflite_runtime.schema_py_generated",
        "tensorflow.lite.python.schema_py_generated",
    ):
        try:
            import importlib

            schema = importlib.import_module(mod)
            return {v: k for k, v in vars(schema.BuiltinOperator).items() if not k.startswith("_")}
        except (ImportError, AttributeError):
            continue
    return {}


def read_graph(buf: bytes, name: str = "model") -> tuple[list[GraphOp], list[GraphTensor]]:
    """Operators and tensors of the main subgraph (see read_model_graph)."""
    g = read_model_graph(buf, name)
    return g.ops, g.tensors


def read_model_graph(buf: bytes, name: str = "model") -> Graph:
    """The main subgraph: SubGraph{0 tensors, 1 inputs, 2 outputs, 3 operators},
    Operator{0 opcode_index, 1 inputs, 2 outputs}, Tensor{0 shape, 1 type, 2 buffer, 3 name, ..., 7 shape_signature},
    Buffer{0 data, 1 offset, 2 size}. A tensor is constant when its buffer holds data (inline or, for models
    over 2 GB, at a file offset)."""
    model = model_table(buf, name)
    codes = read_opcodes(buf, name)
    names = builtin_names()
    try:
        subgraphs = model.tables(2)
        if not subgraphs:
            raise ModelError(f"{name}: the TFLite model has no subgraph")
        sub = subgraphs[0]
        buffers = model.tables(4)
        tensors = []
        for i, t in enumerate(sub.tables(0)):
            shape = ints(t, 0)
            sig = ints(t, 7) or shape
            b = t.scalar(2, "I")
            const = 0 < b < len(buffers) and buffer_size(buffers[b]) > 0
            tensors.append(
                GraphTensor(
                    i,
                    (t.bytes_(3) or b"").decode("utf-8", "replace"),
                    TENSOR_TYPES.get(t.scalar(1, "b"), f"type{t.scalar(1, 'b')}"),
                    shape,
                    sig,
                    const,
                )
            )
        ops = []
        for i, op in enumerate(sub.tables(3)):
            code = codes[op.scalar(0, "I")]
            op_name = code.custom or names.get(code.builtin, f"BUILTIN_{code.builtin}")
            ops.append(GraphOp(i, op_name, code.version, ints(op, 1), ints(op, 2)))
        return Graph(ops, tensors, ints(sub, 1), ints(sub, 2))
    except (struct.error, IndexError):
        raise ModelError(f"{name}: corrupt TFLite flatbuffer (graph unreadable)") from None


def buffer_data_ranges(buf: bytes, min_bytes: int = 0) -> list[tuple[int, int]]:
    """(start, end) byte offsets of the buffers that hold data inline (weights, constants), larger than
    `min_bytes`, in file order. For tools that must leave the weights alone (benchmarks/fuzz_tflite.py)."""
    out = []
    for b in model_table(buf, "model").tables(4):
        v = b.vector(0)
        if v is not None and v[1] > min_bytes:
            out.append((v[0], v[0] + v[1]))
    return sorted(out)


def buffer_size(b: FlatTable) -> int:
    """The byte size of a Buffer table's data (inline, or an offset and a size past the flatbuffer)."""
    v = b.vector(0)
    if v is not None and v[1]:
        return v[1]
    return b.scalar(2, "Q") if b.scalar(1, "Q") > 1 else 0


def ints(table: FlatTable, i: int) -> tuple[int, ...]:
    """A vector of int32 at field `i` (empty when absent)."""
    v = table.vector(i)
    if v is None:
        return ()
    start, n = v
    return struct.unpack_from(f"<{n}i", table.buf, start)


def floats(table: FlatTable, i: int) -> tuple[float, ...]:
    """A vector of float32 at field `i` (empty when absent)."""
    v = table.vector(i)
    return () if v is None else struct.unpack_from(f"<{v[1]}f", table.buf, v[0])
