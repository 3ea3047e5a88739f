"""edgeseg bench and eval: the device path (never TensorFlow for a .tflite); run is in run.py."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from edgeseg.cli.common import (
    MODEL_HELP,
    DelegateChoice,
    DelegateOpt,
    FormatChoice,
    JsonOpt,
    LabelsOpt,
    RuntimeChoice,
    RuntimeOpt,
    SplitChoice,
    ThreadsOpt,
    default_model,
    fmt,
    handles_errors,
    one_model,
    parse_size,
    progress,
    quiet_tensorflow,
    writable,
    write_json,
)
from edgeseg.errors import EdgesegError
from edgeseg.limits import MAX_IMAGES, MAX_RUNS


def _thread_list(text: str | None) -> list[int | None]:
    if not text:
        return [None]
    try:
        vals = [int(v) for v in text.split(",")]  # an empty item (1,,2) is an int() error: refused
        if not vals or min(vals) < 1:
            raise ValueError
    except ValueError:
        raise EdgesegError(f"--threads: expected N or a list like 1,2,4, got {text!r}") from None
    from edgeseg.limits import check_threads

    return list(dict.fromkeys(check_threads(v) for v in vals))  # 1,1 is one setting, not two rows of it


@handles_errors
def bench(
    models: Annotated[
        list[str] | None,
        typer.Argument(
            help="One or more models (.tflite, .onnx, OpenVINO .xml, ncnn .param, .keras), or shipped models by "
            "name (nano, small), side by side in one interleaved run (default: small)."
        ),
    ] = None,
    model_opt: Annotated[
        list[str] | None,
        typer.Option(
            "--model",
            hidden=True,  # kept for scripts that use it: the MODELS argument is the one way the help shows
            help="A model to add, by path or shipped name (nano, small); repeat for more.",
        ),
    ] = None,
    threads: Annotated[
        str | None, typer.Option(metavar="N[,N...]", help="Interpreter threads: N, or a sweep like 1,2,4.")
    ] = None,
    runs: Annotated[
        int, typer.Option(min=1, max=MAX_RUNS, help="Timed runs per model (each of invoke-only and end-to-end).")
    ] = 100,
    warmup: Annotated[int, typer.Option(min=0, max=MAX_RUNS, help="Untimed runs first.")] = 10,
    rounds: Annotated[int, typer.Option(min=1, max=10_000, help="Interleave the models in this many rounds.")] = 5,
    frame_size: Annotated[
        str, typer.Option(metavar="WxH", help="Frame WIDTHxHEIGHT for the end-to-end timing.")
    ] = "640x480",
    data: Annotated[
        Path | None, typer.Option(exists=True, help="Also score mIoU on this dataset (a folder, or a COCO JSON).")
    ] = None,
    split: Annotated[SplitChoice, typer.Option(help="Split of --data.")] = SplitChoice.val,
    format: Annotated[FormatChoice, typer.Option(help="Layout of --data.")] = FormatChoice.auto,
    runtime: RuntimeOpt = RuntimeChoice.auto,
    delegate: DelegateOpt = DelegateChoice.auto,
    labels: LabelsOpt = None,
    json_out: JsonOpt = None,
    csv_out: Annotated[Path | None, typer.Option("--csv", help="Write the table (CSV) here.")] = None,
    md_out: Annotated[Path | None, typer.Option("--markdown", help="Write the table (markdown) here.")] = None,
    plots_dir: Annotated[
        Path | None,
        typer.Option("--plots", file_okay=False, help="Write latency.png (and iou.png with --data) into this folder."),
    ] = None,
    profile: Annotated[
        bool,
        typer.Option(
            "--profile",
            help="Also show where one inference spends its time: per op, by op type and by block "
            "(LiteRT, ONNX Runtime, OpenVINO).",
        ),
    ] = False,
    roof: Annotated[
        bool,
        typer.Option(
            "--roof/--no-roof",
            help="Measure this CPU's int8 and float roofs (a shipped probe, under a second here) and give every "
            "model its share of them.",
        ),
    ] = True,
) -> None:
    """Time models side by side: size, init, memory, invoke-only and end-to-end p50/p90/p99, FPS, mIoU, share of
    this CPU's roof; --profile shows where the time goes."""
    from edgeseg.assets import resolve_model
    from edgeseg.bench import bench_models, plots, to_csv, to_markdown
    from edgeseg.io import atomic_write_text
    from edgeseg.models import open_model

    writable(json_out, csv_out, md_out, folders=(plots_dir,))
    names = [*(models or []), *(model_opt or [])]
    models = [resolve_model(m) for m in names] or [default_model()]
    if any(m.suffix == ".keras" for m in models):
        quiet_tensorflow()
    ds = None
    if data is not None:
        from edgeseg.datasets import open_dataset

        ds = open_dataset(data, split.value, format.value)
    report = bench_models(
        models,
        lambda p, t: open_model(p, threads=t, delegate=delegate.value, runtime=runtime.value, labels=labels),
        _thread_list(threads),
        runs,
        warmup,
        parse_size(frame_size, "--frame-size"),
        rounds,
        ds,
        progress=progress("bench"),
        keep_samples=plots_dir is not None,
        roof=roof,
        profile=profile,
    )
    _print_bench(report, runs, warmup, rounds, frame_size, with_miou=ds is not None)
    if json_out:
        write_json(
            json_out,
            report
            if plots_dir is None
            else {**report, "results": [{k: v for k, v in r.items() if k != "samples_ms"} for r in report["results"]]},
        )
    if csv_out:
        atomic_write_text(csv_out, to_csv(report))
        typer.echo(f"wrote {csv_out}")
    if md_out:
        atomic_write_text(md_out, to_markdown(report))
        typer.echo(f"wrote {md_out}")
    if plots_dir:
        for p in plots(report, plots_dir):
            typer.echo(f"wrote {p}")


def _print_bench(report: dict, runs: int, warmup: int, rounds: int, frame_size: str, with_miou: bool) -> None:
    from edgeseg.bench import rows
    from edgeseg.host import int8_dot_text
    from edgeseg.profile import profile_text
    from edgeseg.roof import roof_text

    env = report["environment"]
    typer.echo(
        f"{env['cpu']}, {env['cores']} cores, governor {env['governor'] or 'n/a'}, {int8_dot_text(env)}; "
        f"{runs} runs after {warmup} warm-up, {rounds} interleaved rounds; end-to-end at {frame_size}"
    )
    with_roof = bool(report.get("roofs"))
    if with_roof:
        typer.echo(roof_text(report["roofs"]))
    table = rows(report)
    name_w = max(12, *(len(r["model"]) for r in table))
    rt_w = max(7, *(len(r["runtime"].split()[0]) for r in table))
    thr_w = max(3, *(len(str(r["threads"])) for r in table))  # "default" when no --threads
    typer.echo(
        f"{'model':<{name_w}} {'runtime':<{rt_w}} {'GMACs':>6} {'params':>7} {'thr':>{thr_w}} {'MB':>6} {'init':>7} "
        f"{'inv p50':>8} {'p90':>7} {'p99':>7} {'FPS':>7} {'e2e p50':>8} {'p90':>7} {'p99':>7} {'FPS':>7}"
        + (f" {'roof':>10}" if with_roof else "")
        + ("  mIoU" if with_miou else "")
    )
    for r in table:
        params = "n/a" if r["params_m"] is None else fmt(r["params_m"], "6.2f") + "M"
        typer.echo(
            f"{r['model']:<{name_w}} {r['runtime'].split()[0]:<{rt_w}} {fmt(r['gmacs'], '6.3f'):>6} {params:>7} "
            f"{str(r['threads']):>{thr_w}} {r['size_mb']:6.2f} {r['init_ms']:7.1f} "
            f"{r['invoke_p50']:8.2f} {r['invoke_p90']:7.2f} {r['invoke_p99']:7.2f} {r['invoke_fps']:7.1f} "
            f"{r['e2e_p50']:8.2f} {r['e2e_p90']:7.2f} {r['e2e_p99']:7.2f} {r['e2e_fps']:7.1f}"
            + (f" {_share(r):>10}" if with_roof else "")
            + (f" {r['miou']:6.2f}" if with_miou and r["miou"] is not None else "")
            + ("  <- fastest" if r["fastest"] else "")
        )
    typer.echo(
        "(ms; GMACs and params per frame, from the graph; runtime "
        + ", ".join(sorted({r["runtime"] + " " + r["delegate"] for r in rows(report)}))
        + ("; roof: the invoke's GMAC/s over the roof of the model's precision" if with_roof else "")
        + ")"
    )
    from edgeseg.evaluate import outside_warning

    warned = set()
    for r in report["results"]:  # once a model, not once a thread count
        said = None if r["model"] in warned else outside_warning(r, Path(r["model"]).name)
        if said:
            warned.add(r["model"])
            typer.secho(f"warning: {said}", fg=typer.colors.YELLOW, err=True)
    for r in report["results"]:
        if r.get("profile") and "unavailable" in r["profile"]:
            typer.secho(f"warning: no profile: {r['profile']['unavailable']}", fg=typer.colors.YELLOW, err=True)
        elif r.get("profile"):
            typer.echo("")
            typer.echo(profile_text(r["profile"]))


def _share(row: dict) -> str:
    """A row's roof share as "59% int8" (n/a where its GMACs or the roof are unknown)."""
    return "n/a" if row["roof_share"] is None else f"{row['roof_share']:.0f}% {row['precision']}"


@handles_errors
def eval_(
    model: Annotated[
        str | None, typer.Argument(help="A .tflite or .keras model, or a shipped model: nano or small.")
    ] = None,
    data: Annotated[
        Path | None, typer.Option(exists=True, help="Dataset: a folder in any layout, or a COCO JSON.")
    ] = None,
    model_opt: Annotated[str | None, typer.Option("--model", hidden=True, help=MODEL_HELP)] = None,
    split: Annotated[SplitChoice, typer.Option(help="Which split to score.")] = SplitChoice.val,
    hold_out: Annotated[
        str | None,
        typer.Option(
            metavar="PREFIX[,PREFIX]",
            help="Score the frames whose file names start with these prefixes, from every split: the frames "
            "train --hold-out validated on (instead of --split).",
        ),
    ] = None,
    format: Annotated[FormatChoice, typer.Option(help="Dataset layout.")] = FormatChoice.auto,
    limit: Annotated[int | None, typer.Option(min=1, max=MAX_IMAGES, help="Score only the first N images.")] = None,
    threads: ThreadsOpt = None,
    runtime: RuntimeOpt = RuntimeChoice.auto,
    delegate: DelegateOpt = DelegateChoice.auto,
    labels: LabelsOpt = None,
    spec: Annotated[
        Path | None, typer.Option(exists=True, dir_okay=False, help="Spec JSON for a model that carries none.")
    ] = None,
    json_out: JsonOpt = None,
    save_masks: Annotated[
        Path | None,
        typer.Option(
            file_okay=False,
            help="Write each predicted mask here as an 8-bit PNG of class indices, named after its image.",
        ),
    ] = None,
) -> None:
    """Score a model on a dataset: mIoU, per-class IoU and pixel accuracy, at the labels' resolution."""
    from edgeseg.datasets import open_dataset
    from edgeseg.evaluate import evaluate, outside_warning
    from edgeseg.models import open_model

    if data is None:
        raise EdgesegError("eval needs --data DATASET (a folder with images and masks)")
    writable(json_out, folders=(save_masks,))
    model = one_model(model, model_opt, default=False)
    if model.suffix == ".keras":
        quiet_tensorflow()
    ds = open_dataset(data, split.value, format.value) if hold_out is None else held_out_frames(data, hold_out, format)
    m = open_model(model, threads=threads, delegate=delegate.value, runtime=runtime.value, spec=spec, labels=labels)
    if hold_out is not None:
        from edgeseg.evaluate import check_classes

        check_classes(m, ds)  # a model of other classes is refused before anything is said about its frames
        _warn_if_trained_on(m.spec, model, ds.split.removeprefix("held out ").split("+"))
    res = evaluate(m, ds, limit, progress=progress("eval"), save_masks=save_masks)
    if res["miou"] is None:  # every pixel of every mask scored is the ignore index: there is nothing to score
        raise EdgesegError(
            f"{ds.root}: the {res['images']} masks scored ({ds.split}) have no labelled pixel, only the ignore "
            f"index {ds.ignore_index}: no mIoU to report"
        )
    res["model"] = str(model)
    d = m.describe()
    res["gmacs"], res["params"] = d["gmacs"], d["params"]
    typer.echo(f"{model.name} on {ds.root} ({ds.split}, {res['images']} images)")
    width = max(len(c) for c in ds.classes)
    for name, v in res["per_class_iou"].items():
        typer.echo(f"  {name:<{width}}  {'   n/a' if v is None else f'{100 * v:6.2f}'}")
    typer.echo(f"mIoU {100 * res['miou']:.2f}  pixel accuracy {100 * res['pixel_accuracy']:.2f}")
    if said := outside_warning(res, model.name):
        typer.secho(f"warning: {said}", fg=typer.colors.YELLOW, err=True)
    if json_out:
        write_json(json_out, res)
    if save_masks is not None:
        typer.echo(f"masks written to {save_masks}/")


def _warn_if_trained_on(spec, model: Path, prefixes: list[str]) -> None:
    """eval --hold-out on a model whose own run did not hold those frames out: the score may be no check."""
    if spec.trained_on(tuple(prefixes)):
        held = ", ".join(spec.held_out()) or "nothing"
        typer.secho(
            f"warning: {model.name} may have trained on these frames (its run held out {held}; train --hold-out "
            "keeps them out): this score may be no check on frames it never saw",
            fg=typer.colors.YELLOW,
            err=True,
        )


def held_out_frames(data: Path, text: str, format: FormatChoice):
    """The frames of every split whose file names start with one of the comma-separated prefixes in `text`."""
    from dataclasses import replace

    from edgeseg.datasets import open_dataset

    prefixes = tuple(p.strip() for p in text.split(","))
    if not all(prefixes):
        raise EdgesegError(f"--hold-out {text!r}: give file-name prefixes separated by commas")
    pool = open_dataset(data, "all", format.value)
    samples = [s for s in pool.samples if s.image.name.startswith(prefixes)]
    if not samples:
        raise EdgesegError(f"--hold-out {text}: no frame's file name starts with it")
    return replace(pool, split=f"held out {'+'.join(prefixes)}", samples=samples)
