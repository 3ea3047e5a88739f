"""edgeseg doctor, synth, pack, demo and info."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from edgeseg.cli.common import (
    FormatChoice,
    JsonOpt,
    handles_errors,
    one_model,
    parse_size,
    progress,
    writable,
    write_json,
)
from edgeseg.limits import MAX_IMAGES

DEFAULT_QUALITY = 85  # edgeseg.packing.DEFAULT_QUALITY, which the CLI does not import for its --help


@handles_errors
def doctor(
    json_out: JsonOpt = None,
) -> None:
    """Check this machine: runtimes, XNNPACK, Edge TPU, cameras, OpenCV build, Picamera2."""
    from edgeseg.camera.checks import camera_checks
    from edgeseg.doctor import as_dicts, run_checks
    from edgeseg.quiet import libraries_quiet
    from edgeseg.training.checks import gpu_checks

    writable(json_out)
    with libraries_quiet():  # TensorFlow's load lines (the GPU check) and LiteRT's at the runtime checks
        checks = run_checks(gpus=gpu_checks, cameras=camera_checks)
    colours = {"OK": typer.colors.GREEN, "WARN": typer.colors.YELLOW, "FAIL": typer.colors.RED, "INFO": None}
    width = max(len(c.name) for c in checks)
    for c in checks:
        typer.secho(f"{c.status:<5}", fg=colours[c.status], nl=False)
        typer.echo(
            f"{c.name:<{width}}  {c.detail}"
            + (f"\n      {'':<{width}}  -> {c.hint}" if c.hint and c.status != "OK" else "")
        )
    if json_out:
        write_json(json_out, {"checks": as_dicts(checks)})
    if any(c.status == "FAIL" for c in checks):
        raise typer.Exit(1)


@handles_errors
def synth(
    out: Annotated[Path, typer.Argument(help="Folder to write the synthetic dataset into (generic layout).")],
    count: Annotated[int, typer.Option(min=2, max=MAX_IMAGES, help="Number of scenes.")] = 300,
    size: Annotated[str, typer.Option(metavar="WxH", help="Scene size WIDTHxHEIGHT.")] = "160x120",
    seed: Annotated[int, typer.Option(help="Seed: the same seed writes the same scenes.")] = 0,
    video: Annotated[Path | None, typer.Option(help="Also write a synthetic video (.mp4) here.")] = None,
    frames: Annotated[int, typer.Option(min=1, max=MAX_IMAGES, help="Frames in the video.")] = 150,
    overwrite: Annotated[
        bool, typer.Option("--overwrite", help="Write into a folder that already holds a dataset.")
    ] = False,
) -> None:
    """Write the built-in synthetic dataset (shapes on textured, noisy backgrounds) and optionally a video."""
    from edgeseg import synthetic
    from edgeseg.errors import EdgesegError

    hw = parse_size(size)
    writable(video, folders=(out,))
    held = [p.name for p in (out / "classes.json", out / "images", out / "masks") if p.exists()]
    if held and not overwrite:
        raise EdgesegError(f"{out} already holds a dataset ({', '.join(held)}): give another folder, or --overwrite")
    synthetic.write_dataset(out, count, hw, seed, progress=progress("scenes"))
    typer.echo(f"wrote {count} synthetic scenes to {out} (images/, masks/, classes.json)")
    if video:
        synthetic.write_video(video, frames, hw, seed=seed + 1)
        typer.echo(f"wrote {video} ({frames} frames)")


@handles_errors
def pack(
    data: Annotated[Path, typer.Argument(exists=True, help="Dataset: a folder in any layout, or a COCO JSON.")],
    out: Annotated[Path, typer.Option(help="The pack file to write (.segpack).")],
    size: Annotated[
        str | None,
        typer.Option(metavar="WxH", help="Resize every frame to WIDTHxHEIGHT (default: each frame's own size)."),
    ] = None,
    quality: Annotated[
        int, typer.Option(min=1, max=100, help="WebP quality of the images (85: CamVid at 480x360 packs to 17.5 MB).")
    ] = DEFAULT_QUALITY,
    lossless: Annotated[bool, typer.Option("--lossless", help="Store the images as PNG instead of WebP.")] = False,
    format: Annotated[FormatChoice, typer.Option(help="Dataset layout.")] = FormatChoice.auto,
    json_out: JsonOpt = None,
) -> None:
    """Pack a dataset into one checksummed file (frames, masks, classes, splits) for train --data FILE."""
    from edgeseg.packing import pack_dataset

    writable(out, json_out)
    result = pack_dataset(
        data, out, parse_size(size, "--size"), None if lossless else quality, format.value, progress("frames")
    )
    splits = ", ".join(f"{n} {s}" for s, n in result.splits.items())
    typer.echo(f"wrote {out}: {result.bytes / 1e6:.1f} MB, {splits} frames, images {result.codec}")
    typer.echo(f"sequences (for --hold-out): {', '.join(f'{k} ({n})' for k, n in result.sequences.items())}")
    if json_out:
        write_json(json_out, {"pack": str(out), "bytes": result.bytes, "splits": result.splits,
                              "sequences": result.sequences, "codec": result.codec})  # fmt: skip


@handles_errors
def demo(
    out: Annotated[Path, typer.Option(help="Folder for everything the demo writes.")] = Path("runs/demo"),
    epochs: Annotated[int, typer.Option(min=1, max=100_000, help="Training epochs.")] = 12,
    count: Annotated[int, typer.Option(min=20, max=MAX_IMAGES, help="Synthetic scenes.")] = 400,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace an earlier demo in --out.")] = False,
) -> None:
    """The whole pipeline on built-in synthetic data: train, convert int8, eval float vs int8, bench, run."""
    from edgeseg.demo import run_demo

    writable(folders=(out,))

    run_demo(out, epochs=epochs, count=count, overwrite=overwrite, echo=typer.echo)


@handles_errors
def info(
    model: Annotated[
        str | None,
        typer.Argument(
            help="A .tflite (any segmentation model, ours or not), or a shipped model: nano or small (default: small)."
        ),
    ] = None,
    json_out: JsonOpt = None,
) -> None:
    """What a model is and costs: spec, input/output, op histogram, GMACs and params per frame, int8 share,
    Edge TPU verdict. Reads the file only; runs nothing."""
    from edgeseg.info import format_info, model_info

    writable(json_out)
    d = model_info(one_model(model, None, default=True))
    for line in format_info(d):
        typer.echo(line)
    if json_out:
        write_json(json_out, d)
