"""Segmenter: run any segmentation .tflite on a BGR frame and get a class mask at the frame's own size.

Interpreter: ai-edge-litert (the maintained LiteRT runtime) first, then tflite-runtime, then TensorFlow's
own interpreter as the last fallback. TensorFlow is imported only when neither runtime is installed (or it is
asked for by name), so the device path never needs it.
"""

from __future__ import annotations

import gc
import importlib
import importlib.metadata
import platform
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from edgeseg.choices import DELEGATES, RUNTIMES
from edgeseg.cost import graph_cost
from edgeseg.errors import ModelError, RuntimeUnavailable
from edgeseg.postprocess import OutputKind, class_scores, index_mask, output_classes, output_kind
from edgeseg.preprocess import preprocess, restore_mask, restore_scores
from edgeseg.spec import ModelSpec
from edgeseg.tflite_file import (
    check_graph,
    check_tflite,
    read_model_bytes,
    read_opcodes,
    read_spec_json,
    read_standard_metadata,
)

EDGETPU_CUSTOM_OP = "edgetpu-custom-op"
_EDGETPU_LIB = {"Linux": "libedgetpu.so.1", "Darwin": "libedgetpu.1.dylib", "Windows": "edgetpu.dll"}


@dataclass(frozen=True)
class Runtime:
    name: str
    version: str
    interpreter_cls: Any
    load_delegate: Any


def ops_details(interpreter) -> list[dict]:
    """The interpreter's op list (op_name, index, operand and result types), after allocate_tensors().

    The one call into a private API of the runtimes (`_get_ops_details`, which LiteRT, tflite-runtime and
    TensorFlow's interpreter all have and no public call replaces); doctor and the converter's op report
    use it through here."""
    return list(interpreter._get_ops_details())


def installed_version(dist: str) -> str | None:
    """A distribution's installed version, or None."""
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


def import_runtime(name: str) -> Runtime:
    """Import one runtime by name; raise ImportError (with the reason) when it is not usable here."""
    if name == "litert":
        mod = importlib.import_module("ai_edge_litert.interpreter")
        return Runtime("litert", installed_version("ai-edge-litert") or "unknown", mod.Interpreter, mod.load_delegate)
    if name == "tflite-runtime":
        try:
            mod = importlib.import_module("tflite_runtime.interpreter")
        except ImportError:
            raise
        except Exception as e:  # tflite-runtime 2.14 was built against numpy 1: numpy 2 breaks its import
            raise ImportError(f"tflite-runtime does not load ({type(e).__name__}: {e}); it needs numpy<2") from None
        return Runtime(
            "tflite-runtime", installed_version("tflite-runtime") or "unknown", mod.Interpreter, mod.load_delegate
        )
    if name == "tensorflow":
        tf = importlib.import_module("tensorflow")
        return Runtime("tensorflow", tf.__version__, tf.lite.Interpreter, tf.lite.experimental.load_delegate)
    raise RuntimeUnavailable(f"unknown runtime {name!r}: choose one of {', '.join(RUNTIMES)}")


def pick_runtime(name: str = "auto") -> Runtime:
    if name not in RUNTIMES:
        raise RuntimeUnavailable(f"unknown runtime {name!r}: choose one of {', '.join(RUNTIMES)}")
    order = ["litert", "tflite-runtime", "tensorflow"] if name == "auto" else [name]
    reasons = []
    for candidate in order:
        try:
            return import_runtime(candidate)
        except ImportError as e:
            reasons.append(f"{candidate}: {e}")
    if name != "auto":
        raise RuntimeUnavailable(f"runtime {name} is not available ({reasons[0]})")
    raise RuntimeUnavailable("no TFLite runtime installed: pip install 'edgeseg[device]' (ai-edge-litert)")


def edgetpu_library() -> str:
    return _EDGETPU_LIB.get(platform.system(), "libedgetpu.so.1")


def default_spec(input_detail: dict, output_detail: dict, kind: OutputKind, standard: dict | None = None) -> ModelSpec:
    """A spec for a model that carries no edgeseg spec: from its standard TFLite Metadata (`standard`: the
    input's NormalizationOptions and the output's label file) where it has them, else read off its tensors.

    Without metadata: a quantised input takes raw pixels as they are (q = pixel for uint8, pixel - 128 for
    int8), the convention of Coral's models; a float input takes RGB scaled to [0, 1].
    """
    standard = standard or {}
    _, h, w, _ = (int(s) for s in input_detail["shape"])
    dtype = np.dtype(input_detail["dtype"])
    scale, zp = input_detail["quantization"]
    if dtype != np.float32 and scale:
        offset = 128 if dtype == np.int8 else 0
        mean, std = (offset + zp,) * 3, (1.0 / scale,) * 3
    else:
        mean, std = (0.0,) * 3, (255.0,) * 3
    if standard.get("mean") and standard.get("std"):
        mean, std = tuple(standard["mean"]), tuple(standard["std"])
    n = output_classes(output_detail, kind)
    if kind is OutputKind.PROBABILITY:
        classes = ("background", "foreground")
    else:
        classes = tuple(f"class_{i}" for i in range(n or 256))
    labels = standard.get("labels") or []
    classes = fit_labels(labels, classes, kind) if labels else classes
    return ModelSpec(input_hw=(h, w), classes=classes, mean=mean, std=std)


def fit_labels(labels: list[str], classes: tuple[str, ...], kind: OutputKind) -> tuple[str, ...]:
    """Class names from a label list for an output with len(classes) classes. A probability output's one label
    names its foreground; an index map takes as many labels as it has; a scores output needs exactly one
    label per channel (ModelError otherwise)."""
    if kind is OutputKind.PROBABILITY and len(labels) == 1:
        return ("background", labels[0])
    if kind is OutputKind.INDEX or len(labels) == len(classes):
        return tuple(labels)
    raise ModelError(f"{len(labels)} labels for an output with {len(classes)} classes")


def read_labels(path: Path) -> list[str]:
    """A labels file as Coral, Picamera2 and the TFLite tools write it: one name per line, optionally after an
    index ("0 background" or "0: background"), blank lines skipped."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise ModelError(f"{path}: cannot read the labels ({getattr(e, 'strerror', None) or e})") from None
    labels = []
    for line in text.splitlines():
        line = line.strip()
        head, sep, rest = line.replace(":", " ", 1).partition(" ")
        name = rest.strip() if sep and head.isdigit() and rest.strip() else line
        if name:
            labels.append(name)
    if not labels:
        raise ModelError(f"{path}: no labels in it")
    return labels


class StagedPredictor:
    """predict(frame) as three timed stages: prepare (preprocess), invoke, finish (postprocess). A pipelined
    loop calls the stages on different threads; subclasses give the three (see edgeseg.models.Predictor)."""

    timings: dict[str, float]
    threshold: float = 0.5  # the foreground cut for a one-channel probability output
    spec_source: str = "embedded"  # where the spec came from: "embedded", "given" (--spec) or "inferred"

    @property
    def embedded_spec(self) -> bool:
        """The model names its own classes (an embedded or given spec), rather than edgeseg guessing them."""
        return self.spec_source != "inferred"

    def prepare(self, frame: np.ndarray):
        """BGR frame -> (input tensor, geometry). The first of predict's three stages; a pipelined loop runs
        prepare, invoke and finish on different threads."""
        return preprocess(frame, self.spec, self.input_detail)

    def finish(self, out: np.ndarray, geom) -> np.ndarray:
        """Raw output tensor -> H x W class mask at the frame's size."""
        return restore_mask(index_mask(out, self.output_detail, self.kind, self.threshold), geom)

    def io_description(self, input_quantization: list) -> dict:
        """The tensors, classes and spec provenance, as every predictor's describe() reports them."""
        d, o = self.input_detail, self.output_detail
        return {
            "input": {
                "shape": [int(s) for s in d["shape"]],
                "dtype": np.dtype(d["dtype"]).name,
                "quantization": input_quantization,
            },
            "output": {
                "shape": [int(s) for s in o["shape"]],
                "dtype": np.dtype(o["dtype"]).name,
                "kind": self.kind.value,
            },
            "classes": list(self.spec.classes) if self.kind is not OutputKind.INDEX or self.embedded_spec else None,
            "spec_embedded": self.embedded_spec,
            "spec_source": self.spec_source,
            "init_ms": round(self.init_ms, 3),
        }

    def segment(self, frame: np.ndarray) -> np.ndarray:
        """BGR frame -> H x W class mask at the frame's size; `timings` holds the three stages' milliseconds."""
        return self._run(frame, scores=False)[0]

    def predict(self, frame: np.ndarray, scores: bool = False):
        """Segment one BGR frame (any size, uint8, as OpenCV reads it).

        Args:
            frame: H x W x 3 BGR (grey and BGRA are converted).
            scores: also return per-class confidence (H x W x C, 0..1) where the model's output carries it.

        Returns:
            an edgeseg.Result: the mask at the frame's size, scores, timings, class names and colours, overlay().
        """
        from edgeseg.result import Result

        mask, conf = self._run(frame, scores)
        return Result(mask=mask, frame=frame, spec=self.spec, timings=dict(self.timings), scores=conf)

    def stream(self, source, *, max_frames: int | None = None, reconnect: bool = True, size_wh=None):
        """Results for the frames of a source, from the same pipelined capture as `edgeseg run`: a thread reads
        and prepares the next frame while this one runs. A live source yields its newest frame (stale ones are
        dropped); a file yields every frame in order.

        Args:
            source: a camera index (int), a video file, an image folder or glob, an rtsp:// or http:// URL,
                "picamera" (the Raspberry Pi camera), or "synthetic[:WxH]".
            max_frames: stop after this many frames (default: when the source ends).
            reconnect: reopen a live source that stops delivering.
            size_wh: ask a camera for this (width, height).
        """
        from camera.reader import CaptureThread
        from camera.sources import open_source
        from edgeseg.result import Result

        kind = (
            {"camera": source}
            if isinstance(source, int)
            else {"picamera": True}
            if source == "picamera"
            else {"source": str(source)}
        )
        lores = (self.spec.input_hw[1], self.spec.input_hw[0]) if source == "picamera" else None
        with open_source(size_wh=size_wh, lores_wh=lores, **kind) as src:
            capture = CaptureThread(src, self.prepare, reconnect, log=lambda *_: None).start()
            try:
                n = 0
                while max_frames is None or n < max_frames:
                    item = capture.get(timeout=0.25)
                    if item is None:
                        if capture.finished:
                            if capture.error is not None:
                                raise capture.error
                            return
                        continue
                    t0 = time.perf_counter_ns()
                    out = self.invoke(item.prepared[0])
                    t1 = time.perf_counter_ns()
                    mask = self.finish(out, item.prepared[1])
                    t2 = time.perf_counter_ns()
                    timings = {
                        "capture": item.capture_ms,
                        "preprocess": item.prepare_ms,
                        "invoke": (t1 - t0) / 1e6,
                        "postprocess": (t2 - t1) / 1e6,
                    }
                    yield Result(mask=mask, frame=item.frame, spec=self.spec, timings=timings, index=n)
                    n += 1
            finally:
                capture.stop()

    def _run(self, frame: np.ndarray, scores: bool):
        t0 = time.perf_counter_ns()
        tensor, geom = self.prepare(frame)
        t1 = time.perf_counter_ns()
        out = self.invoke(tensor)
        t2 = time.perf_counter_ns()
        mask = self.finish(out, geom)
        conf = None
        if scores:
            raw = class_scores(out, self.output_detail, self.kind)
            conf = None if raw is None else restore_scores(raw, geom)
        t3 = time.perf_counter_ns()
        self.timings = {"preprocess": (t1 - t0) / 1e6, "invoke": (t2 - t1) / 1e6, "postprocess": (t3 - t2) / 1e6}
        return mask, conf


class Segmenter(StagedPredictor):
    """One segmentation .tflite, ready to run frames through.

    predict(frame) -> H x W uint8 mask at the frame's size. `timings` after each call: preprocess, invoke and
    postprocess milliseconds.
    """

    def __init__(
        self,
        model: Path | str,
        *,
        num_threads: int | None = None,
        delegate: str = "auto",
        runtime: str = "auto",
        spec: ModelSpec | None = None,
        threshold: float = 0.5,
        labels: list[str] | None = None,
    ):
        t0 = time.perf_counter_ns()
        self.path = Path(model)
        if delegate not in DELEGATES:
            raise RuntimeUnavailable(f"unknown delegate {delegate!r}: choose one of {', '.join(DELEGATES)}")
        buf = read_model_bytes(self.path)
        check_tflite(buf, str(self.path))
        graph = check_graph(buf, self.path.name)  # values the interpreter would trust blindly
        self.model_bytes = len(buf)
        self.cost = graph_cost(graph)
        needs_edgetpu = any(op.custom == EDGETPU_CUSTOM_OP for op in read_opcodes(buf, str(self.path)))
        if delegate == "auto":
            delegate = "edgetpu" if needs_edgetpu else "cpu"
        if needs_edgetpu and delegate != "edgetpu":
            raise RuntimeUnavailable(
                f"{self.path.name} is compiled for the Edge TPU: run it with --delegate edgetpu on a Coral device, "
                "or use the CPU build of the model (without _edgetpu)"
            )
        self.runtime = pick_runtime(runtime)
        self.delegate = delegate
        self.num_threads = num_threads
        self.interpreter = self._open(buf, [self._edgetpu_delegate(needs_edgetpu)] if delegate == "edgetpu" else [])
        self.input_detail = self.interpreter.get_input_details()[0]
        outputs = self.interpreter.get_output_details()
        self.output_detail = outputs[0]
        self.kind = output_kind(self.output_detail)
        self.spec = self._resolve_spec(buf, spec)
        if labels:  # the user's own names win over the spec's and the metadata's
            self.spec = replace(self.spec, classes=fit_labels(labels, self.spec.classes, self.kind), colours=())
        self.threshold = threshold
        self._in_idx, self._out_idx = self.input_detail["index"], self.output_detail["index"]
        self.timings: dict[str, float] = {}
        self.init_ms = (time.perf_counter_ns() - t0) / 1e6

    def _edgetpu_delegate(self, needs_edgetpu: bool):
        lib = edgetpu_library()
        loaded, err = load_delegate(self.runtime, lib)
        if loaded is None:
            what = f"{self.path.name} is compiled for the Edge TPU, but the" if needs_edgetpu else "The"
            raise RuntimeUnavailable(
                f"{what} Edge TPU delegate ({lib}) does not load: is a Coral device attached and the Edge TPU "
                f"runtime (libedgetpu) installed? ({err})"
            )
        return loaded

    def _open(self, buf: bytes, delegates: list):
        """An interpreter for the model bytes with batch 1 and its tensors allocated; one image input checked."""
        try:
            it = self.runtime.interpreter_cls(
                model_content=buf, num_threads=self.num_threads, experimental_delegates=delegates or None
            )
            inputs = it.get_input_details()
            if len(inputs) != 1:
                raise ModelError(f"{self.path.name}: expected one input tensor, found {len(inputs)}")
            shape = [int(s) for s in inputs[0]["shape"]]
            if len(shape) != 4 or shape[3] != 3:
                raise ModelError(f"{self.path.name}: input has shape {shape}, expected [1, H, W, 3] (an image)")
            if shape[0] != 1:
                it.resize_tensor_input(inputs[0]["index"], [1] + shape[1:])
            it.allocate_tensors()
        except (ValueError, RuntimeError) as e:
            raise ModelError(f"{self.path.name}: the interpreter rejects this model ({_first_line(e)})") from None
        return it

    def _resolve_spec(self, buf: bytes, given: ModelSpec | None) -> ModelSpec:
        _, h, w, _ = (int(s) for s in self.input_detail["shape"])
        self.spec_source = "given"
        if given is None:
            embedded = read_spec_json(buf, str(self.path))
            try:
                spec = ModelSpec.from_json(embedded) if embedded else None
            except ModelError as e:  # the file is untrusted: say which one carries the bad spec
                raise ModelError(f"{self.path.name}: embedded {e}") from None
            standard = {} if spec else read_standard_metadata(buf, self.path.name)
            self.spec_source = "embedded" if spec else "metadata" if standard else "inferred"
            given = spec or default_spec(self.input_detail, self.output_detail, self.kind, standard)
        if given.input_hw != (h, w):
            given = given.with_input_hw((h, w))
        n = output_classes(self.output_detail, self.kind)
        if n is not None and n != given.num_classes:
            raise ModelError(f"{self.path.name}: output has {n} classes but its spec names {given.num_classes}")
        return given

    @property
    def input_hw(self) -> tuple[int, int]:
        return self.spec.input_hw

    def invoke(self, tensor: np.ndarray) -> np.ndarray:
        """Run one prepared input tensor; return the raw output tensor (a copy)."""
        self.interpreter.set_tensor(self._in_idx, tensor)
        self.interpreter.invoke()
        return self.interpreter.get_tensor(self._out_idx)

    def set_input(self, tensor: np.ndarray) -> None:
        """Set the input tensor once, for invoke_only()."""
        self.interpreter.set_tensor(self._in_idx, tensor)

    def invoke_only(self) -> None:
        """Run the interpreter on the input set last, reading nothing back: what `bench` times as invoke-only."""
        self.interpreter.invoke()

    def describe(self) -> dict:
        d = self.input_detail
        return {
            "model": str(self.path),
            "size_bytes": self.model_bytes,
            "runtime": self.runtime.name,
            "runtime_version": self.runtime.version,
            "delegate": self.delegate,
            "threads": self.num_threads,
            **self.io_description([float(d["quantization"][0]), int(d["quantization"][1])]),
            # cost per frame from the graph: the same on every machine (None where compiled ops hide it)
            "gmacs": None if self.cost.uncounted else round(self.cost.gmacs, 4),
            "params": self.cost.params,
            "macs_uncounted": self.cost.uncounted,
        }


def load_delegate(runtime: Runtime, library: str):
    """Load a delegate library (the Edge TPU's) with `runtime`: (delegate, None) or (None, reason).

    A failed load leaves a half-built Delegate whose __del__ raises AttributeError in LiteRT and tflite-runtime;
    that noise is dropped here, nothing else."""
    previous = sys.unraisablehook

    def hook(unraisable):
        if isinstance(unraisable.exc_value, AttributeError) and "Delegate" in repr(unraisable.object):
            return
        previous(unraisable)

    sys.unraisablehook = hook
    try:
        try:
            return runtime.load_delegate(library), None
        except (ValueError, OSError, RuntimeError) as e:
            reason = _first_line(e)
        gc.collect()
        return None, reason
    finally:
        sys.unraisablehook = previous


def _first_line(e: BaseException) -> str:
    text = str(e).strip()
    return text.splitlines()[0] if text else type(e).__name__
