"""edgeseg train."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from edgeseg.cli.common import (
    BackboneChoice,
    DecoderChoice,
    FormatChoice,
    StrategyChoice,
    handles_errors,
    parse_size,
    quiet_tensorflow,
    writable,
)


@handles_errors
def train(
    data: Annotated[Path, typer.Option(exists=True, file_okay=False, help="Dataset folder (any layout).")],
    out: Annotated[Path, typer.Option(help="Run folder: model.keras, spec.json, history.csv.")] = Path("runs/train"),
    format: Annotated[FormatChoice, typer.Option(help="Dataset layout.")] = FormatChoice.auto,
    val_data: Annotated[
        Path | None,
        typer.Option(exists=True, file_okay=False, help="Separate validation dataset (default: the val split)."),
    ] = None,
    size: Annotated[str, typer.Option(help="Model input WIDTHxHEIGHT (multiples of 32).")] = "224x224",
    backbone: Annotated[BackboneChoice, typer.Option(help="The encoder (ImageNet-shaped MobileNet).")] = (
        BackboneChoice.mobilenet_v2
    ),
    alpha: Annotated[float, typer.Option(min=0.1, max=4.0, help="Backbone width multiplier.")] = 1.0,
    decoder: Annotated[
        DecoderChoice,
        typer.Option(
            help="tiny, small, base, large (separable, 4 stages), dense (the int8 decoder) or nano "
            "(the Pi 4 model's: dense blocks, stride 8, narrow)."
        ),
    ] = DecoderChoice.base,
    weights: Annotated[str | None, typer.Option(help="Backbone weights: none, imagenet or a .weights.h5 file.")] = None,
    epochs: Annotated[int, typer.Option(min=1, max=100_000)] = 30,
    batch_size: Annotated[int, typer.Option(min=1, max=4096)] = 8,
    lr: Annotated[
        float, typer.Option(min=1e-8, max=10.0, help="Peak learning rate (cosine decay after one warm-up epoch).")
    ] = 2e-3,
    class_weights: Annotated[str, typer.Option(help="none, median (median-frequency balancing) or a list.")] = "none",
    augment: Annotated[bool, typer.Option("--augment/--no-augment", help="Flip, scale/crop, colour jitter.")] = True,
    seed: Annotated[int, typer.Option()] = 0,
    resume: Annotated[bool, typer.Option("--resume", help="Continue an interrupted run in --out.")] = False,
    strategy: Annotated[
        StrategyChoice,
        typer.Option(
            help="auto (mirrored over several GPUs, else one device), none, mirrored, or multiworker (reads "
            "TF_CONFIG; every worker runs the same command with the same --out). --batch-size is per replica."
        ),
    ] = StrategyChoice.auto,
    mixed_precision: Annotated[
        bool | None,
        typer.Option(
            "--mixed-precision/--no-mixed-precision",
            help="mixed_float16 with float32 logits and loss (default: on for GPUs of compute capability >= 7.0).",
        ),
    ] = None,
    jit_compile: Annotated[
        bool, typer.Option("--jit-compile/--no-jit-compile", help="XLA (measured slower on CPUs here).")
    ] = False,
) -> None:
    """Train a MobileNet U-Net. Keeps the best checkpoint by validation mIoU; --resume continues a run."""
    writable(folders=(out,))
    quiet_tensorflow()
    from dataclasses import replace

    from edgeseg.training.config import CONFIG_FILE, Augment, TrainConfig  # no TensorFlow: checked first

    where = {"strategy": strategy.value, "mixed_precision": mixed_precision, "jit_compile": jit_compile}
    if resume and (out / CONFIG_FILE).is_file():
        cfg = replace(TrainConfig.load(out), **where)  # what it learns is saved; where it runs is this command's
        typer.echo(f"resuming {out} with its saved settings")
    else:
        cfg = TrainConfig(
            data=str(data),
            out=str(out),
            format=format.value,
            input_hw=parse_size(size, "--size"),
            backbone=backbone.value,
            alpha=alpha,
            decoder=decoder.value,
            weights=weights,
            epochs=epochs,
            batch_size=batch_size,
            lr=lr,
            class_weights=class_weights,
            seed=seed,
            augment=Augment() if augment else Augment.none(),
            val_data=str(val_data) if val_data else None,
            **where,
        )
    from edgeseg.training.train import train as run_training

    result = run_training(cfg, resume=resume, log=typer.echo)
    typer.echo(f"best val mIoU {result['best_val_miou']:.4f}")
    if result["role"] in ("single", "chief"):
        typer.echo(f"wrote {result['model']}, {result['spec']}, {result['history']}")
    else:
        typer.echo(f"{result['role']} done: the chief writes {result['model']}")
