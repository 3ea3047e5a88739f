"""What int8 buys on this CPU, op by op and decoder by decoder.

Each case is a small Keras graph converted twice, to float32 and to full-integer int8 (calibrated on random
inputs: kernel speed does not depend on the values), and both are timed with the device runtime's invoke() at
the same thread count, alternating float and int8 run by run so drift hits both alike. The decoder cases are
the whole U-Net at 384x288 with each decoder preset (random weights). Ratio = int8 p50 / float p50.

    python benchmarks/int8_costs.py [--threads 1] [--runs 60] [--only dense,base] [--no-xnnpack]

Writes benchmarks/results/int8_costs.json and .md. Needs TensorFlow (the workstation install).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from edgeseg.host import environment, int8_dot_text  # noqa: E402
from edgeseg.io import atomic_write_text  # noqa: E402
from edgeseg.predictors.tflite import pick_runtime  # noqa: E402
from edgeseg.stats import summarise  # noqa: E402


def op_cases(layers):
    """name -> (input shape without batch, graph builder). Shapes are those of the CamVid model at 384x288."""

    def bn_relu(x):
        return layers.ReLU(6.0)(layers.BatchNormalization()(x))

    return {
        "1x1 conv 160->32 @144x192": ((144, 192, 160), lambda x: layers.Conv2D(32, 1)(x)),
        "1x1 conv 16->96 @144x192": ((144, 192, 16), lambda x: layers.Conv2D(96, 1)(x)),
        "1x1 conv 1856->128 @18x24": ((18, 24, 1856), lambda x: layers.Conv2D(128, 1)(x)),
        "3x3 conv 64->64 @72x96": ((72, 96, 64), lambda x: layers.Conv2D(64, 3, padding="same")(x)),
        "3x3 conv 176->96 @36x48": ((36, 48, 176), lambda x: layers.Conv2D(96, 3, padding="same")(x)),
        "3x3 depthwise 64 @72x96": ((72, 96, 64), lambda x: layers.DepthwiseConv2D(3, padding="same")(x)),
        "3x3 depthwise 160 @144x192": ((144, 192, 160), lambda x: layers.DepthwiseConv2D(3, padding="same")(x)),
        "3x3 stride-2 conv 3->32 @288x384": ((288, 384, 3), lambda x: layers.Conv2D(32, 3, 2, padding="same")(x)),
        "bilinear x2 64ch 72x96->144x192": (
            (72, 96, 64),
            lambda x: layers.UpSampling2D(2, interpolation="bilinear")(x),
        ),
        "bilinear x4 11ch 72x96->288x384": (
            (72, 96, 11),
            lambda x: layers.UpSampling2D(4, interpolation="bilinear")(x),
        ),
        "add + relu6 64ch @72x96": ((72, 96, 64), lambda x: layers.Add()([x, bn_relu(x)])),
    }


def decoder_only(keras, num_classes: int, input_hw: tuple[int, int], decoder: str):
    """The decoder of build_unet as a model of its own, fed the MobileNetV2-1.0 encoder's feature shapes
    (stride 2: 96, 4: 144, 8: 192, 16: 576 channels; stride 32: 1280), so int8 vs float can be timed for the
    decoder alone."""
    from edgeseg.training.model import decode, decoder_for

    dec = decoder_for(decoder)
    h, w = input_hw
    chans = {2: 96, 4: 144, 8: 192, 16: 576, 32: 1280}
    strides = [s for s in (2, 4, 8, 16) if s < dec.encoder_stride][-len(dec.widths) :]  # the skips it uses
    skips = [keras.Input((h // s, w // s, chans[s]), name=f"f{k}_stride{s}") for k, s in enumerate(strides)]
    top = keras.Input((h // dec.encoder_stride, w // dec.encoder_stride, chans[dec.encoder_stride]), name="f9_top")
    return keras.Model(skips + [top], decode(top, skips, dec, num_classes))


def to_tflite(model, int8: bool) -> bytes:
    from edgeseg.converters.tflite import int8_settings, keras_converter

    conv = keras_converter(model)
    if int8:
        rng = np.random.default_rng(0)
        shapes = [(1, *t.shape[1:]) for t in model.inputs]
        high = 255 if len(shapes) == 1 else 6  # an image, or the decoder's ReLU6 features

        def representative():  # one list per sample, in the model's input order
            for _ in range(8):
                yield [rng.uniform(0, high, s).astype(np.float32) for s in shapes]

        int8_settings(conv, representative, "int8")
    return conv.convert()


def time_pair(runtime, bufs: dict, threads: int, runs: int, warmup: int, xnnpack: bool = True) -> dict:
    extra = {}
    if not xnnpack:  # TFLite's own kernels (ruy and the reference ops), as a runtime without XNNPACK runs them
        from ai_edge_litert.interpreter import OpResolverType

        extra["experimental_op_resolver_type"] = OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES
    interps = {}
    for k, buf in bufs.items():
        it = runtime.interpreter_cls(model_content=buf, num_threads=threads, **extra)
        it.allocate_tensors()
        for d in it.get_input_details():
            it.set_tensor(d["index"], np.zeros(d["shape"], d["dtype"]))
        for _ in range(warmup):
            it.invoke()
        interps[k] = it
    times = {k: [] for k in interps}
    for _ in range(runs):
        for k, it in interps.items():
            t = time.perf_counter()
            it.invoke()
            times[k].append((time.perf_counter() - t) * 1e3)
    return {k: summarise(v) for k, v in times.items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--runs", type=int, default=60)
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--only", default="", help="comma-separated substrings of the case names to run")
    ap.add_argument("--no-xnnpack", action="store_true", help="time TFLite's built-in kernels instead (litert only)")
    ap.add_argument(
        "--out",
        type=Path,
        default=None,
        help="results path without suffix (default "
        "benchmarks/results/int8_costs, or int8_costs_builtin with --no-xnnpack)",
    )
    args = ap.parse_args()
    if args.out is None:
        args.out = ROOT / "benchmarks" / "results" / ("int8_costs_builtin" if args.no_xnnpack else "int8_costs")

    import keras
    from keras import layers

    from edgeseg.training.model import DECODERS, build_unet

    cases = {f"op: {k}": v for k, v in op_cases(layers).items()}
    for name in ("base", "dense"):
        cases[f"U-Net 384x288, {name} decoder"] = (
            None,
            lambda _, name=name: build_unet(11, (288, 384), decoder=name, weights=None),
        )
    # The shipped nano model (256x192) whole, and its decoder alone on the encoder's features
    cases["U-Net 256x192, nano decoder"] = (None, lambda _: build_unet(11, (192, 256), decoder="nano", weights=None))
    cases["nano decoder alone, 256x192 features"] = (None, lambda _: decoder_only(keras, 11, (192, 256), "nano"))
    only = [s for s in args.only.split(",") if s]
    cases = {k: v for k, v in cases.items() if not only or any(s in k for s in only)}
    runtime = pick_runtime("litert" if args.no_xnnpack else "auto")
    rows = []
    for i, (name, (shape, build)) in enumerate(cases.items(), 1):
        print(f"[{i}/{len(cases)}] {name}: converting and timing", file=sys.stderr, flush=True)
        if shape is None:
            model = build(None)
        else:
            inp = keras.Input(shape)
            model = keras.Model(inp, build(inp))
        bufs = {"float": to_tflite(model, False), "int8": to_tflite(model, True)}
        t = time_pair(runtime, bufs, args.threads, args.runs, args.warmup, xnnpack=not args.no_xnnpack)
        rows.append(
            {
                "case": name,
                "float": t["float"],
                "int8": t["int8"],
                "ratio_p50": t["int8"]["p50_ms"] / t["float"]["p50_ms"],
            }
        )
        print(
            f"{name:45s} float p50 {t['float']['p50_ms']:7.3f} ms  int8 p50 {t['int8']['p50_ms']:7.3f} ms  "
            f"int8/float {rows[-1]['ratio_p50']:.2f}",
            flush=True,
        )

    env = environment() | {
        "runtime": f"{runtime.name} {runtime.version}" + (", no XNNPACK" if args.no_xnnpack else ", XNNPACK"),
        "threads": args.threads,
    }
    result = {
        "environment": env,
        "runs": args.runs,
        "warmup": args.warmup,
        "cases": rows,
        "decoders": {k: vars(v) for k, v in DECODERS.items()},
    }
    atomic_write_text(args.out.with_suffix(".json"), json.dumps(result, indent=2) + "\n")
    lines = [
        f"{env.get('cpu')} ({env.get('cores')} cores, {int8_dot_text(env)}), {env['runtime']}, "
        f"{args.threads} thread(s), {args.runs} alternating runs after {args.warmup} warm-up.",
        "",
        "| case | float p50 (ms) | float p90 | int8 p50 (ms) | int8 p90 | int8 / float |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in rows:
        lines.append(
            f"| {r['case']} | {r['float']['p50_ms']:.3f} | {r['float']['p90_ms']:.3f} | "
            f"{r['int8']['p50_ms']:.3f} | {r['int8']['p90_ms']:.3f} | {r['ratio_p50']:.2f} |"
        )
    atomic_write_text(args.out.with_suffix(".md"), "\n".join(lines) + "\n")
    print(f"wrote {args.out.with_suffix('.json')} and {args.out.with_suffix('.md')}")


if __name__ == "__main__":
    main()
