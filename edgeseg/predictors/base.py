"""Predictor: what every runtime's predictor shares, so that each runtime's module holds only what differs.

A predictor is one model on one runtime, run in three stages that a pipelined loop can put on different
threads: prepare (BGR frame -> input tensor, geometry), invoke (tensor -> raw output), finish (raw output ->
H x W class mask at the frame's size). This base holds the one input check, the one spec resolution (given,
embedded, beside the model, standard metadata, or read off the tensors), the stages, predict() and segment(),
and describe() with the same keys for every runtime. A runtime's module subclasses it and gives `_open`,
`invoke` and, where its format carries them, `_embedded_spec` and `_standard_metadata`.
"""

from __future__ import annotations

import threading
import time
from abc import ABC, abstractmethod
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from edgeseg.choices import DELEGATES
from edgeseg.errors import DataError, ModelError, RuntimeUnavailable
from edgeseg.limits import check_threads
from edgeseg.postprocess import OutputKind, class_scores, index_mask, output_classes, output_kind
from edgeseg.predictors.spec_source import default_spec, fit_labels
from edgeseg.preprocess import Geometry, preprocess, restore_mask, restore_scores
from edgeseg.spec import MAX_SPEC_BYTES, ModelSpec, spec_path_for
from edgeseg.tensors import TensorInfo

if TYPE_CHECKING:
    from edgeseg.result import Result

ModelSource = Path | str | bytes


class Predictor(ABC):
    """One segmentation model on one runtime: predict(frame) -> Result, segment(frame) -> mask, describe().

    Args:
        model: the model file's path, or its bytes (as pycoral's make_interpreter takes either).
        threads: the runtime's CPU threads (None: the runtime's own choice).
        delegate: "auto", "cpu" or "edgetpu" (only the TFLite runtimes have an accelerator delegate).
        runtime: the runtime's name in edgeseg.choices.RUNTIMES ("auto": the first that is installed).
        spec: a ModelSpec that overrides whatever the model carries.
        threshold: the foreground cut for a one-channel probability output.
        labels: class names that replace the spec's (a labels file's lines).
        name: what to call a model given as bytes in messages (default: "model" and the format's suffix).
    """

    suffix: str = ""  # the format's file suffix, for a model given as bytes
    needs_spec: bool = False  # a format that carries no tensor conventions (Keras) must have a spec
    runtime_name: str = ""

    def __init_subclass__(cls, **kwargs):
        """Every runtime's invoke and invoke_only turn the runtime's own exceptions into one ModelError."""
        super().__init_subclass__(**kwargs)
        for name in ("invoke", "invoke_only"):
            fn = cls.__dict__.get(name)
            if fn is not None and not getattr(fn, "runtime_errors_said", False):
                setattr(cls, name, _runtime_errors(fn))

    runtime_version: str = "unknown"
    delegate: str = "cpu"

    def __init__(
        self,
        model: ModelSource,
        *,
        threads: int | None = None,
        delegate: str = "auto",
        runtime: str = "auto",
        spec: ModelSpec | None = None,
        threshold: float = 0.5,
        labels: list[str] | tuple[str, ...] | None = None,
        name: str | None = None,
    ):
        """Open the model; see the class's arguments."""
        t0 = time.perf_counter_ns()
        from_bytes = isinstance(model, bytes | bytearray | memoryview)
        self.path = Path(name or f"model{self.suffix}") if from_bytes else Path(model)
        if delegate not in DELEGATES:
            raise RuntimeUnavailable(f"unknown delegate {delegate!r}: choose one of {', '.join(DELEGATES)}")
        self.threads = check_threads(threads, "threads")
        self.threshold = float(threshold)
        self.size_bytes = 0
        self.input: TensorInfo
        self.output: TensorInfo
        self._open(bytes(model) if from_bytes else model, delegate=delegate, runtime=runtime)
        self._check_input()
        self.kind = output_kind(self.output)
        self.spec, self.spec_source = self._resolve_spec(spec)
        if labels:  # the user's own names win over the spec's and the metadata's
            self.spec = replace(self.spec, classes=fit_labels(list(labels), self.spec.classes, self.kind), colours=())
        self.timings: dict[str, float] = {}
        self._staged: np.ndarray | None = None
        self._lock = threading.Lock()
        self.init_ms = (time.perf_counter_ns() - t0) / 1e6

    # ------------------------------------------------------------------------------------ what a runtime gives
    @abstractmethod
    def _open(self, model: Path | bytes, *, delegate: str, runtime: str) -> None:
        """Load the model; set self.input and self.output (TensorInfo), self.size_bytes, self.runtime_name,
        self.runtime_version and self.delegate. Raise ModelError for a file the runtime rejects."""

    @abstractmethod
    def invoke(self, tensor: np.ndarray) -> np.ndarray:
        """Run one prepared input tensor; return the raw output tensor (a copy the caller may keep)."""

    def _embedded_spec(self) -> tuple[str | bytes | None, str]:
        """(edgeseg spec JSON that travels with the model, where it was found: "embedded" or "sidecar")."""
        return None, "embedded"

    def _sidecar_spec(self) -> tuple[str | None, str]:
        """The spec file beside the model (`<stem>.spec.json`, else `spec.json`): for formats that carry no
        metadata of their own (Keras, ncnn)."""
        path = spec_path_for(self.path)
        if not path.is_file():
            return None, "sidecar"
        if path.stat().st_size > MAX_SPEC_BYTES:
            raise ModelError(f"{path}: larger than {MAX_SPEC_BYTES} bytes: not a spec")
        return path.read_text(encoding="utf-8", errors="replace"), "sidecar"

    def _on_disk(self, model: Path, companion: str | None = None) -> tuple[Path, Path | None]:
        """The model file and, for a format of two files, the companion beside it (`companion`: its suffix, as
        ".bin"); ModelError naming whichever is missing."""
        path = Path(model)
        if not path.is_file():
            raise ModelError(f"{path}: no such model file")
        other = path.with_suffix(companion) if companion else None
        if other is not None and not other.is_file():
            raise ModelError(f"{path.name}: its weights ({other.name}) are not beside it")
        return path, other

    def _sidecar_parsed(self) -> ModelSpec | None:
        """The spec beside the model, parsed, or None (absent, or not a valid spec: that is said when the spec
        is resolved). For formats whose predictor needs the spec while it opens the model (ncnn, RKNN)."""
        text, _ = self._sidecar_spec()
        try:
            return ModelSpec.from_json(text) if text else None
        except ModelError:
            return None

    def _standard_metadata(self) -> dict:
        """The format's own description of the model: {"mean", "std", "labels"} where it has them."""
        return {}

    def _fix_input_hw(self, hw: tuple[int, int]) -> None:
        """A model with a dynamic height and width runs at `hw` (the spec's size): resize what must be resized.
        A runtime that cannot says so (this default)."""
        raise ModelError(f"{self.path.name}: {self.runtime_name} cannot run a dynamic input size here")

    def _cost(self) -> tuple[float | None, int | None, list[str]]:
        """(GMACs per frame, parameters, what could not be counted); None where the format hides them. This
        default reads the cost that `edgeseg convert` counted on the Keras graph and wrote into the spec (ONNX,
        OpenVINO, ncnn), when the model runs at the size it was counted at."""
        cost = self.spec.extra.get("cost")
        if isinstance(cost, dict) and tuple(cost.get("input_hw") or ()) == tuple(self.spec.input_hw):
            gmacs, params = cost.get("gmacs"), cost.get("params")
            if isinstance(gmacs, int | float) and isinstance(params, int) and 0 <= gmacs < 1e6 and params >= 0:
                return float(gmacs), params, []
        return None, None, [f"{self.runtime_name} graph (not counted)"]

    # ----------------------------------------------------------------------------------- the one check, the one spec
    def _check_input(self) -> None:
        shape = self.input.shape
        if len(shape) != 4 or shape[3] != 3 or shape[0] not in (1, None):
            shown = ["?" if d is None else d for d in shape]
            raise ModelError(f"{self.path.name}: input has shape {shown}, expected [1, H, W, 3] (an image)")

    def _resolve_spec(self, given: ModelSpec | None) -> tuple[ModelSpec, str]:
        source = "given"
        if given is None:
            text, where = self._embedded_spec()
            try:
                given = ModelSpec.from_json(text) if text else None
            except ModelError as e:  # the file is untrusted: say which one carries the bad spec
                raise ModelError(f"{self.path.name}: {where} {e}") from None
            source = where
        if given is None and self.needs_spec:
            raise ModelError(
                f"{self.path.name}: no spec beside the model: put {self.path.stem}.spec.json (or spec.json) next to "
                "it, or give one with --spec (convert and eval take it)"
            )
        _, h, w, _ = self.input.shape
        if h is None or w is None:
            if given is None:
                raise ModelError(
                    f"{self.path.name}: the input's height and width are dynamic and the model carries no spec: put "
                    f"{self.path.stem}.spec.json next to it, or give one with --spec (convert and eval take it; its "
                    "input_hw is the size to run at)"
                )
            h, w = given.input_hw
            self._fix_input_hw((h, w))
            self.input = self.input.with_shape((1, h, w, 3))
        if given is None:
            standard = self._standard_metadata()
            source = "metadata" if standard else "inferred"
            given = default_spec(self.input, self.output, self.kind, standard)
        if given.input_hw != (h, w):
            given = given.with_input_hw((h, w))
        n = output_classes(self.output, self.kind)
        if n is not None and n != given.num_classes:
            raise ModelError(f"{self.path.name}: output has {n} classes but its spec names {given.num_classes}")
        return given, source

    @property
    def embedded_spec(self) -> bool:
        """The model names its own classes (a spec it carries or was given), rather than edgeseg guessing them."""
        return self.spec_source != "inferred"

    @property
    def input_hw(self) -> tuple[int, int]:
        """The model's input (height, width)."""
        return self.spec.input_hw

    # ------------------------------------------------------------------------------------------------- the stages
    def prepare(self, frame: np.ndarray) -> tuple[np.ndarray, Geometry]:
        """BGR frame -> (input tensor, geometry): the first of predict's three stages."""
        return preprocess(check_frame(frame), self.spec, self.input)

    def finish(self, out: np.ndarray, geom: Geometry) -> np.ndarray:
        """Raw output tensor -> H x W class mask at the frame's size: the last of predict's three stages."""
        return restore_mask(index_mask(out, self.output, self.kind, self.threshold), geom)

    def set_input(self, tensor: np.ndarray) -> None:
        """Set the input tensor once, for invoke_only()."""
        self._staged = tensor

    def invoke_only(self) -> None:
        """Run the model on the input set last, reading nothing back: what `bench` times as invoke-only."""
        self.invoke(self._staged)

    def segment(self, frame: np.ndarray) -> np.ndarray:
        """BGR frame -> H x W class mask at the frame's size; `timings` holds the three stages' milliseconds."""
        return self._run(frame, scores=False)[0]

    def predict(self, frame: np.ndarray, scores: bool = False) -> Result:
        """Segment one BGR frame (any size, uint8, as OpenCV reads it).

        Args:
            frame: H x W x 3 BGR uint8 (grey and BGRA are converted).
            scores: also return per-class confidence (H x W x C, 0..1) where the model's output carries it.

        Returns:
            an edgeseg.Result: the mask at the frame's size, scores, timings, class names and colours, overlay().
        """
        from edgeseg.result import Result

        mask, conf = self._run(frame, scores)
        return Result(mask=mask, frame=frame, spec=self.spec, timings=dict(self.timings), scores=conf)

    def _run(self, frame: np.ndarray, scores: bool) -> tuple[np.ndarray, np.ndarray | None]:
        t0 = time.perf_counter_ns()
        tensor, geom = self.prepare(frame)
        t1 = time.perf_counter_ns()
        with self._lock:  # one interpreter, one caller at a time: a second thread waits its turn
            out = self.invoke(tensor)
        t2 = time.perf_counter_ns()
        mask = self.finish(out, geom)
        conf = None
        if scores:
            raw = class_scores(out, self.output, self.kind)
            conf = None if raw is None else restore_scores(raw, geom)
        t3 = time.perf_counter_ns()
        self.timings = {"preprocess": (t1 - t0) / 1e6, "invoke": (t2 - t1) / 1e6, "postprocess": (t3 - t2) / 1e6}
        return mask, conf

    # ------------------------------------------------------------------------------------------------ describe
    def describe(self) -> dict:
        """What this model is and costs on this runtime, with the same keys for every runtime."""
        gmacs, params, uncounted = self._cost()
        show_classes = self.kind is not OutputKind.INDEX or self.embedded_spec
        return {
            "model": str(self.path),
            "size_bytes": self.size_bytes,
            "runtime": self.runtime_name,
            "runtime_version": self.runtime_version,
            "delegate": self.delegate,
            "threads": self.threads,
            "input": self.input.to_dict(),
            "output": {**self.output.to_dict(), "kind": self.kind.value},
            "classes": list(self.spec.classes) if show_classes else None,
            "spec_embedded": self.embedded_spec,
            "spec_source": self.spec_source,
            "init_ms": round(self.init_ms, 3),
            # cost per frame from the graph: the same on every machine (None where the format hides it)
            "gmacs": None if gmacs is None else round(gmacs, 4),
            "params": params,
            "macs_uncounted": uncounted,
        }


def check_frame(frame) -> np.ndarray:
    """A frame as predict() takes it: a uint8 numpy array, H x W (grey) or H x W x 1, 3 or 4 (BGR, BGRA).
    Anything else is a DataError that says what was given, never a wrong answer from pixels read at another
    scale (a float frame in 0..1 read as 0..255 is black)."""
    if not isinstance(frame, np.ndarray):
        raise DataError(f"a frame is a numpy array (H x W x 3, BGR uint8), not {type(frame).__name__}")
    if frame.dtype != np.uint8:
        hint = " (scale 0..1 floats with (frame * 255).round().astype(np.uint8))" if frame.dtype.kind == "f" else ""
        raise DataError(f"a frame is uint8 BGR as OpenCV reads it, not {frame.dtype.name}{hint}")
    if frame.ndim not in (2, 3) or (frame.ndim == 3 and frame.shape[2] not in (1, 3, 4)) or 0 in frame.shape:
        raise DataError(f"a frame is H x W x 3 (BGR), H x W x 4 or H x W (grey), not shape {list(frame.shape)}")
    return frame[..., 0] if frame.ndim == 3 and frame.shape[2] == 1 else frame


def _runtime_errors(fn):
    """`fn` (a predictor's invoke) with any exception of the runtime's own (ONNX Runtime's Fail, OpenVINO's
    RuntimeError, ncnn's and RKNN's) raised as a ModelError that names the model and the runtime: `run` and
    `eval` say it in one line and the Python API raises an EdgesegError, never the runtime's traceback."""
    import functools

    from edgeseg.errors import EdgesegError

    @functools.wraps(fn)
    def wrapped(self, *args, **kwargs):
        try:
            return fn(self, *args, **kwargs)
        except (EdgesegError, MemoryError):
            raise
        except Exception as e:  # noqa: BLE001 - whatever the runtime raises, said in one line
            from edgeseg import signals

            if signals.stop_received():  # a SIGTERM that landed in the runtime's native code and came out as this
                raise signals.Terminated() from None
            text = (str(e).strip().splitlines() or [""])[0][:200]
            where = getattr(self, "path", None)
            name = where.name if isinstance(where, Path) else "the model"
            raise ModelError(
                f"{name}: {self.runtime_name or 'the runtime'} failed while running it ({type(e).__name__}: {text})"
            ) from None

    wrapped.runtime_errors_said = True
    return wrapped
