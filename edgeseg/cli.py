"""The edgeseg command line. Commands are thin; heavy modules are imported inside them, so `edgeseg --help`
is instant and the device commands (run, bench, eval on .tflite) never import TensorFlow."""

from __future__ import annotations

import functools
import json
import os
import sys
from enum import Enum
from pathlib import Path
from typing import Annotated

import typer

from edgeseg.errors import EdgesegError
from edgeseg.limits import MAX_CAMERA_INDEX, MAX_FPS, MAX_IMAGES, MAX_RUNS, MAX_THREADS

app = typer.Typer(
    help="Semantic segmentation from a dataset to a camera on a small device.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


class Runtime(str, Enum):
    auto = "auto"
    litert = "litert"
    tflite_runtime = "tflite-runtime"
    tensorflow = "tensorflow"


class Delegate(str, Enum):
    auto = "auto"
    cpu = "cpu"
    edgetpu = "edgetpu"


class Format(str, Enum):
    auto = "auto"
    generic = "generic"
    camvid = "camvid"
    voc = "voc"


class Split(str, Enum):
    train = "train"
    val = "val"
    test = "test"
    all = "all"


class IODtype(str, Enum):
    int8 = "int8"
    uint8 = "uint8"


def _fail(message: str, code: int = 1) -> typer.Exit:
    typer.secho(f"error: {message}", fg=typer.colors.RED, err=True)
    return typer.Exit(code)


def _stopped() -> typer.Exit:
    """Ctrl-C or SIGTERM ended the command: say which, and exit 130 or 143 (never 0)."""
    from edgeseg import signals

    signals.note_interrupt()
    what = "terminated (SIGTERM)" if signals.received() == signals.signal.SIGTERM else "interrupted"
    typer.secho(what, fg=typer.colors.YELLOW, err=True)
    return typer.Exit(signals.exit_code())


def handles_errors(fn):
    """A domain error becomes one red line and exit 1; Ctrl-C exits 130 without a traceback."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        from edgeseg import signals

        try:
            with signals.graceful_sigterm():
                return fn(*args, **kwargs)
        except EdgesegError as e:
            raise _fail(str(e)) from None
        except KeyboardInterrupt:
            raise _stopped() from None
        except ModuleNotFoundError as e:  # the device-only install has no TensorFlow for train and convert
            if (e.name or "").split(".")[0] in ("tensorflow", "keras", "tensorflow_cpu"):
                raise _fail(f"{fn.__name__.rstrip('_')} needs TensorFlow, which this install does not have: "
                            "pip install 'edgeseg[train]' (on a workstation)") from None
            raise

    return wrapper


def parse_size(text: str | None, what: str = "size") -> tuple[int, int] | None:
    """'WIDTHxHEIGHT' -> (height, width)."""
    if text is None:
        return None
    from edgeseg.limits import check_frame_hw

    try:
        w, h = (int(v) for v in text.lower().split("x"))
        if w <= 0 or h <= 0:
            raise ValueError
    except ValueError:
        raise EdgesegError(f"{what}: expected WIDTHxHEIGHT like 640x480, got {text!r}") from None
    return check_frame_hw((h, w), what)


def _writable(*files: Path | None, folders: tuple[Path | None, ...] = ()) -> None:
    """Check every output a command was given before it starts work (OutputError names the path)."""
    from edgeseg.io import check_writable

    for f in files:
        if f is not None:
            check_writable(f)
    for d in folders:
        if d is not None:
            check_writable(d, folder=True)


def _write_json(path: Path, data: dict) -> None:
    from edgeseg.io import atomic_write_text

    atomic_write_text(path, json.dumps(data, indent=2, default=_json_default) + "\n")
    typer.echo(f"wrote {path}")


def _json_default(o):
    if hasattr(o, "item"):
        return o.item()
    if isinstance(o, Path):
        return str(o)
    raise TypeError(type(o).__name__)


def _quiet_tensorflow() -> None:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")


def _progress(desc: str):
    from edgeseg.progress import progress_bar

    return progress_bar(desc)


MODEL_HELP = "The model by path or shipped name (nano, small), instead of the MODEL argument."


def _fmt(v, spec: str = ".1f") -> str:
    return "n/a" if v is None else format(v, spec)


# ---------------------------------------------------------------------------------------------------- synth
@app.command()
@handles_errors
def synth(
    out: Annotated[Path, typer.Argument(help="Folder to write the synthetic dataset into (generic layout).")],
    count: Annotated[int, typer.Option(min=2, max=MAX_IMAGES, help="Number of scenes.")] = 300,
    size: Annotated[str, typer.Option(help="Scene size WIDTHxHEIGHT.")] = "160x120",
    seed: Annotated[int, typer.Option(help="Seed: the same seed writes the same scenes.")] = 0,
    video: Annotated[Path | None, typer.Option(help="Also write a synthetic video (.mp4) here.")] = None,
    frames: Annotated[int, typer.Option(min=1, max=MAX_IMAGES, help="Frames in the video.")] = 150,
) -> None:
    """Write the built-in synthetic dataset (shapes on textured, noisy backgrounds) and optionally a video."""
    from edgeseg import synthetic

    hw = parse_size(size)
    _writable(video, folders=(out,))
    synthetic.write_dataset(out, count, hw, seed, progress=_progress("scenes"))
    typer.echo(f"wrote {count} synthetic scenes to {out} (images/, masks/, classes.json)")
    if video:
        synthetic.write_video(video, frames, hw, seed=seed + 1)
        typer.echo(f"wrote {video} ({frames} frames)")


# ---------------------------------------------------------------------------------------------------- train
@app.command()
@handles_errors
def train(
    data: Annotated[Path, typer.Option(exists=True, file_okay=False, help="Dataset folder (any layout).")],
    out: Annotated[Path, typer.Option(help="Run folder: model.keras, spec.json, history.csv.")] = Path("runs/train"),
    format: Annotated[Format, typer.Option(help="Dataset layout.")] = Format.auto,
    val_data: Annotated[Path | None, typer.Option(exists=True, file_okay=False,
                                                 help="Separate validation dataset (default: the val split).")] = None,
    size: Annotated[str, typer.Option(help="Model input WIDTHxHEIGHT (multiples of 32).")] = "224x224",
    backbone: Annotated[str, typer.Option(help="mobilenet_v2, mobilenet_v3_small or mobilenet_v3_large.")]
    = "mobilenet_v2",
    alpha: Annotated[float, typer.Option(min=0.1, max=4.0, help="Backbone width multiplier.")] = 1.0,
    decoder: Annotated[str, typer.Option(help="Decoder: tiny, small, base, large (separable, 4 stages) or dense (the int8 decoder).")] = "base",
    weights: Annotated[str | None, typer.Option(help="Backbone weights: none, imagenet or a .weights.h5 file.")]
    = None,
    epochs: Annotated[int, typer.Option(min=1, max=100_000)] = 30,
    batch_size: Annotated[int, typer.Option(min=1, max=4096)] = 8,
    lr: Annotated[float, typer.Option(min=1e-8, max=10.0, help="Peak learning rate (cosine decay after one warm-up "
                                      "epoch).")] = 2e-3,
    class_weights: Annotated[str, typer.Option(help="none, median (median-frequency balancing) or a list.")]
    = "none",
    augment: Annotated[bool, typer.Option("--augment/--no-augment", help="Flip, scale/crop, colour jitter.")]
    = True,
    seed: Annotated[int, typer.Option()] = 0,
    resume: Annotated[bool, typer.Option("--resume", help="Continue an interrupted run in --out.")] = False,
) -> None:
    """Train a MobileNet U-Net. Keeps the best checkpoint by validation mIoU; --resume continues a run."""
    _writable(folders=(out,))
    _quiet_tensorflow()
    from edgeseg.training.data import Augment
    from edgeseg.training.train import TrainConfig
    from edgeseg.training.train import train as run_training

    if resume and (out / "config.json").is_file():
        saved = json.loads((out / "config.json").read_text())
        saved["input_hw"] = tuple(saved["input_hw"])
        saved["augment"] = Augment(**{k: tuple(v) if isinstance(v, list) else v for k, v in saved["augment"].items()})
        cfg = TrainConfig(**saved)
        typer.echo(f"resuming {out} with its saved settings")
    else:
        cfg = TrainConfig(
            data=str(data), out=str(out), format=format.value, input_hw=parse_size(size, "--size"),
            backbone=backbone, alpha=alpha, decoder=decoder, weights=weights, epochs=epochs,
            batch_size=batch_size, lr=lr, class_weights=class_weights, seed=seed,
            augment=Augment() if augment else Augment.none(), val_data=str(val_data) if val_data else None,
        )
    result = run_training(cfg, resume=resume, log=typer.echo)
    typer.echo(f"best val mIoU {result['best_val_miou']:.4f}")
    typer.echo(f"wrote {result['model']}, {result['spec']}, {result['history']}")


# -------------------------------------------------------------------------------------------------- convert
@app.command()
@handles_errors
def convert(
    model: Annotated[Path, typer.Argument(exists=True, dir_okay=False, help="Trained .keras model.")],
    *,
    int8: Annotated[bool, typer.Option("--int8", help="Full-integer int8 (calibrated).")] = False,
    dynamic: Annotated[bool, typer.Option("--dynamic", help="Dynamic range: int8 weights, float activations.")]
    = False,
    fp16: Annotated[bool, typer.Option("--fp16", help="float16 weights (half the size; fp16 arithmetic on CPUs "
                                       "that have it, such as the Pi 5's).")] = False,
    calibration: Annotated[Path | None, typer.Option(exists=True, help="Dataset or image folder for calibration "
                                                     "(default: the training data recorded in the spec).")] = None,
    num_calibration: Annotated[int, typer.Option(min=1, max=MAX_IMAGES, help="Calibration images.")] = 200,
    io: Annotated[IODtype, typer.Option(help="int8 model's input/output type.")] = IODtype.int8,
    spec: Annotated[Path | None, typer.Option(exists=True, dir_okay=False, help="Model spec JSON "
                                              "(default: spec.json beside the model).")] = None,
    out: Annotated[Path | None, typer.Option(help="Output .tflite (default: beside the model).")] = None,
    strict: Annotated[bool, typer.Option("--strict", help="Fail if the int8 model keeps any float op.")] = False,
    edgetpu_check: Annotated[bool, typer.Option("--edgetpu", help="With --int8: lint for the Edge TPU and run "
                                                "edgetpu_compiler when installed.")] = False,
    report: Annotated[Path | None, typer.Option(file_okay=False, help="With --int8: write the quantisation report "
                                                "(float vs int8 on the val split of the calibration dataset) here.")]
    = None,
    verify: Annotated[int, typer.Option(min=0, max=MAX_IMAGES, help="Images to compare float vs converted "
                                        "argmax on.")] = 8,
    json_out: Annotated[Path | None, typer.Option("--json", help="Write the conversion report here.")] = None,
) -> None:
    """Convert a Keras model to TFLite (float32 by default), embed its spec, verify the result."""
    if int8 + dynamic + fp16 > 1:
        raise EdgesegError("choose one of --int8, --dynamic and --fp16")
    _writable(out, json_out, folders=(report, model.parent if out is None else None))  # default: beside it
    _quiet_tensorflow()
    from converters.tflite import convert_keras  # TensorFlow stays out of `edgeseg run`

    target = "int8" if int8 else "dynamic" if dynamic else "fp16" if fp16 else "float"
    logged: set[str] = set()

    def log(msg: str) -> None:
        logged.add(msg)
        typer.echo(msg)

    result = convert_keras(model, out, target=target, spec=spec, calibration=calibration,
                           num_calibration=num_calibration, io_dtype=io.value, verify_images=verify,
                           strict=strict, progress=sys.stderr.isatty(), log=log)
    r = result
    typer.echo(f"wrote {r.path} ({r.size_bytes / 1e6:.2f} MB, {r.target}, {r.seconds:.1f} s)")
    ops = ", ".join(f"{k} {v}" for k, v in sorted(r.ops.ops.items()))
    typer.echo(f"ops: {ops}")
    if r.target == "int8":
        typer.echo("all ops and tensors int8" if r.ops.fully_int8 else f"NOT fully int8: {r.ops.non_int8_ops[:5]}")
        typer.echo(f"calibrated on {r.calibration_images} images")
    if r.agreement is not None:
        typer.echo(f"argmax agreement with the Keras model: {100 * r.agreement:.2f}% of pixels "
                   f"on {r.verify_images} images")
    for w in r.warnings:
        if f"warning: {w}" not in logged:  # calibration warnings were said before the work; say each once
            typer.secho(f"warning: {w}", fg=typer.colors.YELLOW, err=True)
    out_json = r.to_dict()
    if report is not None:
        if r.target != "int8":
            typer.secho("warning: --report needs an int8 model: add --int8", fg=typer.colors.YELLOW, err=True)
        else:
            out_json["report"] = str(_quant_report(model, r.path, calibration, spec, report, num_calibration))
    if edgetpu_check:
        if r.target != "int8":
            typer.secho("warning: --edgetpu needs an int8 model: add --int8", fg=typer.colors.YELLOW, err=True)
        else:
            out_json["edgetpu"] = _edgetpu_report(r.path, True)
    if json_out:
        _write_json(json_out, out_json)


def _quant_report(float_path: Path, int8_path: Path, calibration: Path | None, spec: Path | None, folder: Path,
                  num_calibration: int = 200, data: Path | None = None, limit: int | None = None,
                  keras_path: Path | None = None) -> Path:
    from converters.calibration import calibration_set
    from converters.quant_report import build_report
    from edgeseg.datasets import detect_format, open_dataset
    from edgeseg.models import load_model

    fm = load_model(float_path, spec=spec if float_path.suffix == ".keras" else None)
    qm = load_model(int8_path)
    source = data or calibration or fm.spec.extra.get("train_data")
    if not source:
        raise EdgesegError("the report needs a dataset with masks: give --data (or --calibration)")
    try:
        detect_format(Path(source))
    except EdgesegError:
        raise EdgesegError(f"{source}: the report needs a dataset with masks, not an image folder") from None
    try:
        ds = open_dataset(Path(source), "val")
    except EdgesegError:
        ds = open_dataset(Path(source), "all")
    cal_source = calibration or fm.spec.extra.get("train_data")
    cal = calibration_set(Path(cal_source), fm.spec, num_calibration) if cal_source else None
    keras_seg = fm if float_path.suffix == ".keras" else None
    if keras_seg is None and keras_path is not None:
        keras_seg = load_model(keras_path)
    path, res = build_report(fm, qm, ds, folder, keras_seg, cal, limit, progress=_progress("report"))
    typer.echo(f"float mIoU {100 * res['float_miou']:.2f}, int8 {100 * res['int8_miou']:.2f} "
               f"({100 * res['delta_miou']:+.2f}); pixels that disagree {100 * res['pixel_disagreement']:.2f}%")
    for sgt in res["suggestions"]:
        typer.echo(f"  - {sgt}")
    typer.echo(f"wrote {path}")
    return path


@app.command("quant-report")
@handles_errors
def quant_report(
    float_model: Annotated[Path, typer.Argument(exists=True, dir_okay=False, help="The float reference (.keras or "
                                                "float .tflite).")],
    int8_model: Annotated[Path, typer.Argument(exists=True, dir_okay=False, help="The int8 .tflite.")],
    data: Annotated[Path | None, typer.Option(exists=True, file_okay=False, help="Dataset to score on (val split; "
                                              "default: the training data the spec records).")] = None,
    out: Annotated[Path, typer.Option(file_okay=False, help="Folder for report.md, report.json and images.")]
    = Path("quant_report"),
    calibration: Annotated[Path | None, typer.Option(exists=True, help="The calibration data, for its class "
                                                     "coverage.")] = None,
    keras: Annotated[Path | None, typer.Option(exists=True, dir_okay=False, help="The .keras model, for per-layer "
                                               "statistics when FLOAT_MODEL is a .tflite.")] = None,
    limit: Annotated[int | None, typer.Option(min=1, max=MAX_IMAGES, help="Score only the first N images.")] = None,
) -> None:
    """Where int8 loses against float: per-class deltas, disagreement maps, worst layers, suggestions."""
    _writable(folders=(out,))
    if float_model.suffix == ".keras" or keras is not None:
        _quiet_tensorflow()
    _quant_report(float_model, int8_model, calibration, None, out, data=data, limit=limit, keras_path=keras)


# ----------------------------------------------------------------------------------------------------- eval
@app.command("eval")
@handles_errors
def eval_(
    model: Annotated[str | None, typer.Argument(help="A .tflite or .keras model, or a shipped model: "
                                                "nano or small.")] = None,
    data: Annotated[Path | None, typer.Option(exists=True, file_okay=False, help="Dataset folder.")] = None,
    model_opt: Annotated[str | None, typer.Option("--model", help=MODEL_HELP)] = None,
    split: Annotated[Split, typer.Option(help="Which split to score.")] = Split.val,
    format: Annotated[Format, typer.Option(help="Dataset layout.")] = Format.auto,
    limit: Annotated[int | None, typer.Option(min=1, max=MAX_IMAGES, help="Score only the first N images.")] = None,
    threads: Annotated[int | None, typer.Option(min=1, max=MAX_THREADS, help="Interpreter threads.")] = None,
    runtime: Annotated[Runtime, typer.Option(help="TFLite runtime.")] = Runtime.auto,
    delegate: Annotated[Delegate, typer.Option(help="cpu, edgetpu, or auto (by file).")] = Delegate.auto,
    spec: Annotated[Path | None, typer.Option(exists=True, dir_okay=False, help="Spec JSON for a model "
                                              "that carries none.")] = None,
    json_out: Annotated[Path | None, typer.Option("--json", help="Write the results here.")] = None,
    save_masks: Annotated[Path | None, typer.Option(file_okay=False, help="Write each predicted mask here as an "
                                                    "8-bit PNG of class indices, named after its image.")] = None,
) -> None:
    """Score a model on a dataset: mIoU, per-class IoU and pixel accuracy, at the labels' resolution."""
    from edgeseg.datasets import open_dataset
    from edgeseg.evaluate import evaluate
    from edgeseg.models import load_model

    if data is None:
        raise EdgesegError("eval needs --data DATASET (a folder with images and masks)")
    _writable(json_out, folders=(save_masks,))
    model = _one_model(model, model_opt, default=False)
    if model.suffix == ".keras":
        _quiet_tensorflow()
    ds = open_dataset(data, split.value, format.value)
    m = load_model(model, threads=threads, delegate=delegate.value, runtime=runtime.value, spec=spec)
    res = evaluate(m, ds, limit, progress=_progress("eval"), save_masks=save_masks)
    res["model"] = str(model)
    d = m.describe()
    res["gmacs"], res["params"] = d.get("gmacs"), d.get("params")
    typer.echo(f"{model.name} on {ds.root} ({ds.split}, {res['images']} images)")
    width = max(len(c) for c in ds.classes)
    for name, v in res["per_class_iou"].items():
        typer.echo(f"  {name:<{width}}  {'   n/a' if v is None else f'{100 * v:6.2f}'}")
    typer.echo(f"mIoU {100 * res['miou']:.2f}  pixel accuracy {100 * res['pixel_accuracy']:.2f}")
    if json_out:
        _write_json(json_out, res)
    if save_masks is not None:
        typer.echo(f"masks written to {save_masks}/")


# ---------------------------------------------------------------------------------------------------- bench
def _thread_list(text: str | None) -> list[int | None]:
    if not text:
        return [None]
    try:
        vals = [int(v) for v in text.split(",") if v.strip()]
        if not vals or min(vals) < 1:
            raise ValueError
    except ValueError:
        raise EdgesegError(f"--threads: expected N or a list like 1,2,4, got {text!r}") from None
    from edgeseg.limits import check_threads

    return [check_threads(v) for v in vals]


@app.command()
@handles_errors
def bench(
    models: Annotated[list[str] | None, typer.Argument(help="One or more .tflite (or .keras) models, or shipped "
                                                       "models by name (nano, small), side by side (default: "
                                                       "small).")] = None,
    model_opt: Annotated[list[str] | None, typer.Option("--model", help="A model to add, by path or shipped "
                                                        "name (nano, small); repeat for more.")] = None,
    threads: Annotated[str | None, typer.Option(help="Interpreter threads: N, or a sweep like 1,2,4.")] = None,
    runs: Annotated[int, typer.Option(min=1, max=MAX_RUNS, help="Timed runs per model (each of invoke-only and end-to-end).")]
    = 100,
    warmup: Annotated[int, typer.Option(min=0, max=MAX_RUNS, help="Untimed runs first.")] = 10,
    rounds: Annotated[int, typer.Option(min=1, max=10_000, help="Interleave the models in this many rounds.")] = 5,
    frame_size: Annotated[str, typer.Option(help="Frame WIDTHxHEIGHT for the end-to-end timing.")] = "640x480",
    data: Annotated[Path | None, typer.Option(exists=True, file_okay=False, help="Also score mIoU on this "
                                              "dataset.")] = None,
    split: Annotated[Split, typer.Option(help="Split of --data.")] = Split.val,
    format: Annotated[Format, typer.Option(help="Layout of --data.")] = Format.auto,
    runtime: Annotated[Runtime, typer.Option(help="TFLite runtime.")] = Runtime.auto,
    delegate: Annotated[Delegate, typer.Option(help="cpu, edgetpu, or auto (by file).")] = Delegate.auto,
    json_out: Annotated[Path | None, typer.Option("--json", help="Write all results (JSON) here.")] = None,
    csv_out: Annotated[Path | None, typer.Option("--csv", help="Write the table (CSV) here.")] = None,
    md_out: Annotated[Path | None, typer.Option("--markdown", help="Write the table (markdown) here.")] = None,
    plots_dir: Annotated[Path | None, typer.Option("--plots", file_okay=False, help="Write latency.png (and "
                                                   "iou.png with --data) into this folder.")] = None,
) -> None:
    """Time models side by side: size, init, memory, invoke-only and end-to-end p50/p90/p99, FPS, mIoU."""
    from edgeseg.bench import bench_models, int8_dot_text, plots, rows, to_csv, to_markdown
    from edgeseg.io import atomic_write_text
    from edgeseg.models import load_model

    from edgeseg.assets import resolve_model

    _writable(json_out, csv_out, md_out, folders=(plots_dir,))
    names = [*(models or []), *(model_opt or [])]
    models = [resolve_model(m) for m in names] or [_default_model()]
    if any(m.suffix == ".keras" for m in models):
        _quiet_tensorflow()
    ds = None
    if data is not None:
        from edgeseg.datasets import open_dataset

        ds = open_dataset(data, split.value, format.value)
    report = bench_models(
        models, lambda p, t: load_model(p, threads=t, delegate=delegate.value, runtime=runtime.value),
        _thread_list(threads), runs, warmup, parse_size(frame_size, "--frame-size"), rounds, ds,
        progress=_progress("bench"), keep_samples=plots_dir is not None,
    )
    env = report["environment"]
    typer.echo(f"{env['cpu']}, {env['cores']} cores, governor {env['governor'] or 'n/a'}, {int8_dot_text(env)}; "
               f"{runs} runs after {warmup} warm-up, {rounds} interleaved rounds; end-to-end at {frame_size}")
    name_w = max(12, *(len(r["model"]) for r in rows(report)))
    typer.echo(f"{'model':<{name_w}} {'GMACs':>6} {'params':>7} {'thr':>3} {'MB':>6} {'init':>7} {'inv p50':>8} "
               f"{'p90':>7} {'p99':>7} {'FPS':>7} {'e2e p50':>8} {'p90':>7} {'p99':>7} {'FPS':>7}"
               + ("  mIoU" if ds else ""))
    for r in rows(report):
        typer.echo(f"{r['model']:<{name_w}} {_fmt(r['gmacs'], '6.3f'):>6} {_fmt(r['params_m'], '6.2f') + 'M':>7} "
                   f"{str(r['threads']):>3} {r['size_mb']:6.2f} {r['init_ms']:7.1f} "
                   f"{r['invoke_p50']:8.2f} {r['invoke_p90']:7.2f} {r['invoke_p99']:7.2f} {r['invoke_fps']:7.1f} "
                   f"{r['e2e_p50']:8.2f} {r['e2e_p90']:7.2f} {r['e2e_p99']:7.2f} {r['e2e_fps']:7.1f}"
                   + (f" {r['miou']:6.2f}" if ds and r["miou"] is not None else ""))
    typer.echo("(ms; GMACs and params per frame, from the graph; runtime "
               + ", ".join(sorted({r["runtime"] + " " + r["delegate"] for r in rows(report)})) + ")")
    if json_out:
        _write_json(json_out, report if plots_dir is None else
                    {**report, "results": [{k: v for k, v in r.items() if k != "samples_ms"}
                                           for r in report["results"]]})
    if csv_out:
        atomic_write_text(csv_out, to_csv(report))
        typer.echo(f"wrote {csv_out}")
    if md_out:
        atomic_write_text(md_out, to_markdown(report))
        typer.echo(f"wrote {md_out}")
    if plots_dir:
        for p in plots(report, plots_dir):
            typer.echo(f"wrote {p}")


# ------------------------------------------------------------------------------------------------------ run
class View(str, Enum):
    overlay = "overlay"
    mask = "mask"
    side_by_side = "side-by-side"


@app.command()
@handles_errors
def run(
    model: Annotated[str | None, typer.Argument(help="A segmentation .tflite, or a shipped model: nano or "
                                                "small (default: small).")] = None,
    model_opt: Annotated[str | None, typer.Option("--model", help=MODEL_HELP)] = None,
    camera: Annotated[int | None, typer.Option(min=0, max=MAX_CAMERA_INDEX, help="Camera index (V4L2 "
                                               "/dev/videoN).")] = None,
    source: Annotated[str | None, typer.Option(help="Video file, image folder or glob, rtsp:// or http:// URL, "
                                               "or synthetic[:WxH].")] = None,
    picamera: Annotated[bool, typer.Option("--picamera", help="Raspberry Pi camera via Picamera2.")] = False,
    camera_size: Annotated[str | None, typer.Option(help="Ask the camera for WIDTHxHEIGHT.")] = None,
    camera_fps: Annotated[float | None, typer.Option(min=0.1, max=MAX_FPS, help="Ask the camera for this frame "
                                                     "rate.")] = None,
    show: Annotated[bool, typer.Option("--show/--no-show", help="Open a window (q or Esc quits).")] = True,
    record: Annotated[Path | None, typer.Option(help="Write the rendered video here (.mp4).")] = None,
    save_masks: Annotated[Path | None, typer.Option(file_okay=False, help="Write each frame's class-index PNG "
                                                    "into this folder.")] = None,
    serve: Annotated[str | None, typer.Option(help="[HOST:]PORT: serve the live view to a browser "
                                              "(binds 127.0.0.1 unless a host is given).")] = None,
    max_frames: Annotated[int | None, typer.Option(min=1, max=10**9, help="Stop after N frames.")] = None,
    duration: Annotated[float | None, typer.Option(min=0.0, help="Stop after this many seconds.")] = None,
    realtime: Annotated[bool, typer.Option("--realtime", help="Pace a file at its frame rate, dropping frames "
                                           "inference cannot keep up with, as a camera would.")] = False,
    reconnect: Annotated[bool, typer.Option("--reconnect/--no-reconnect", help="Reopen a live source that "
                                            "stops delivering.")] = True,
    view: Annotated[View, typer.Option(help="What to draw.")] = View.overlay,
    alpha: Annotated[float, typer.Option(min=0.0, max=1.0, help="Mask opacity over the frame.")] = 0.5,
    legend: Annotated[bool, typer.Option("--legend/--no-legend", help="Class legend.")] = True,
    threads: Annotated[int | None, typer.Option(min=1, max=MAX_THREADS, help="Interpreter threads.")] = None,
    runtime: Annotated[Runtime, typer.Option(help="TFLite runtime.")] = Runtime.auto,
    delegate: Annotated[Delegate, typer.Option(help="cpu, edgetpu, or auto (by file).")] = Delegate.auto,
    json_out: Annotated[Path | None, typer.Option("--stats", help="Write loop statistics (JSON) here.")] = None,
) -> None:
    """Segment a camera, a video, images or a stream in real time: show, record, serve to a browser."""
    from camera.loop import LoopOptions, run_loop
    from camera.sources import open_source
    from edgeseg.models import load_model

    model = _one_model(model, model_opt, default=True)
    _writable(record, json_out, folders=(save_masks,))
    if show and not _has_display():
        typer.secho("no display: running without a window (--no-show)", fg=typer.colors.YELLOW, err=True)
        show = False
    serve_at = None
    if serve:
        from camera.serve import parse_serve

        serve_at = parse_serve(serve)
    m = load_model(model, threads=threads, delegate=delegate.value, runtime=runtime.value)
    lores = (m.spec.input_hw[1], m.spec.input_hw[0]) if picamera else None
    opts = LoopOptions(show=show, record=record, save_masks=save_masks, max_frames=max_frames, duration=duration,
                       alpha=alpha, view=view.value, legend=legend, realtime=realtime, reconnect=reconnect,
                       serve=serve_at, log=lambda msg: typer.secho(msg, fg=typer.colors.YELLOW, err=True))
    with open_source(camera, source, picamera, parse_size(camera_size, "--camera-size")[::-1] if camera_size
                     else None, camera_fps, lores) as src:
        typer.echo(f"{model.name} on {src.name}" + ("" if show else " (no window)") + "; Ctrl-C stops")
        stats = run_loop(m, src, opts)
    d = stats.to_dict()
    typer.echo(f"{d['frames']} frames in {d['seconds']:.1f} s ({_fmt(d['fps'])} FPS); dropped {d['dropped']}, "
               f"corrupt {d['corrupt']}, reconnects {d['reconnects']}" + (" (interrupted)" if d["interrupted"] else ""))
    typer.echo(f"{'stage (ms)':<14}{'p50':>8}{'p90':>8}{'p99':>8}")
    for name, st in list(d["stages"].items()) + [("frame age", d["frame_age"])]:
        if st:
            typer.echo(f"{name:<14}{st['p50_ms']:8.2f}{st['p90_ms']:8.2f}{st['p99_ms']:8.2f}")
    if record:
        typer.echo(f"wrote {record}")
    if save_masks:
        typer.echo(f"wrote {d['frames']} masks to {save_masks}")
    if json_out:
        _write_json(json_out, d)
    if stats.interrupted:
        raise _stopped()


def _one_model(argument: str | None, option: str | None, default: bool) -> Path:
    """MODEL argument or --model (a path or a shipped name) -> a model file; the shipped default if allowed."""
    from edgeseg.assets import resolve_model

    if argument and option:
        raise EdgesegError(f"give the model once: {argument!r} and --model {option!r}")
    text = argument or option
    if text is None:
        if not default:
            raise EdgesegError("no model given: a .tflite or .keras path, or a shipped model (nano, small)")
        return _default_model()
    return resolve_model(text)


def _default_model() -> Path:
    from edgeseg.assets import default_model

    path = default_model()
    if path is None:
        raise EdgesegError("no model given and none shipped with this install: edgeseg run MODEL.tflite --camera 0")
    return path


def _has_display() -> bool:
    if sys.platform.startswith("linux"):
        return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))
    return True


# -------------------------------------------------------------------------------------------------- edgetpu
def _edgetpu_report(model: Path, compile_it: bool) -> dict:
    from converters.edgetpu import SOURCE, compile_model, lint

    rep = lint(model)
    d = rep.to_dict()
    typer.echo(f"Edge TPU lint of {model.name} ({d['ops']} ops) against {SOURCE}:")
    if rep.compiled:
        typer.echo("  already compiled for the Edge TPU (it holds an edgetpu-custom-op): not linted or compiled again")
        compile_it = False
    elif not rep.findings:
        typer.secho("  every op is on the Edge TPU's supported list, int8, with static shapes", fg=typer.colors.GREEN)
    for f in rep.findings:
        colour = {"error": typer.colors.RED, "cpu": typer.colors.YELLOW}.get(f.severity)
        typer.secho(f"  op {f.index:>3} {f.op:<20} {f.severity:<5} {f.reason}", fg=colour)
    part = d["partition"]
    verb = "the compiler put" if rep.compiled else "predicted after compiling:"
    typer.echo(f"  {verb} {part['edgetpu']} op(s) on the Edge TPU, {part['cpu-prefix']} on the CPU before it and "
               f"{part['cpu-suffix']} after it" + (f": {', '.join(d['cpu_ops'])}" if d["cpu_ops"] else ""))
    result = {"lint": d}
    if compile_it:
        comp = compile_model(model)
        result["compiler"] = comp
        if "skipped" in comp:
            typer.echo(f"  {comp['skipped']}")
        elif comp.get("compiled"):
            typer.echo(f"  compiled ({comp.get('compiler_version')}): {comp.get('ops_on_tpu')} ops on the Edge TPU, "
                       f"{comp.get('ops_on_cpu', 0)} on the CPU; on-chip memory {comp.get('on_chip_used')}, "
                       f"output {comp.get('output_model')}")
        else:
            typer.secho(f"  edgetpu_compiler refused the model: {'; '.join(comp['errors']) or 'see its log'}",
                        fg=typer.colors.RED)
    return result


@app.command()
@handles_errors
def edgetpu(
    model: Annotated[Path, typer.Argument(exists=True, dir_okay=False, help="An int8 .tflite.")],
    compile_it: Annotated[bool, typer.Option("--compile/--lint-only", help="Run edgetpu_compiler when it is "
                                             "installed.")] = True,
    json_out: Annotated[Path | None, typer.Option("--json", help="Write the lint and compiler report here.")] = None,
) -> None:
    """Edge TPU readiness: lint the ops against the Edge TPU's supported list, then compile if possible."""
    _writable(json_out)
    result = _edgetpu_report(model, compile_it)
    if json_out:
        _write_json(json_out, result)


# ----------------------------------------------------------------------------------------------------- info
@app.command()
@handles_errors
def info(
    model: Annotated[str | None, typer.Argument(help="A .tflite (any segmentation model, ours or not), or a "
                                                "shipped model: nano or small (default: small).")] = None,
    json_out: Annotated[Path | None, typer.Option("--json", help="Write everything (JSON) here.")] = None,
) -> None:
    """What a model is and costs: spec, input/output, op histogram, GMACs and params per frame, int8 share,
    Edge TPU verdict. Reads the file only; runs nothing."""
    from edgeseg.info import format_info, model_info

    _writable(json_out)
    d = model_info(_one_model(model, None, default=True))
    for line in format_info(d):
        typer.echo(line)
    if json_out:
        _write_json(json_out, d)


# --------------------------------------------------------------------------------------------------- doctor
@app.command()
@handles_errors
def doctor(
    json_out: Annotated[Path | None, typer.Option("--json", help="Write the checks (JSON) here.")] = None,
) -> None:
    """Check this machine: runtimes, XNNPACK, Edge TPU, cameras, OpenCV build, Picamera2."""
    from edgeseg.doctor import as_dicts, run_checks

    _writable(json_out)

    checks = run_checks()
    colours = {"OK": typer.colors.GREEN, "WARN": typer.colors.YELLOW, "FAIL": typer.colors.RED, "INFO": None}
    width = max(len(c.name) for c in checks)
    for c in checks:
        typer.secho(f"{c.status:<5}", fg=colours[c.status], nl=False)
        typer.echo(f"{c.name:<{width}}  {c.detail}" + (f"\n      {'':<{width}}  -> {c.hint}" if c.hint and
                                                        c.status != "OK" else ""))
    if json_out:
        _write_json(json_out, {"checks": as_dicts(checks)})
    if any(c.status == "FAIL" for c in checks):
        raise typer.Exit(1)


# ----------------------------------------------------------------------------------------------------- demo
@app.command()
@handles_errors
def demo(
    out: Annotated[Path, typer.Option(help="Folder for everything the demo writes.")] = Path("runs/demo"),
    epochs: Annotated[int, typer.Option(min=1, max=100_000, help="Training epochs.")] = 12,
    count: Annotated[int, typer.Option(min=20, max=MAX_IMAGES, help="Synthetic scenes.")] = 400,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace an earlier demo in --out.")] = False,
) -> None:
    """The whole pipeline on built-in synthetic data: train, convert int8, eval float vs int8, bench, run."""
    from edgeseg.demo import run_demo

    _writable(folders=(out,))

    run_demo(out, epochs=epochs, count=count, overwrite=overwrite, echo=typer.echo)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
