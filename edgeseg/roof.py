"""This CPU's roof: the int8 and float GEMM rates LiteRT reaches here, to hold every model's rate against.

The probe is two 1x1 convolutions, 512 to 512 channels at 64x64 (2.15 GMACs): a GEMM shape with enough work per
weight that the arithmetic, not memory, limits it. It is built in memory with LiteRT's own TFLite schema (random
weights, per-channel int8 quantisation as `convert --int8` writes it), so no TensorFlow and no file is needed:
it works on a Pi. A model's share of the roof is its GMACs over its invoke p50, over the roof of its precision at
the same thread count.
"""

from __future__ import annotations

import functools
import time

import numpy as np

from edgeseg.errors import EdgesegError
from edgeseg.profile import ProfileUnavailable
from edgeseg.profilers import pack_model, random_input, schema

CHANNELS, SIDE, LAYERS = 512, 64, 2
PROBE_MACS = LAYERS * SIDE * SIDE * CHANNELS * CHANNELS  # 2.147 GMACs


def probe_model(precision: str = "int8", channels: int = CHANNELS, side: int = SIDE, layers: int = LAYERS) -> bytes:
    """The roof probe as .tflite bytes: `layers` 1x1 convolutions, channels to channels at side x side.

    Args:
        precision: "int8" (per-channel int8 weights, int32 biases, int8 activations) or "float".
        channels: input and output channels of every convolution.
        side: the feature map's height and width.
        layers: how many convolutions.
    """
    s = schema()
    rng = np.random.default_rng(0)
    int8 = precision == "int8"
    tensors, buffers = [], [s.BufferT()]

    def tensor(name: str, shape, ttype: int, data: np.ndarray | None = None, scale=None, zero=None, axis: int = 0):
        t = s.TensorT()
        t.name, t.shape, t.type = name.encode(), list(shape), ttype
        t.buffer = 0
        if data is not None:
            b = s.BufferT()
            b.data = np.frombuffer(np.ascontiguousarray(data).tobytes(), dtype=np.uint8)
            buffers.append(b)
            t.buffer = len(buffers) - 1
        if scale is not None:
            q = s.QuantizationParametersT()
            q.scale, q.zeroPoint, q.quantizedDimension = list(scale), list(zero), axis
            t.quantization = q
        tensors.append(t)
        return len(tensors) - 1

    act = s.TensorType.INT8 if int8 else s.TensorType.FLOAT32
    in_scale = [0.05]
    x = tensor("input", (1, side, side, channels), act, scale=in_scale if int8 else None, zero=[0])
    code = s.OperatorCodeT()
    code.builtinCode = code.deprecatedBuiltinCode = s.BuiltinOperator.CONV_2D
    code.version = 3 if int8 else 1
    ops = []
    for k in range(layers):
        if int8:
            w_scale = rng.uniform(0.002, 0.004, channels).astype(np.float32)
            w = tensor(
                f"w{k}", (channels, 1, 1, channels), s.TensorType.INT8,
                rng.integers(-127, 128, (channels, 1, 1, channels), dtype=np.int8),
                w_scale, [0] * channels,
            )  # fmt: skip
            b = tensor(
                f"b{k}", (channels,), s.TensorType.INT32, rng.integers(-1000, 1000, channels).astype(np.int32),
                (w_scale * in_scale[0]).tolist(), [0] * channels,
            )  # fmt: skip
            y = tensor(f"y{k}", (1, side, side, channels), act, scale=in_scale, zero=[0])
        else:
            w = tensor(
                f"w{k}", (channels, 1, 1, channels), s.TensorType.FLOAT32,
                (rng.standard_normal((channels, 1, 1, channels)) / np.sqrt(channels)).astype(np.float32),
            )  # fmt: skip
            b = tensor(f"b{k}", (channels,), s.TensorType.FLOAT32, np.zeros(channels, np.float32))
            y = tensor(f"y{k}", (1, side, side, channels), act)
        op = s.OperatorT()
        op.opcodeIndex, op.inputs, op.outputs = 0, [x, w, b], [y]
        op.builtinOptionsType = s.BuiltinOptions.Conv2DOptions
        opts = s.Conv2DOptionsT()
        opts.padding, opts.strideW, opts.strideH = s.Padding.VALID, 1, 1
        opts.dilationWFactor = opts.dilationHFactor = 1
        opts.fusedActivationFunction = s.ActivationFunctionType.NONE
        op.builtinOptions = opts
        ops.append(op)
        x = y
    graph = s.SubGraphT()
    graph.tensors, graph.operators, graph.inputs, graph.outputs, graph.name = tensors, ops, [0], [x], b"probe"
    model = s.ModelT()
    model.version, model.operatorCodes, model.subgraphs, model.buffers = 3, [code], [graph], buffers
    model.description = b"edgeseg roof probe"
    return pack_model(model)


@functools.lru_cache(maxsize=16)
def measure_roof(threads: int | None, precision: str = "int8", runtime: str = "auto", budget_s: float = 2.0) -> dict:
    """GMAC/s of the probe on LiteRT's interpreter here (XNNPACK, as the models run): the median of up to 30 runs
    inside `budget_s` after one untimed. {"precision", "threads", "runtime", "gmacs_per_s", "p50_ms", "runs"}.

    Args:
        threads: interpreter threads (None: the runtime's default).
        precision: "int8" or "float".
        runtime: the TFLite runtime (edgeseg.predictors.tflite.pick_runtime; another model's runtime: auto).
        budget_s: the time the timed runs may take (at least 3 are run).
    """
    from edgeseg.predictors.tflite import pick_runtime
    from edgeseg.quiet import libraries_quiet

    rt = pick_runtime(runtime if runtime in ("auto", "litert", "tflite-runtime", "tensorflow") else "auto")
    with libraries_quiet():
        try:
            it = rt.interpreter_cls(model_content=probe_model(precision), num_threads=threads)
            it.allocate_tensors()
        except (ValueError, RuntimeError) as e:
            raise ProfileUnavailable(f"the roof probe does not run on {rt.name} here ({e})") from None
    d = it.get_input_details()[0]
    it.set_tensor(d["index"], random_input(d["shape"], d["dtype"]))
    it.invoke()
    times: list[float] = []
    deadline = time.perf_counter() + budget_s
    while len(times) < 30 and (len(times) < 3 or time.perf_counter() < deadline):
        t0 = time.perf_counter_ns()
        it.invoke()
        times.append((time.perf_counter_ns() - t0) / 1e6)
    p50 = float(np.median(times))
    return {
        "precision": precision,
        "threads": threads,
        "runtime": rt.name,
        "gmacs_per_s": PROBE_MACS / 1e9 / (p50 / 1e3),
        "p50_ms": p50,
        "runs": len(times),
    }


def model_precision(predictor) -> str:
    """ "int8" or "float": which roof a model is held against. The spec's record of its build where `convert`
    wrote one; for a .tflite, the type of its convolutions' weights; else its input's type."""
    cost = predictor.spec.extra.get("cost") if isinstance(predictor.spec.extra, dict) else None
    if isinstance(cost, dict) and cost.get("precision"):
        return "int8" if cost["precision"] == "int8" else "float"
    graph = getattr(predictor, "_graph", None)
    if graph is not None:
        weights = [
            graph.tensors[op.inputs[1]].dtype
            for op in graph.ops
            if op.name in ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED") and len(op.inputs) > 1
        ]
        if weights:
            return "int8" if sum(w in ("int8", "uint8") for w in weights) * 2 > len(weights) else "float"
    quantised = _quantised_graph(predictor)
    if quantised is not None:
        return "int8" if quantised else "float"
    return "int8" if np.dtype(predictor.input.dtype).kind in "iu" else "float"


QUANTISED_OPS = {"FakeQuantize", "QuantizeLinear", "DequantizeLinear", "QLinearConv", "ConvInteger", "MatMulInteger"}


def _quantised_graph(predictor) -> bool | None:
    """Whether an OpenVINO or ONNX graph holds quantisation ops (None where it cannot be read here)."""
    try:
        if predictor.runtime_name == "openvino":
            return any(op.get_type_name() in QUANTISED_OPS for op in predictor.model.get_ops())
        if predictor.runtime_name == "onnxruntime":  # op types are plain strings in the protobuf: no onnx needed
            import mmap

            with open(predictor.path, "rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as data:
                return any(data.find(op.encode()) >= 0 for op in QUANTISED_OPS)
    except (OSError, ValueError, RuntimeError):  # an unreadable graph leaves the decision to the input's type
        return None
    return None


def roof_share(gmacs: float | None, p50_ms: float | None, roof: dict | None) -> float | None:
    """A model's GMAC/s over the roof's (None where either is unknown)."""
    if not gmacs or not p50_ms or not roof or not roof.get("gmacs_per_s"):
        return None
    return gmacs / (p50_ms / 1e3) / roof["gmacs_per_s"]


def roofs_at(threads: int | None) -> dict[str, dict]:
    """This CPU's int8 and float roofs at a thread count (measured first, on a quiet machine: the probe runs in
    well under a second here); a roof that cannot be measured says why."""
    out = {}
    for precision in ("int8", "float"):
        try:
            out[precision] = measure_roof(threads, precision)
        except EdgesegError as e:
            out[precision] = {"precision": precision, "threads": threads, "unavailable": str(e)}
    return out


def row_roof(model, gmacs: float | None, p50_ms: float | None, roofs: dict) -> dict:
    """A row's precision and its share of this CPU's roof for that precision.

    Args:
        model: the loaded model (its precision picks the roof).
        gmacs: its GMACs per frame (None where not counted).
        p50_ms: its invoke's median.
        roofs: the roofs at the row's thread count, by precision (roofs_at).
    """
    precision = model_precision(model)
    return {"precision": precision, "roof_share": roof_share(gmacs, p50_ms, roofs.get(precision))}


def roof_text(roofs: list[dict]) -> str:
    """One line: this CPU's roofs at each thread count, as the probe measured them."""
    parts = []
    for rf in roofs:
        th = rf["threads"] or "default"
        if rf.get("gmacs_per_s"):
            parts.append(f"{rf['precision']} {rf['gmacs_per_s']:.0f} GMAC/s at {th} thread(s)")
        else:
            parts.append(f"{rf['precision']} unmeasured at {th} thread(s) ({rf.get('unavailable')})")
    return "Roof (LiteRT probe: two 1x1 convolutions, 512 channels at 64x64, 2.15 GMACs): " + "; ".join(parts)
