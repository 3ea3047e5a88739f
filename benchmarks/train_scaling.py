"""Training throughput (images/s) with 1 and 2 replicas on this machine, on TensorFlow: MirroredStrategy over
logical CPU devices, the way `edgeseg train --strategy mirrored` runs, each configuration in a fresh process.

    python benchmarks/train_scaling.py [--replicas 1,2] [--size 256x192] [--batch-size 8] [--epochs 3]

The model is the nano recipe's network (MobileNetV2-1.0 encoder cut at stride 16, nano decoder) with random
weights, on synthetic scenes; --batch-size is per replica, as in `edgeseg train`. The first epoch (tracing) is
not timed; images/s is the median of the later epochs. Results: benchmarks/results/train_scaling.{json,md}.
On a 2-core CPU two replicas share the same two cores, so expect no gain there: the point is that the
strategy runs and what it costs. GPUs (one, with and without mixed precision) need a machine that has them.
Throughput per backend (TensorFlow, JAX, PyTorch) is benchmarks/train_throughput.py.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

CHILD = r"""
import json, sys, time
import numpy as np
import tensorflow as tf
replicas, h, w, batch, epochs, data = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), \
    int(sys.argv[5]), sys.argv[6]
cpu = tf.config.list_physical_devices("CPU")[0]
if replicas > 1:
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * replicas)
import keras
from edgeseg.training.data import Augment, TrainingBatches, load_all
from edgeseg.training.backends.tf import TensorFlowBackend
from edgeseg.training.train import TrainConfig, compiled_model
from edgeseg.datasets import open_dataset

dist = TensorFlowBackend().distribution("mirrored" if replicas > 1 else "none")
ds = open_dataset(data, "train")
images, masks = load_all(ds)
cfg = TrainConfig(data=data, out="-", input_hw=(h, w), decoder="nano", batch_size=batch, epochs=epochs)
global_batch = batch * dist.replicas
pipeline = TrainingBatches(images, masks, (h, w), ds.num_classes, global_batch, Augment(), None, 0, 0)
steps = len(pipeline)
with dist.scope():
    model = compiled_model(cfg, ds.num_classes, steps)
times = []

class Clock(keras.callbacks.Callback):
    def on_epoch_begin(self, epoch, logs=None):
        self.t0 = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        times.append(time.perf_counter() - self.t0)

model.fit(pipeline, epochs=epochs, callbacks=[Clock()], verbose=0)
later = sorted(times[1:])
median = later[len(later) // 2]
print(json.dumps({"replicas": dist.replicas, "strategy": dist.name, "global_batch": global_batch,
                  "steps_per_epoch": steps, "epoch_s": times, "images_per_s": global_batch * steps / median}))
"""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--replicas", default="1,2")
    ap.add_argument("--size", default="256x192", help="input WIDTHxHEIGHT")
    ap.add_argument("--batch-size", type=int, default=8, help="per replica")
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--scenes", type=int, default=96)
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "train_scaling")
    args = ap.parse_args()
    from edgeseg import synthetic
    from edgeseg.host import environment
    from edgeseg.io import atomic_write_text

    w, h = (int(v) for v in args.size.split("x"))
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        data = synthetic.write_dataset(Path(tmp) / "data", count=args.scenes, hw=(h, w), seed=0)
        for r in (int(v) for v in args.replicas.split(",")):
            print(f"{r} replica(s): training {args.epochs} epochs", flush=True)
            child = [sys.executable, "-c", CHILD, r, h, w, args.batch_size, args.epochs, data]
            env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
            proc = subprocess.run(list(map(str, child)), cwd=ROOT, capture_output=True, text=True, env=env)
            if proc.returncode != 0:
                sys.exit(f"{r} replica(s) failed:\n{proc.stderr[-3000:]}")
            res = json.loads(proc.stdout.strip().splitlines()[-1])
            print(f"  {res['images_per_s']:.1f} images/s (global batch {res['global_batch']})", flush=True)
            results.append(res)
    base = results[0]["images_per_s"]
    for r in results:
        r["speedup"] = r["images_per_s"] / base
    report = {
        "environment": environment(),
        "size_wh": [w, h],
        "batch_per_replica": args.batch_size,
        "model": "MobileNetV2-1.0 (stride-16 cut) + nano decoder, random weights",
        "results": results,
        "command": "python benchmarks/train_scaling.py " + " ".join(sys.argv[1:]),
    }
    env = report["environment"]
    lines = [
        f"# Training throughput, {env['cpu']} ({env['cores']} cores), {w}x{h}, batch {args.batch_size} per replica",
        "",
        f"`{report['command'].strip()}`",
        "",
        "| replicas | strategy | global batch | images/s | vs 1 replica |",
        "| ---: | --- | ---: | ---: | ---: |",
    ]
    lines += [
        f"| {r['replicas']} | {r['strategy']} | {r['global_batch']} | {r['images_per_s']:.1f} | {r['speedup']:.2f} |"
        for r in results
    ]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(args.out.with_suffix(".json"), json.dumps(report, indent=2) + "\n")
    atomic_write_text(args.out.with_suffix(".md"), "\n".join(lines) + "\n")
    print(f"wrote {args.out.with_suffix('.json')} and {args.out.with_suffix('.md')}")


if __name__ == "__main__":
    main()
