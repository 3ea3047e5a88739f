"""Keras -> RKNN, the format of Rockchip's NPUs (RK3588, RK3576, RK3566/68, RK3562, RV1103/06, RK2118), through
rknn-toolkit2. Two targets: int8 (calibrated on the same images and preprocessing as the TFLite int8), and fp16
(the NPU's float). The spec goes beside the model as `<stem>.spec.json`: the .rknn format has no room for it.

rknn-toolkit2 cannot share TensorFlow's environment (it pins numpy <= 1.26.4, protobuf <= 4.25.4 and PyTorch
<= 2.4), so it runs in an environment of its own: `scripts/setup-rknn.sh` makes `.venv-rknn`, and
EDGESEG_RKNN_PYTHON names its Python (the Python running edgeseg is used when it has the toolkit itself). This
module exports the NCHW ONNX graph (RKNN reads ONNX as NCHW), folds zero pads into the convolutions (the toolkit's
own pad fusion fails on them), writes the calibration tensors as .npy files, and hands the rest to
rknn_worker.py in that Python: build, export, then RKNN's simulator on the same build.

A .rknn file runs only on the board (rknn-toolkit-lite2 and the NPU driver); the x86 simulator runs a model only
in the session that built it. So the conversion keeps that session open as a predictor (RknnSimulator) for
convert's argmax check, and benchmarks/rknn_sim.py scores the simulator on a dataset through it.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import weakref
from collections import Counter
from dataclasses import replace
from pathlib import Path

import numpy as np

from edgeseg.choices import RKNN_PLATFORMS, check_choice
from edgeseg.converters.files import ModelFiles
from edgeseg.converters.job import Job
from edgeseg.converters.onnx import export, fold_zero_pads
from edgeseg.converters.verify import OpReport
from edgeseg.errors import EdgesegError, ModelError
from edgeseg.predictors.base import Predictor
from edgeseg.spec import ModelSpec
from edgeseg.tensors import TensorInfo

WORKER = Path(__file__).with_name("rknn_worker.py")
LOCAL_VENV = Path(__file__).resolve().parents[1] / ".venv-rknn" / "bin" / "python"  # scripts/setup-rknn.sh's
PYTHON_ENV = "EDGESEG_RKNN_PYTHON"
BUILD_SECONDS = 1800  # the build and the simulator's start; a nano build takes well under a minute
INVOKE_SECONDS = 600
RKNN_EXTRA = "rknn"  # the spec's extra entry: the platform and precision it was built for


def build_int8(job: Job) -> ModelFiles:
    """The model built for the job's Rockchip platform with int8 weights and activations, its spec beside it,
    and the simulator on the same build as `live` (for convert's check)."""
    return _convert(job, quantize=True)


def build_fp16(job: Job) -> ModelFiles:
    """The same in the NPU's float16."""
    return _convert(job, quantize=False)


def rknn_python() -> str:
    """The Python that has rknn-toolkit2: EDGESEG_RKNN_PYTHON, else this one when it has the toolkit, else the
    repository's .venv-rknn (scripts/setup-rknn.sh). EdgesegError saying how to get one otherwise."""
    given = os.environ.get(PYTHON_ENV)
    if given:
        if not (shutil.which(given) or Path(given).is_file()):
            raise EdgesegError(f"{PYTHON_ENV}={given}: no such Python")
        return given
    if importlib.util.find_spec("rknn") is not None:
        return sys.executable
    if LOCAL_VENV.is_file():
        return str(LOCAL_VENV)
    raise EdgesegError(
        "rknn-toolkit2 is not installed: it needs an environment of its own (its numpy and protobuf pins clash "
        f"with TensorFlow's): run scripts/setup-rknn.sh, or install it in another venv and set {PYTHON_ENV} to "
        "that venv's python"
    )


class RknnSession:
    """rknn_worker.py in the toolkit's Python: the build, then its simulator answering one input at a time.
    Closed by close(), or when it is garbage-collected, or at exit; its temporary folder goes with it.

    Args:
        python: the Python that has rknn-toolkit2 (rknn_python()).
        onnx_bytes: the NCHW ONNX model to build.
        platform: the Rockchip SoC to build for.
        calibration: float32 [1, H, W, 3] tensors to calibrate an int8 build on; None builds fp16.
    """

    def __init__(self, python: str, onnx_bytes: bytes, platform: str, calibration=None):
        self.folder = Path(tempfile.mkdtemp(prefix="edgeseg-rknn-"))
        self.rknn_path = self.folder / "model.rknn"
        self._lock = threading.Lock()
        job = {"onnx": str(self.folder / "model.onnx"), "out": str(self.rknn_path), "platform": platform}
        (self.folder / "model.onnx").write_bytes(onnx_bytes)
        job["quantize"], job["dataset"] = calibration is not None, None
        if calibration is not None:
            job["dataset"] = str(self._write_dataset(calibration))
        (self.folder / "job.json").write_text(json.dumps(job))
        self._log = open(self.folder / "rknn.log", "wb")  # noqa: SIM115 (held for the worker's life)
        env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}
        self.proc = subprocess.Popen(
            [python, str(WORKER), str(self.folder / "job.json")],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._log,
            env=env,
        )
        self._finalizer = weakref.finalize(self, _end, self.proc, self._log, self.folder)
        ready = self._answer_line(BUILD_SECONDS, "build")
        if "error" in ready:
            detail = ready["error"]
            self.close()
            raise ModelError(f"RKNN {detail}")
        self.toolkit_version = ready.get("version", "unknown")

    def _write_dataset(self, calibration) -> Path:
        """Each calibration tensor as an NCHW .npy file, listed one per line (the toolkit's dataset file)."""
        names = []
        for i, t in enumerate(calibration):
            name = self.folder / f"cal_{i:04d}.npy"
            np.save(name, np.ascontiguousarray(t.transpose(0, 3, 1, 2), dtype=np.float32))
            names.append(str(name))
        if not names:
            raise EdgesegError("RKNN int8 needs calibration images")
        listing = self.folder / "dataset.txt"
        listing.write_text("\n".join(names) + "\n")
        return listing

    def _tail(self) -> str:
        self._log.flush()
        lines = (self.folder / "rknn.log").read_text(errors="replace").strip().splitlines()
        return " ".join(line.strip() for line in lines[-2:])[:300]

    def _answer_line(self, seconds: float, what: str) -> dict:
        timer = threading.Timer(seconds, self.proc.kill)
        timer.start()
        try:
            line = self.proc.stdout.readline()
        finally:
            timer.cancel()
        if not line:
            self.proc.wait(timeout=30)
            why = f"killed after {seconds:.0f} s" if self.proc.returncode == -9 else f"exit {self.proc.returncode}"
            return {"error": f"{what} ended without an answer ({why}): {self._tail()}"}
        try:
            return json.loads(line)
        except json.JSONDecodeError:
            return {"error": f"{what}: the worker said {line[:200]!r}"}

    def run(self, nchw: np.ndarray) -> np.ndarray:
        """One NCHW float32 input through the simulator; its output as the toolkit gives it."""
        from edgeseg.converters.rknn_worker import pack_array, read_frame, unpack_array, write_frame

        with self._lock:
            if self.proc.poll() is not None:
                raise ModelError(f"the RKNN simulator has stopped (exit {self.proc.returncode}): {self._tail()}")
            timer = threading.Timer(INVOKE_SECONDS, self.proc.kill)
            timer.start()
            try:
                write_frame(self.proc.stdin, pack_array(np.asarray(nchw, dtype=np.float32)))
                payload = read_frame(self.proc.stdout)
            except (BrokenPipeError, OSError):
                payload = None
            finally:
                timer.cancel()
        if payload is None:
            raise ModelError(f"the RKNN simulator stopped during a run: {self._tail()}")
        head = json.loads(payload.partition(b"\n")[0])
        if "error" in head:
            raise ModelError(f"the RKNN simulator failed on an input: {head['error']}")
        return unpack_array(payload)

    def close(self) -> None:
        """End the simulator and remove the temporary folder."""
        self._finalizer()


def _end(proc: subprocess.Popen, log, folder: Path) -> None:
    try:
        if proc.poll() is None:
            try:
                proc.stdin.write(b"\0\0\0\0")  # the end-of-session frame
                proc.stdin.close()
                proc.wait(timeout=30)
            except (OSError, subprocess.TimeoutExpired):
                proc.kill()
                proc.wait()
    finally:
        log.close()
        shutil.rmtree(folder, ignore_errors=True)


class RknnSimulator(Predictor):
    """A model built by rknn-toolkit2, run by its x86 simulator in the session that built it: the one way to run
    RKNN off the board. Takes and gives NHWC like every predictor. Use close() (or `with`) when done."""

    suffix = ".rknn"

    def __init__(self, session: RknnSession, spec: ModelSpec, onnx_ops: Counter | None = None, **kwargs):
        """`session`: a finished build; `spec`: the model's spec; `onnx_ops`: the op counts of the ONNX graph
        it was built from (what convert lists; the .rknn's own graph is the toolkit's business)."""
        self.session, self.onnx_ops, self._hw = session, onnx_ops or Counter(), spec.input_hw
        super().__init__(session.rknn_path, spec=spec, **kwargs)

    def _open(self, model, *, delegate: str, runtime: str) -> None:
        if delegate == "edgetpu":
            raise ModelError("the Edge TPU runs compiled .tflite models, not RKNN")
        self.runtime_name, self.runtime_version, self.delegate = "rknn simulator", self.session.toolkit_version, "cpu"
        self.size_bytes = self.session.rknn_path.stat().st_size
        self.input = TensorInfo("image", (1, *self._hw, 3), np.dtype(np.float32))
        out = self.invoke(np.full(self.input.shape, 128, np.float32))  # a trial run: what the output looks like
        self.output = TensorInfo("output", out.shape, np.dtype(np.float32))

    def invoke(self, tensor: np.ndarray) -> np.ndarray:
        """Run one NHWC input tensor; return the output as NHWC."""
        out = self.session.run(np.ascontiguousarray(tensor.transpose(0, 3, 1, 2)))
        if out.ndim == 3:
            out = out[None]
        return np.ascontiguousarray(out.transpose(0, 2, 3, 1))

    def close(self) -> None:
        """End the simulator."""
        self.session.close()

    def __enter__(self) -> RknnSimulator:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _convert(job: Job, quantize: bool) -> ModelFiles:
    platform = check_choice(job.platform, RKNN_PLATFORMS, "RKNN platform")
    python = rknn_python()
    proto = fold_zero_pads(export(job, channels_first=True))
    onnx_ops = Counter(node.op_type for node in proto.graph.node)
    job.log(f"building for {platform} ({'int8' if quantize else 'fp16'}) with rknn-toolkit2 ({python})")
    calibration = job.calibration_tensors() if quantize else None
    session = RknnSession(python, proto.SerializeToString(), platform, calibration)
    precision = "int8" if quantize else "fp16"
    built = {"platform": platform, "precision": precision, "toolkit": session.toolkit_version}
    spec = replace(job.spec, extra={**job.spec.extra, RKNN_EXTRA: built})
    live = RknnSimulator(session, spec, onnx_ops, name=f"model_{platform}.rknn")
    return ModelFiles(session.rknn_path.read_bytes(), {".spec.json": spec.to_json().encode()}, live=live)


def ops(data: bytes, predictor) -> OpReport:
    """The ONNX graph's op types that the build started from. Not checked for int8: what runs on the NPU, and in
    which precision, is decided by the toolkit (its log says)."""
    return OpReport(ops=Counter(getattr(predictor, "onnx_ops", {})), checked=False)
