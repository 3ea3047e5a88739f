"""bench --profile's collectors: where one inference spends its time, asked of the model's own runtime the way
its own tools ask it.

- ONNX Runtime: its profiler (SessionOptions.enable_profiling), the kernel time of every node in every run;
- OpenVINO: its performance counters (PERF_COUNT), every executed node's real time in every run;
- LiteRT: its op profiler lives in C++ only (benchmark_model --enable_op_profiling), out of Python's reach. Here
  every op of the graph is cut out as a model of its own (its tensors, quantisation and weights unchanged) and
  timed on the same interpreter, threads and XNNPACK delegate as the whole model. The sum of those times is
  reported beside the whole model's invoke, measured in the same run, so the method shows how well it accounts
  for the whole (within a few per cent on the shipped models).
"""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np

from edgeseg.errors import EdgesegError
from edgeseg.profile import OpTime, Profile, ProfileUnavailable, block_of, median


def _timed(fn: Callable[[], object], runs: int, warmup: int = 3) -> float:
    """fn's median time in ms over `runs` calls after `warmup` untimed ones."""
    for _ in range(warmup):
        fn()
    ts = []
    for _ in range(runs):
        t0 = time.perf_counter_ns()
        fn()
        ts.append((time.perf_counter_ns() - t0) / 1e6)
    return median(ts)


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
    """Per-op times of a .tflite model on its own interpreter (see the module's note on the method).

    Args:
        predictor: the loaded model (its runtime's objects are reused or rebuilt with its settings).
        tensor: the prepared input tensor (a synthetic frame through edgeseg.preprocess).
        runs: profiled runs (their medians are reported).
        rounds: how many rounds the runs are spread over, so that drift of the machine hits all alike.
        progress: called with (done, total).
    """
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
                from edgeseg.errors import first_sentence

                op = graph.ops[i].name
                raise ProfileUnavailable(
                    f"{predictor.path.name}: its op #{i} ({op}) cannot run alone ({first_sentence(str(e))})"
                ) from None
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
                median(samples[op.index]),
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
        median(whole_ms),
        macs,
        ops,
    )


# --------------------------------------------------------------------------------------------------- the runtimes' own
class _NodeTimes:
    """Each node's times over the profiled runs, as a runtime's profiler reports them, in the order it first
    reported each node (the order they run in)."""

    def __init__(self):
        self.times: dict[str, list[float]] = {}
        self.kinds: dict[str, str] = {}

    def add(self, node: str, kind: str, ms: float) -> None:
        """One run's time of one node."""
        self.times.setdefault(node, []).append(ms)
        self.kinds[node] = kind

    def ops(self, last: int | None = None) -> list[OpTime]:
        """The nodes as OpTimes, each at the median of its (last `last`) times."""
        return [
            OpTime(k, node, self.kinds[node], median(v[-last:] if last else v), None, block_of(node, None, None))
            for k, (node, v) in enumerate(self.times.items())
        ]


def onnx_profile(predictor, tensor: np.ndarray, runs: int = 50, rounds: int = 5, progress=None) -> Profile:
    """Per-node kernel times from ONNX Runtime's own profiler, on a session built as the predictor's.

    Args:
        predictor: the loaded model (its runtime's objects are reused or rebuilt with its settings).
        tensor: the prepared input tensor (a synthetic frame through edgeseg.preprocess).
        runs: profiled runs (their medians are reported).
        rounds: how many rounds the runs are spread over, so that drift of the machine hits all alike.
        progress: called with (done, total).
    """
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
    nodes = _NodeTimes()
    whole: list[float] = []
    for ev in trace:
        if ev.get("cat") == "Session" and ev.get("name") == "model_run":
            whole.append(ev.get("dur", 0) / 1e3)
        if ev.get("cat") != "Node" or not str(ev.get("name", "")).endswith("_kernel_time"):
            continue
        nodes.add(ev["name"][: -len("_kernel_time")], ev.get("args", {}).get("op_name", "?"), ev.get("dur", 0) / 1e3)
    keep = max(1, runs)  # the last `runs` calls of each node: the warm-up runs are left out
    ops = nodes.ops(keep)
    return Profile(
        str(predictor.path),
        predictor.runtime_name,
        predictor.threads,
        "ONNX Runtime's profiler (kernel time per node)",
        runs,
        invoke_ms,
        None,
        ops,
        median(whole[-keep:]),
    )


def openvino_profile(predictor, tensor: np.ndarray, runs: int = 50, rounds: int = 5, progress=None) -> Profile:
    """Per-node real times from OpenVINO's performance counters, on a model compiled as the predictor's.

    Args:
        predictor: the loaded model (its runtime's objects are reused or rebuilt with its settings).
        tensor: the prepared input tensor (a synthetic frame through edgeseg.preprocess).
        runs: profiled runs (their medians are reported).
        rounds: how many rounds the runs are spread over, so that drift of the machine hits all alike.
        progress: called with (done, total).
    """
    config = {"PERFORMANCE_HINT": "LATENCY", "PERF_COUNT": True}
    if predictor.threads:
        config["INFERENCE_NUM_THREADS"] = predictor.threads
    invoke_ms = _timed(lambda: predictor.request.infer({0: tensor}), runs)
    request = predictor.core.compile_model(predictor.model, "CPU", config).create_infer_request()
    for _ in range(3):
        request.infer({0: tensor})
    nodes = _NodeTimes()
    whole: list[float] = []
    for r in range(runs):
        t0 = time.perf_counter_ns()
        request.infer({0: tensor})
        whole.append((time.perf_counter_ns() - t0) / 1e6)
        for info in request.get_profiling_info():
            ms = info.real_time.total_seconds() * 1e3
            if str(info.status).endswith("NOT_RUN") and ms == 0:
                continue
            nodes.add(info.node_name, f"{info.node_type} ({info.exec_type})", ms)
        if progress and (r + 1) % max(1, runs // rounds) == 0:
            progress(r + 1, runs)
    ops = nodes.ops()
    return Profile(
        str(predictor.path),
        predictor.runtime_name,
        predictor.threads,
        "OpenVINO's performance counters (real time per executed node)",
        runs,
        invoke_ms,
        None,
        ops,
        median(whole),
    )


PROFILERS = {"litert": litert_profile, "tflite-runtime": litert_profile, "tensorflow": litert_profile}
PROFILERS |= {"onnxruntime": onnx_profile, "openvino": openvino_profile}


def profile_model(predictor, runs: int = 50, rounds: int = 5, progress=None) -> Profile:
    """Where one inference of a loaded model spends its time (ProfileUnavailable where its runtime cannot say).
    The input is a synthetic frame, prepared as `run` prepares a camera's.

    Args:
        predictor: the loaded model.
        runs: profiled runs.
        rounds: rounds the runs are spread over.
        progress: called with (done, total).
    """
    from edgeseg.preprocess import preprocess
    from edgeseg.synthetic import scene

    fn = PROFILERS.get(predictor.runtime_name)
    if fn is None:
        raise ProfileUnavailable(f"{predictor.path.name}: {predictor.runtime_name} has no profiler edgeseg can read")
    tensor, _ = preprocess(scene(0, (480, 640))[0], predictor.spec, predictor.input)
    predictor.set_input(tensor)
    return fn(predictor, tensor, runs, rounds, progress)


def profile_row(model, runs: int) -> dict:
    """A row's profile as JSON values, or the one line saying why its runtime has none (bench goes on)."""
    try:
        return profile_model(model, runs=runs).to_dict()
    except EdgesegError as e:
        return {"unavailable": str(e)}
