"""Why one Keras backend trains MobileNets slower than another on a CPU: a 3x3 depthwise convolution and a 1x1
convolution (the two layers of every MobileNetV2 block), timed through keras.ops on each backend, forward and
forward+backward, in a fresh process per backend.

    python benchmarks/depthwise_backends.py [--python-jax PATH] [--python-torch PATH]

The tensor is 8x48x64x144 (a batch of nano's stride-4 feature); GMAC/s counts the layer's multiply-accumulates
(x3 for forward+backward). Each figure is the median of 10 after 2 warm-ups, the op compiled where the backend
compiles (jax.jit; tf.function; torch eager). Results: benchmarks/results/depthwise_backends.{json,md}.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from train_throughput import BACKENDS, find_python  # noqa: E402

CHILD = r"""
import json, time
import numpy as np
import keras
from keras import ops
backend = keras.backend.backend()
n, h, w, c = 8, 48, 64, 144
rng = np.random.default_rng(0)
x = ops.convert_to_tensor(rng.standard_normal((n, h, w, c), dtype=np.float32))
dw = ops.convert_to_tensor(rng.standard_normal((3, 3, c, 1), dtype=np.float32))
pw = ops.convert_to_tensor(rng.standard_normal((1, 1, c, c), dtype=np.float32))
layers = {"depthwise 3x3": (lambda x, k: ops.depthwise_conv(x, k, padding="same"), dw, n * h * w * c * 9),
          "conv 1x1": (lambda x, k: ops.conv(x, k, padding="same"), pw, n * h * w * c * c)}

def compiled(f, grad):
    if backend == "jax":
        import jax
        g = jax.jit(jax.grad(lambda x, k: f(x, k).sum(), argnums=(0, 1))) if grad else jax.jit(f)
        return lambda x, k: jax.block_until_ready(g(x, k))
    if backend == "tensorflow":
        import tensorflow as tf
        def step(x, k):
            with tf.GradientTape() as tape:
                tape.watch([x, k]); y = tf.reduce_sum(f(x, k))
            return tape.gradient(y, [x, k])
        g = tf.function(step if grad else f)
        return lambda x, k: [t.numpy() for t in tf.nest.flatten(g(x, k))]
    import torch
    def run(x, k):
        if not grad:
            with torch.no_grad():
                return f(x, k).cpu()
        x = x.detach().requires_grad_(); k = k.detach().requires_grad_()
        f(x, k).sum().backward()
        return x.grad, k.grad
    return run

out = {}
for name, (f, k, macs) in layers.items():
    for grad in (False, True):
        g = compiled(f, grad)
        for _ in range(2):
            g(x, k)
        ts = []
        for _ in range(10):
            t0 = time.perf_counter(); g(x, k); ts.append(time.perf_counter() - t0)
        t = sorted(ts)[5]
        key = f"{name}, {'forward+backward' if grad else 'forward'}"
        out[key] = {"ms": 1e3 * t, "gmac_s": (3 if grad else 1) * macs / t / 1e9}
print(json.dumps({"backend": backend, "results": out}))
"""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--python-jax")
    ap.add_argument("--python-torch")
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "depthwise_backends")
    args = ap.parse_args()
    from edgeseg.host import environment
    from edgeseg.io import atomic_write_text

    report = {"environment": environment(), "command": "python benchmarks/depthwise_backends.py", "backends": {}}
    for b in BACKENDS:
        py = find_python(b, getattr(args, f"python_{b}", None))
        if py is None:
            print(f"{b}: skipped, no Python with it")
            continue
        env = {**os.environ, "KERAS_BACKEND": b, "TF_CPP_MIN_LOG_LEVEL": "2"}
        proc = subprocess.run([py, "-c", CHILD], capture_output=True, text=True, env=env, cwd=ROOT)
        if proc.returncode != 0:
            sys.exit(f"{b} failed: {proc.stderr.strip().splitlines()[-1:]}")
        report["backends"][b] = json.loads(proc.stdout.strip().splitlines()[-1])["results"]
        print(b, json.dumps(report["backends"][b]))
    keys = list(next(iter(report["backends"].values())))
    env = report["environment"]
    lines = [
        f"# One MobileNetV2 block's two layers per Keras backend, {env['cpu']} ({env['cores']} cores)",
        "",
        f"`{report['command']}`: 8x48x64x144 float32, median of 10; ms (GMAC/s)",
        "",
        "| layer | " + " | ".join(report["backends"]) + " |",
        "| --- | " + " | ".join("---:" for _ in report["backends"]) + " |",
    ]
    for k in keys:
        cells = [f"{v[k]['ms']:.2f} ({v[k]['gmac_s']:.1f})" for v in report["backends"].values()]
        lines.append(f"| {k} | " + " | ".join(cells) + " |")
    atomic_write_text(args.out.with_suffix(".json"), json.dumps(report, indent=2) + "\n")
    atomic_write_text(args.out.with_suffix(".md"), "\n".join(lines) + "\n")
    print(f"wrote {args.out.with_suffix('.json')} and {args.out.with_suffix('.md')}")


if __name__ == "__main__":
    main()
