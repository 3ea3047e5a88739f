"""bench --profile: where one inference spends its time, op by op, on the model's own runtime.

Each runtime is asked the way its own tools ask it:
- ONNX Runtime: its profiler (SessionOptions.enable_profiling), the kernel time of every node in every run;
- OpenVINO: its performance counters (PERF_COUNT), every executed node's real time in every run;
- LiteRT: its op profiler lives in C++ only (benchmark_model --enable_op_profiling), out of Python's reach. Here
  every op of the graph is cut out as a model of its own (its tensors, quantisation and weights unchanged) and
  timed on the same interpreter, threads and XNNPACK delegate as the whole model. The sum of those times is
  reported beside the whole model's invoke, measured in the same run, so the method shows how well it accounts
  for the whole (within a few per cent on the shipped models).

Every op carries its MACs where the graph gives them (LiteRT: edgeseg.cost, the same count as `info`), and a block:
the part of the network it belongs to by its name (input, encoder, decoder, head, output) and the resolution it
works at (1/4 = a quarter of the input's height), so a profile reads as the network does.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

import numpy as np

from edgeseg.errors import EdgesegError


class ProfileUnavailable(EdgesegError):
    """This runtime (or delegate) has no profiler edgeseg can read."""


@dataclass
class OpTime:
    """One op (or layer, or node) of one inference: its time is the median over the profiled runs."""

    index: int
    name: str
    type: str
    ms: float
    macs: int | None = None
    block: str = "other"

    @property
    def gmacs_per_s(self) -> float | None:
        """The op's arithmetic rate (None where its MACs are not counted)."""
        return None if not self.macs or self.ms <= 0 else self.macs / 1e9 / (self.ms / 1e3)


@dataclass
class Profile:
    """Where one inference of one model spends its time."""

    model: str
    runtime: str
    threads: int | None
    method: str
    runs: int
    invoke_ms: float  # the whole model's invoke, median, measured in the same run without the profiler
    model_macs: int | None
    ops: list[OpTime] = field(default_factory=list)
    profiled_ms: float | None = None  # the whole run under the runtime's profiler, where it has one (median)

    @property
    def ops_ms(self) -> float:
        """The op times added up."""
        return float(sum(op.ms for op in self.ops))

    @property
    def coverage(self) -> float | None:
        """The op times' sum over the whole run they were measured in (the profiled run where the runtime profiles
        itself, else the plain invoke): how much of the whole the profile accounts for."""
        whole = self.profiled_ms or self.invoke_ms
        return self.ops_ms / whole if whole > 0 else None

    def grouped(self, key: str) -> list[dict]:
        """Rows by op type ("type") or by block ("block"), the costliest first: count, ms, share, GMACs, GMAC/s."""
        groups: dict[str, list[OpTime]] = {}
        for op in self.ops:
            groups.setdefault(getattr(op, key), []).append(op)
        total = self.ops_ms or 1.0
        out = []
        for name, ops in groups.items():
            ms = sum(o.ms for o in ops)
            counted = [o.macs for o in ops if o.macs is not None]
            macs = sum(counted) if counted else None
            out.append(
                {
                    key: name,
                    "count": len(ops),
                    "ms": ms,
                    "share": ms / total,
                    "gmacs": None if macs is None else macs / 1e9,
                    "gmacs_per_s": None if not macs or ms <= 0 else macs / 1e9 / (ms / 1e3),
                }
            )
        return sorted(out, key=lambda r: -r["ms"])

    @classmethod
    def from_dict(cls, d: dict) -> Profile:
        """A profile back from to_dict()'s JSON values."""
        ops = [
            OpTime(o["index"], o["name"], o["type"], o["ms"], o.get("macs"), o.get("block", "other")) for o in d["ops"]
        ]
        macs = None if d.get("model_gmacs") is None else round(d["model_gmacs"] * 1e9)
        return cls(
            d["model"], d["runtime"], d["threads"], d["method"], d["runs"], d["invoke_p50_ms"], macs, ops,
            d.get("profiled_p50_ms"),
        )  # fmt: skip

    def to_dict(self) -> dict:
        """The profile as JSON values: every op, and the two groupings."""
        total = self.ops_ms or 1.0
        return {
            "model": self.model,
            "runtime": self.runtime,
            "threads": self.threads,
            "method": self.method,
            "runs": self.runs,
            "invoke_p50_ms": self.invoke_ms,
            "profiled_p50_ms": self.profiled_ms,
            "ops_ms": self.ops_ms,
            "coverage": self.coverage,
            "model_gmacs": None if self.model_macs is None else self.model_macs / 1e9,
            "by_type": self.grouped("type"),
            "by_block": self.grouped("block"),
            "ops": [
                {**asdict(op), "share": op.ms / total, "gmacs": None if op.macs is None else op.macs / 1e9}
                for op in self.ops
            ],
        }


# --------------------------------------------------------------------------------------------------- blocks
_PARTS = (
    ("input", re.compile(r"scale_pixels|normali[sz]|rescal|preprocess", re.I)),
    ("head", re.compile(r"head|logits|classifier|segmentation_head", re.I)),
    ("decoder", re.compile(r"decoder|aspp|lraspp|upsampl|fcn_|skip", re.I)),
    ("encoder", re.compile(r"encoder|backbone|block_\d|expanded_conv", re.I)),
)


def block_of(name: str, out_h: int | None, in_h: int | None, is_output: bool = False) -> str:
    """The part of the network an op belongs to, by its name, and the resolution it works at:
    "encoder 1/8" is an encoder op whose output is an eighth of the input's height."""
    layer = name.split(";")[0]  # a fused TFLite op names each of the layers it holds: the first is its own
    part = next((p for p, rx in _PARTS if rx.search(layer)), "output" if is_output else "other")
    if not out_h or not in_h or out_h <= 0:
        return part
    ratio = in_h / out_h
    return f"{part} 1/{round(ratio)}" if ratio >= 1.5 else f"{part} 1/1" if ratio > 0.75 else f"{part} x{1 / ratio:.0f}"


def _median(values: list[float]) -> float:
    return float(np.median(values)) if values else 0.0


def _timed(fn: Callable[[], object], runs: int, warmup: int = 3) -> float:
    """fn's median time in ms over `runs` calls after `warmup` untimed ones."""
    for _ in range(warmup):
        fn()
    ts = []
    for _ in range(runs):
        t0 = time.perf_counter_ns()
        fn()
        ts.append((time.perf_counter_ns() - t0) / 1e6)
    return _median(ts)


def random_input(shape, dtype, seed: int = 0) -> np.ndarray:
    """Random values over a tensor type's range (timing does not depend on them, but zeros can be special)."""
    rng = np.random.default_rng(seed)
    dtype = np.dtype(dtype)
    if dtype.kind in "iu":
        info = np.iinfo(dtype)
        lo, hi = max(int(info.min), -128), min(int(info.max), 255)
        return rng.integers(lo, hi + 1, size=shape).astype(dtype)
    if dtype.kind == "b":
        return rng.integers(0, 2, size=shape).astype(bool)
    return rng.standard_normal(shape).astype(dtype)


# --------------------------------------------------------------------------------------------------- LiteRT
def schema():
    """LiteRT's generated TFLite schema (flatbuffers object API), to cut ops out and to build probe models."""
    try:
        from ai_edge_litert import schema_py_generated
    except ImportError:
        raise ProfileUnavailable(
            "profiling a .tflite model needs ai-edge-litert (its TFLite schema): pip install ai-edge-litert"
        ) from None
    return schema_py_generated


def pack_model(model_t) -> bytes:
    """A schema ModelT as .tflite bytes."""
    import flatbuffers

    builder = flatbuffers.Builder(1024)
    builder.Finish(model_t.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())


def one_op_models(buf: bytes, shapes: dict[int, list[int]] | None = None):
    """Yield (op index, .tflite bytes of a model that is that op alone) for every op of the main subgraph.

    The op keeps its tensors (shapes, types, quantisation) and its constant inputs (weights, biases); its other
    inputs become the model's inputs and its outputs the model's outputs. `shapes` overrides tensor shapes by
    index (a model resized to run at another size)."""
    import copy

    s = schema()
    model = s.ModelT.InitFromPackedBuf(buf, 0)
    sub = model.subgraphs[0]
    for i, op in enumerate(sub.operators):
        remap: dict[int, int] = {}
        tensors, buffers, inputs = [], [s.BufferT()], []
        for t in [*op.inputs, *op.outputs, *(op.intermediates if op.intermediates is not None else [])]:
            if t < 0 or t in remap:
                continue
            tensor = copy.copy(sub.tensors[t])
            if shapes and t in shapes:
                tensor.shape = list(shapes[t])
                tensor.shapeSignature = None
            b = model.buffers[tensor.buffer] if 0 < tensor.buffer < len(model.buffers) else None
            if b is not None and (b.data is not None and len(b.data) or b.offset > 1):
                if b.offset > 1:
                    raise ProfileUnavailable("the model keeps its weights outside the flatbuffer (over 2 GB)")
                buffers.append(b)
                tensor.buffer = len(buffers) - 1
            else:
                tensor.buffer = 0
                if t in op.inputs:
                    inputs.append(len(tensors))
            remap[t] = len(tensors)
            tensors.append(tensor)
        alone = copy.copy(op)
        alone.inputs = [remap[t] if t >= 0 else -1 for t in op.inputs]
        alone.outputs = [remap[t] for t in op.outputs]
        alone.intermediates = [remap[t] for t in op.intermediates] if op.intermediates is not None else None
        graph = s.SubGraphT()
        graph.tensors, graph.operators, graph.inputs = tensors, [alone], inputs
        graph.outputs, graph.name = [remap[t] for t in op.outputs], b"op"
        one = s.ModelT()
        one.version, one.operatorCodes, one.subgraphs, one.buffers = 3, model.operatorCodes, [graph], buffers
        one.description = b"edgeseg profile: one op"
        yield i, pack_model(one)


def litert_profile(predictor, tensor: np.ndarray, runs: int = 50, rounds: int = 5, progress=None) -> Profile:
    """Per-op times of a .tflite model on its own interpreter (see the module's note on the method)."""
    from edgeseg.cost import op_macs
    from edgeseg.quiet import libraries_quiet

    if predictor.delegate == "edgetpu":
        raise ProfileUnavailable(
            f"{predictor.path.name}: the Edge TPU runs the model as one op and has no per-op profiler"
        )
    graph = predictor._graph
    interp = predictor.interpreter
    shapes = {d["index"]: [int(v) for v in d["shape"]] for d in interp.get_tensor_details()}
    cls, threads = predictor.runtime.interpreter_cls, predictor.threads
    outputs = set(graph.outputs)
    in_h = shapes.get(graph.inputs[0], [0, 0])[1] if graph.inputs else None

    timers: list[tuple[int, Callable[[], object]]] = []
    with libraries_quiet():
        for i, content in one_op_models(predictor._buf, shapes):
            try:
                it = cls(model_content=content, num_threads=threads)
                it.allocate_tensors()
                for k, d in enumerate(it.get_input_details()):
                    it.set_tensor(d["index"], random_input(d["shape"], d["dtype"], seed=k))
            except (ValueError, RuntimeError) as e:
                raise ProfileUnavailable(f"{predictor.path.name}: op #{i} cannot run alone ({e})") from None
            timers.append((i, it.invoke))
    whole = predictor.interpreter.invoke
    samples: dict[int, list[float]] = {i: [] for i, _ in timers}
    whole_ms: list[float] = []
    per_round = max(1, runs // rounds)
    for fn in [whole, *(t for _, t in timers)]:
        for _ in range(3):
            fn()
    for r in range(rounds):  # interleaved: drift of the machine hits the ops and the whole model alike
        whole_ms.append(_timed(whole, per_round, warmup=0))
        for i, fn in timers:
            samples[i].append(_timed(fn, per_round, warmup=0))
        if progress:
            progress(r + 1, rounds)
    ops = []
    for op in graph.ops:
        out = op.outputs[0] if op.outputs else -1
        name = graph.tensors[out].name if 0 <= out < len(graph.tensors) else f"op {op.index}"
        out_h = shapes.get(out, [0, 0])
        ops.append(
            OpTime(
                op.index,
                name.split(";")[0],
                op.name,
                _median(samples[op.index]),
                op_macs(op, graph.tensors),
                block_of(name, out_h[1] if len(out_h) == 4 else None, in_h, is_output=out in outputs),
            )
        )
    macs = sum(m for m in (o.macs for o in ops) if m is not None)
    return Profile(
        str(predictor.path),
        predictor.runtime_name,
        threads,
        "each op timed alone on the model's interpreter and delegate",
        per_round * rounds,
        _median(whole_ms),
        macs,
        ops,
    )


# --------------------------------------------------------------------------------------------------- ONNX Runtime
def onnx_profile(predictor, tensor: np.ndarray, runs: int = 50, rounds: int = 5, progress=None) -> Profile:
    """Per-node kernel times from ONNX Runtime's own profiler, on a session built as the predictor's."""
    import json
    import tempfile
    from pathlib import Path

    import onnxruntime as ort

    feed = {predictor.input.name: tensor}
    invoke_ms = _timed(lambda: predictor.session.run(None, feed), runs)
    opts = ort.SessionOptions()
    if predictor.threads:
        opts.intra_op_num_threads = predictor.threads
    opts.log_severity_level = 3
    opts.enable_profiling = True
    with tempfile.TemporaryDirectory() as tmp:
        opts.profile_file_prefix = str(Path(tmp) / "ort")
        session = ort.InferenceSession(str(predictor.path), opts, providers=["CPUExecutionProvider"])
        for _ in range(3):
            session.run(None, feed)
        for r in range(runs):
            session.run(None, feed)
            if progress and (r + 1) % max(1, runs // rounds) == 0:
                progress(r + 1, runs)
        trace = json.loads(Path(session.end_profiling()).read_text())
    per_node: dict[str, list[float]] = {}
    kinds: dict[str, str] = {}
    order: dict[str, int] = {}
    whole: list[float] = []
    for ev in trace:
        if ev.get("cat") == "Session" and ev.get("name") == "model_run":
            whole.append(ev.get("dur", 0) / 1e3)
        if ev.get("cat") != "Node" or not str(ev.get("name", "")).endswith("_kernel_time"):
            continue
        node = ev["name"][: -len("_kernel_time")]
        per_node.setdefault(node, []).append(ev.get("dur", 0) / 1e3)
        kinds[node] = ev.get("args", {}).get("op_name", "?")
        order.setdefault(node, len(order))
    keep = max(1, runs)  # the last `runs` calls of each node: the warm-up runs are left out
    ops = [
        OpTime(order[n], n, kinds[n], _median(v[-keep:]), None, block_of(n, None, None))
        for n, v in sorted(per_node.items(), key=lambda kv: order[kv[0]])
    ]
    return Profile(
        str(predictor.path),
        predictor.runtime_name,
        predictor.threads,
        "ONNX Runtime's profiler (kernel time per node)",
        runs,
        invoke_ms,
        None,
        ops,
        _median(whole[-keep:]),
    )


# --------------------------------------------------------------------------------------------------- OpenVINO
def openvino_profile(predictor, tensor: np.ndarray, runs: int = 50, rounds: int = 5, progress=None) -> Profile:
    """Per-node real times from OpenVINO's performance counters, on a model compiled as the predictor's."""
    config = {"PERFORMANCE_HINT": "LATENCY", "PERF_COUNT": True}
    if predictor.threads:
        config["INFERENCE_NUM_THREADS"] = predictor.threads
    invoke_ms = _timed(lambda: predictor.request.infer({0: tensor}), runs)
    request = predictor.core.compile_model(predictor.model, "CPU", config).create_infer_request()
    for _ in range(3):
        request.infer({0: tensor})
    per_node: dict[str, list[float]] = {}
    kinds: dict[str, str] = {}
    order: dict[str, int] = {}
    whole: list[float] = []
    for r in range(runs):
        t0 = time.perf_counter_ns()
        request.infer({0: tensor})
        whole.append((time.perf_counter_ns() - t0) / 1e6)
        for info in request.get_profiling_info():
            ms = info.real_time.total_seconds() * 1e3
            if str(info.status).endswith("NOT_RUN") and ms == 0:
                continue
            per_node.setdefault(info.node_name, []).append(ms)
            kinds[info.node_name] = f"{info.node_type} ({info.exec_type})"
            order.setdefault(info.node_name, len(order))
        if progress and (r + 1) % max(1, runs // rounds) == 0:
            progress(r + 1, runs)
    ops = [
        OpTime(order[n], n, kinds[n], _median(v), None, block_of(n, None, None))
        for n, v in sorted(per_node.items(), key=lambda kv: order[kv[0]])
    ]
    return Profile(
        str(predictor.path),
        predictor.runtime_name,
        predictor.threads,
        "OpenVINO's performance counters (real time per executed node)",
        runs,
        invoke_ms,
        None,
        ops,
        _median(whole),
    )


PROFILERS = {"litert": litert_profile, "tflite-runtime": litert_profile, "tensorflow": litert_profile}
PROFILERS |= {"onnxruntime": onnx_profile, "openvino": openvino_profile}


def profile_model(predictor, runs: int = 50, rounds: int = 5, progress=None) -> Profile:
    """Where one inference of a loaded model spends its time (ProfileUnavailable where its runtime cannot say).
    The input is a synthetic frame, prepared as `run` prepares a camera's."""
    from edgeseg.bench import synthetic_frame
    from edgeseg.preprocess import preprocess

    fn = PROFILERS.get(predictor.runtime_name)
    if fn is None:
        raise ProfileUnavailable(f"{predictor.path.name}: {predictor.runtime_name} has no profiler edgeseg can read")
    tensor, _ = preprocess(synthetic_frame((480, 640)), predictor.spec, predictor.input)
    predictor.set_input(tensor)
    return fn(predictor, tensor, runs, rounds, progress)


# --------------------------------------------------------------------------------------------------- reports
def _num(v, fmt: str) -> str:
    return "-" if v is None else format(v, fmt)


def profile_tables(p: Profile, top: int = 15) -> list[tuple[str, list[str], list[list[str]]]]:
    """(title, header, rows) of the three views: by op type, by block, and the costliest ops."""

    def row(name, kind, count, ms, share, gmacs, rate):
        return [name, kind, str(count), f"{ms:.3f}", f"{100 * share:.1f}%", _num(gmacs, ".4f"), _num(rate, ".1f")]

    header = ["", "type", "count", "ms", "share", "GMACs", "GMAC/s"]
    by_type = [
        row(r["type"], "", r["count"], r["ms"], r["share"], r["gmacs"], r["gmacs_per_s"]) for r in p.grouped("type")
    ]
    by_block = [
        row(r["block"], "", r["count"], r["ms"], r["share"], r["gmacs"], r["gmacs_per_s"]) for r in p.grouped("block")
    ]
    total = p.ops_ms or 1.0
    costly = sorted(p.ops, key=lambda o: -o.ms)[:top]
    by_op = [
        row(
            f"#{o.index} {_short(o.name)}",
            o.type,
            1,
            o.ms,
            o.ms / total,
            None if o.macs is None else o.macs / 1e9,
            o.gmacs_per_s,
        )
        for o in costly
    ]
    return [
        ("by op type", ["op type", *header[2:]], [[r[0], *r[2:]] for r in by_type]),
        ("by block", ["block", *header[2:]], [[r[0], *r[2:]] for r in by_block]),
        (
            f"the {len(costly)} costliest ops",
            ["op", "type", "ms", "share", "GMACs", "GMAC/s"],
            [[r[0], r[1], *r[3:]] for r in by_op],
        ),
    ]


def _short(name: str, width: int = 48) -> str:
    parts = name.split("/")
    name = "/".join(parts[1:]) if len(parts) > 2 else name  # without the model's own name
    return name if len(name) <= width else "..." + name[-(width - 3) :]


def summary_line(p: Profile) -> str:
    """One line: the model, its runtime, the method, and how much of the measured run the ops account for."""
    if p.profiled_ms:
        cov = (
            f" ({100 * (p.coverage or 0):.0f}% of the profiled run, {p.profiled_ms:.3f} ms; "
            f"{p.invoke_ms:.3f} ms without the profiler)"
        )
    else:
        cov = f" ({100 * (p.coverage or 0):.0f}% of the whole model's invoke, {p.invoke_ms:.3f} ms)"
    return (
        f"{p.model} on {p.runtime}, {p.threads or 'default'} thread(s): {len(p.ops)} ops, {p.ops_ms:.3f} ms in all"
        f"{cov}; {p.method}, median of {p.runs} runs"
    )


def _left(header: list[str], k: int) -> bool:
    """Names are left-aligned (the first column, and an op table's type), figures right-aligned."""
    return k == 0 or header[k] == "type"


def _text_rows(header: list[str], rows: list[list[str]]) -> list[str]:
    widths = [max(len(h), *(len(r[k]) for r in rows)) for k, h in enumerate(header)]
    return [
        "    "
        + "  ".join(
            c.ljust(w) if _left(header, k) else c.rjust(w) for k, (c, w) in enumerate(zip(r, widths, strict=True))
        )
        for r in [header, *rows]
    ]


def to_text(p: Profile) -> str:
    """The profile as plain text tables."""
    lines = [summary_line(p)]
    for title, header, rows in profile_tables(p):
        lines += [f"  {title}:", *_text_rows(header, rows)]
    return "\n".join(lines)


def to_markdown(p: Profile) -> str:
    """The profile as markdown tables."""
    out = [f"**{summary_line(p)}**", ""]
    for title, header, rows in profile_tables(p):
        out += [
            f"*{title}*",
            "",
            "| " + " | ".join(header) + " |",
            "|" + "|".join(" --- " if _left(header, k) else " ---: " for k in range(len(header))) + "|",
        ]
        out += ["| " + " | ".join(c.replace("|", "\\|") for c in r) + " |" for r in rows]
        out.append("")
    return "\n".join(out)
