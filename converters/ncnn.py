"""Keras -> ncnn (the `ncnn` extra, and pnnx's converter): the .param graph, the .bin weights and, since ncnn's
format has no metadata, the spec beside them as `<stem>.spec.json`. ncnn is Tencent's runtime for Arm boards
(the Raspberry Pi's favourite in Ultralytics' figures). Two targets: float32, and fp16 (weights stored as
float16: half the size; ncnn computes in fp16 where the CPU has it, as the Pi 5 does, whatever the file holds).

The route is the ONNX export with NCHW input and output (ncnn's own layout) handed to pnnx, Tencent's
converter. Before that, a zero Pad in front of a convolution (Keras' `ZeroPadding2D` before MobileNetV2's strided
convolutions) is folded into the convolution's own padding by onnxoptimizer: pnnx leaves such a Pad unconverted,
and ncnn then refuses the model.

No int8: ncnn quantises with ncnn2table and ncnn2int8, C++ tools that its pip wheel does not carry (build ncnn
from source for them). pnnx's own wheel declares PyTorch as a dependency that its converter binary does not
need: `pip install --no-deps pnnx` brings the converter alone."""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
import tempfile
from collections import Counter
from dataclasses import replace
from pathlib import Path

from edgeseg.converters.files import ModelFiles
from edgeseg.converters.job import Job
from edgeseg.converters.onnx import export, fold_zero_pads
from edgeseg.converters.verify import OpReport
from edgeseg.errors import EdgesegError, ModelError
from edgeseg.predictors.ncnn import WEIGHTS_BYTES

PNNX_SECONDS = 600


def build_float32(job: Job) -> ModelFiles:
    """The model as ncnn's .param and .bin (float32 weights), its spec beside them."""
    return _convert(job, fp16=False)


def build_fp16(job: Job) -> ModelFiles:
    """The same with float16 weights."""
    return _convert(job, fp16=True)


def pnnx_binary() -> Path:
    """pnnx's converter: the binary inside the pnnx package (whose Python side needs PyTorch; the binary does
    not), or a `pnnx` on PATH. EdgesegError saying how to install it otherwise."""
    spec = importlib.util.find_spec("pnnx")
    for folder in (spec.submodule_search_locations or []) if spec else []:
        exe = Path(folder) / "pnnx"
        if exe.is_file():
            return exe
    on_path = shutil.which("pnnx")
    if on_path:
        return Path(on_path)
    raise EdgesegError("pnnx (ncnn's converter) is not installed: pip install --no-deps pnnx")


def _convert(job: Job, fp16: bool) -> ModelFiles:
    import onnx

    exe = pnnx_binary()
    proto = fold_zero_pads(export(job, channels_first=True))
    h, w = job.spec.input_hw
    with tempfile.TemporaryDirectory(prefix="edgeseg-ncnn-") as tmp:
        onnx.save(proto, Path(tmp) / "model.onnx")
        args = [str(exe), "model.onnx", f"inputshape=[1,3,{h},{w}]", f"fp16={int(fp16)}", "device=cpu"]
        try:
            proc = subprocess.run(args, cwd=tmp, capture_output=True, text=True, timeout=PNNX_SECONDS)
        except subprocess.TimeoutExpired:
            raise ModelError(f"pnnx did not finish in {PNNX_SECONDS} s") from None
        log = proc.stdout + proc.stderr
        left = sorted({line.split()[1] for line in log.splitlines() if line.startswith(("todo ", "ignore "))})
        param, weights = Path(tmp) / "model.ncnn.param", Path(tmp) / "model.ncnn.bin"
        if proc.returncode != 0 or not param.is_file() or not weights.is_file():
            tail = " ".join(log.strip().splitlines()[-2:])[:300]
            raise ModelError(f"pnnx failed (exit {proc.returncode}): {tail}")
        if left:
            raise ModelError(f"pnnx could not convert these ops for ncnn: {', '.join(left)}")
        data = weights.read_bytes()
        spec = replace(job.spec, extra={**job.spec.extra, WEIGHTS_BYTES: len(data)})
        return ModelFiles(param.read_bytes(), {".bin": data, ".spec.json": spec.to_json().encode()})


def ops(data: bytes, predictor) -> OpReport:
    """The .param's layer types and counts (its Input and its blob splits left out). Not checked for int8."""
    lines = data.decode("utf-8", errors="replace").splitlines()[2:]  # the magic, then the layer and blob counts
    kinds = Counter(line.split()[0] for line in lines if line.strip())
    for plumbing in ("Input", "Split"):
        kinds.pop(plumbing, None)
    return OpReport(ops=kinds, checked=False)
