"""The RKNN side of `edgeseg convert --to rknn`, run as a script by the Python that has rknn-toolkit2.

rknn-toolkit2 pins numpy <= 1.26.4, protobuf <= 4.25.4 and PyTorch <= 2.4, which TensorFlow 2.21 cannot share
an environment with, so it lives in an environment of its own and edgeseg talks to it through this script. It
imports nothing of edgeseg (that environment does not have it): only rknn.api, numpy and the standard library.

    python rknn_worker.py JOB.json

JOB.json: {"onnx": path, "out": path, "platform": "rk3588", "quantize": bool, "dataset": path or null}. The
script loads the (NCHW) ONNX model, builds it for the platform (int8 from the dataset's calibration tensors,
else fp16), writes the .rknn to "out", starts RKNN's simulator on the build and then answers on stdout: one
JSON line {"ready": true, "output_shape": [...]} (or {"error": "..."}), then, for each request on stdin, the
output of one input. A request and an answer are one frame each: 4 bytes of length (big-endian), then a JSON
header {"dtype", "shape"} up to a newline, then the raw array bytes (NCHW float32 in, the output as the
simulator gives it out). A frame of length 0 ends the session. The toolkit's own prints go to stderr.
"""

from __future__ import annotations

import json
import os
import struct
import sys


def read_frame(stream):
    """One frame's payload, or None at the end (length 0 or end of stream)."""
    head = stream.read(4)
    if len(head) < 4:
        return None
    (n,) = struct.unpack(">I", head)
    if n == 0:
        return None
    data = stream.read(n)
    if len(data) < n:
        return None
    return data


def write_frame(stream, payload: bytes) -> None:
    """One frame: its length, then the payload."""
    stream.write(struct.pack(">I", len(payload)) + payload)
    stream.flush()


def pack_array(a) -> bytes:
    """An array as a frame's payload: the JSON header line, then its bytes (C order)."""
    import numpy as np

    a = np.ascontiguousarray(a)
    return json.dumps({"dtype": a.dtype.str, "shape": list(a.shape)}).encode() + b"\n" + a.tobytes()


def unpack_array(payload: bytes):
    """A frame's payload as an array (the inverse of pack_array)."""
    import numpy as np

    head, _, body = payload.partition(b"\n")
    meta = json.loads(head)
    return np.frombuffer(body, dtype=np.dtype(meta["dtype"])).reshape(meta["shape"])


def main() -> int:
    """Build, export and start the simulator as JOB.json says, then answer requests until the end frame."""
    # the answers go to the real stdout; everything the toolkit prints (it prints to stdout too) goes to stderr
    answers = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    requests = sys.stdin.buffer

    def say(obj) -> None:
        answers.write((json.dumps(obj) + "\n").encode())
        answers.flush()

    # this script's folder holds edgeseg's own rknn.py, which would hide the toolkit's `rknn` package
    here = os.path.dirname(os.path.abspath(__file__))
    sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != here]
    try:
        job = json.loads(open(sys.argv[1], encoding="utf-8").read())
        from rknn.api import RKNN
    except Exception as e:  # noqa: BLE001 (everything is reported as one line to the parent)
        say({"error": f"{type(e).__name__}: {e}"})
        return 1

    rknn = RKNN(verbose=False)
    steps = (
        (
            "config",
            lambda: rknn.config(mean_values=[[0, 0, 0]], std_values=[[1, 1, 1]], target_platform=job["platform"]),
        ),
        ("load_onnx", lambda: rknn.load_onnx(model=job["onnx"])),
        ("build", lambda: rknn.build(do_quantization=bool(job["quantize"]), dataset=job.get("dataset"))),
        ("export_rknn", lambda: rknn.export_rknn(job["out"])),
        ("init_runtime (simulator)", lambda: rknn.init_runtime()),
    )
    for name, step in steps:
        try:
            ret = step()
        except Exception as e:  # noqa: BLE001 (the toolkit raises bare exceptions with long logs)
            lines = [line for line in str(e).strip().splitlines() if line.strip()]
            say({"error": f"{name} failed: {lines[-1][:300] if lines else type(e).__name__}"})
            return 1
        if ret not in (None, 0):
            say({"error": f"{name} failed (returned {ret}); its log is above"})
            return 1
    try:
        from importlib.metadata import version

        toolkit = version("rknn-toolkit2")
    except Exception:  # noqa: BLE001 (a toolkit installed some other way)
        toolkit = "unknown"
    say({"ready": True, "version": toolkit})
    while True:
        payload = read_frame(requests)
        if payload is None:
            break
        try:
            x = unpack_array(payload)
            out = rknn.inference(inputs=[x], data_format="nchw")[0]
            write_frame(answers, pack_array(out))
        except Exception as e:  # noqa: BLE001
            write_frame(answers, json.dumps({"error": f"{type(e).__name__}: {str(e)[:300]}"}).encode() + b"\n")
    rknn.release()
    return 0


if __name__ == "__main__":
    sys.exit(main())
