"""Segmenter: a segmentation .tflite on a TFLite runtime, with the Edge TPU delegate where a model needs it.

Interpreter: ai-edge-litert (the maintained LiteRT runtime) first, then tflite-runtime, then TensorFlow's
own interpreter as the last fallback. TensorFlow is imported only when neither runtime is installed (or it is
asked for by name), so the device path never needs it.
"""

from __future__ import annotations

import gc
import importlib
import platform
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edgeseg.choices import runtimes_for
from edgeseg.cost import graph_cost
from edgeseg.edgetpu import CUSTOM_OP
from edgeseg.errors import ModelError, RuntimeUnavailable
from edgeseg.host import installed_version
from edgeseg.predictors.base import Predictor
from edgeseg.tensors import TensorInfo
from edgeseg.tflite_checks import check_graph
from edgeseg.tflite_file import check_tflite, read_model_bytes, read_opcodes, read_spec_json
from edgeseg.tflite_metadata import read_standard_metadata

_EDGETPU_LIB = {"Linux": "libedgetpu.so.1", "Darwin": "libedgetpu.1.dylib", "Windows": "edgetpu.dll"}
TFLITE_RUNTIMES = runtimes_for(".tflite")  # in the order "auto" tries them


@dataclass(frozen=True)
class Runtime:
    """One TFLite runtime: its name, version, Interpreter class and load_delegate function."""

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


def import_runtime(name: str) -> Runtime:
    """Import one TFLite runtime by name; raise ImportError (with the reason) when it is not usable here."""
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
    raise RuntimeUnavailable(f"unknown TFLite runtime {name!r}: choose one of {', '.join(TFLITE_RUNTIMES)}")


def pick_runtime(name: str = "auto") -> Runtime:
    """The named TFLite runtime, or with "auto" the first of TFLITE_RUNTIMES that imports (RuntimeUnavailable,
    with each one's reason, when none does)."""
    if name != "auto" and name not in TFLITE_RUNTIMES:
        raise RuntimeUnavailable(f"unknown TFLite runtime {name!r}: choose one of {', '.join(TFLITE_RUNTIMES)}")
    order = TFLITE_RUNTIMES if name == "auto" else (name,)
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
    """The Edge TPU runtime's shared library name on this operating system."""
    return _EDGETPU_LIB.get(platform.system(), "libedgetpu.so.1")


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
            reason = first_line(e)
        gc.collect()
        return None, reason
    finally:
        sys.unraisablehook = previous


def tensor_info(detail: dict, dynamic_hw: bool = False) -> TensorInfo:
    """A TFLite tensor detail dict as a TensorInfo: its allocated shape, with height and width None where
    `dynamic_hw` and the model's "shape_signature" marks them -1 (a model that runs at any size)."""
    shape: list[int | None] = [int(s) for s in detail["shape"]]
    signature = [int(s) for s in detail.get("shape_signature", shape)]
    if dynamic_hw and len(shape) == 4 and len(signature) == 4:
        shape[1:3] = [None if s < 0 else d for s, d in zip(signature[1:3], shape[1:3], strict=True)]
    scale, zero_point = detail.get("quantization") or (0.0, 0)
    return TensorInfo(
        str(detail.get("name", "")), tuple(shape), np.dtype(detail["dtype"]), float(scale), int(zero_point)
    )


class Segmenter(Predictor):
    """One segmentation .tflite (a path or its bytes) on LiteRT, tflite-runtime or TensorFlow's interpreter;
    an _edgetpu.tflite on the Edge TPU delegate. See Predictor for the arguments."""

    suffix = ".tflite"

    def _open(self, model: Path | bytes, *, delegate: str, runtime: str) -> None:
        buf = model if isinstance(model, bytes) else read_model_bytes(Path(model))
        check_tflite(buf, self.path.name)
        self._graph = check_graph(buf, self.path.name)  # values the interpreter would trust blindly
        self._buf = buf
        self.size_bytes = len(buf)
        needs_edgetpu = any(op.custom == CUSTOM_OP for op in read_opcodes(buf, self.path.name))
        if delegate == "auto":
            delegate = "edgetpu" if needs_edgetpu else "cpu"
        if needs_edgetpu and delegate != "edgetpu":
            raise RuntimeUnavailable(
                f"{self.path.name} is compiled for the Edge TPU: run it with --delegate edgetpu on a Coral device, "
                "or use the CPU build of the model (without _edgetpu)"
            )
        self.runtime = pick_runtime(runtime)
        self.runtime_name, self.runtime_version, self.delegate = self.runtime.name, self.runtime.version, delegate
        delegates = [self._edgetpu_delegate(needs_edgetpu)] if delegate == "edgetpu" else []
        self.interpreter = self._interpreter(buf, delegates)
        self.input = tensor_info(self.interpreter.get_input_details()[0], dynamic_hw=True)
        self.output = tensor_info(self.interpreter.get_output_details()[0])
        self._in_idx = self.interpreter.get_input_details()[0]["index"]
        self._out_idx = self.interpreter.get_output_details()[0]["index"]

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

    def _interpreter(self, buf: bytes, delegates: list):
        """An interpreter for the model bytes with batch 1 and its tensors allocated."""
        from edgeseg.quiet import libraries_quiet

        try:
            with libraries_quiet():  # LiteRT's "INFO: Created TensorFlow Lite XNNPACK delegate" at every model
                it = self.runtime.interpreter_cls(
                    model_content=buf, num_threads=self.threads, experimental_delegates=delegates or None
                )
                inputs = it.get_input_details()
                if len(inputs) != 1:
                    raise ModelError(f"{self.path.name}: expected one input tensor, found {len(inputs)}")
                shape = [int(s) for s in inputs[0]["shape"]]
                if len(shape) == 4 and shape[0] != 1:
                    it.resize_tensor_input(inputs[0]["index"], [1] + shape[1:])
                it.allocate_tensors()
        except (ValueError, RuntimeError) as e:
            raise ModelError(f"{self.path.name}: the interpreter rejects this model ({first_line(e)})") from None
        return it

    def _fix_input_hw(self, hw: tuple[int, int]) -> None:
        from edgeseg.quiet import libraries_quiet

        try:
            with libraries_quiet():
                self.interpreter.resize_tensor_input(self._in_idx, [1, *hw, 3], strict=True)
                self.interpreter.allocate_tensors()
        except (ValueError, RuntimeError) as e:
            raise ModelError(f"{self.path.name}: cannot run at {hw[1]}x{hw[0]} ({first_line(e)})") from None
        self.output = tensor_info(self.interpreter.get_output_details()[0])

    def _embedded_spec(self) -> tuple[bytes | None, str]:
        return read_spec_json(self._buf, self.path.name), "embedded"

    def _standard_metadata(self) -> dict:
        return read_standard_metadata(self._buf, self.path.name)

    def _cost(self) -> tuple[float | None, int | None, list[str]]:
        cost = graph_cost(self._graph)
        return (None if cost.uncounted else cost.gmacs), cost.params, list(cost.uncounted)

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


def first_line(e: BaseException) -> str:
    """An exception's first line of text (its type's name when it has none)."""
    text = str(e).strip()
    return text.splitlines()[0] if text else type(e).__name__


PREDICTOR = Segmenter
