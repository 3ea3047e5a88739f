"""edgeseg train."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from edgeseg.cli.common import (
    BackboneChoice,
    BackendChoice,
    DecoderChoice,
    FormatChoice,
    KdModeChoice,
    KeepChoice,
    LossChoice,
    StrategyChoice,
    TeacherViewChoice,
    finite_option,
    handles_errors,
    parse_size,
    quiet_tensorflow,
    writable,
)


@handles_errors
def train(
    ctx: typer.Context,
    data: Annotated[
        Path | None,
        typer.Option(
            exists=True,
            help="Dataset: a folder in any layout, a COCO JSON or a pack (with --resume: the run's own, unless moved).",
        ),
    ] = None,
    out: Annotated[Path, typer.Option(help="Run folder: model.keras, spec.json, history.csv.")] = Path("runs/train"),
    format: Annotated[FormatChoice, typer.Option(help="Dataset layout.")] = FormatChoice.auto,
    val_data: Annotated[
        Path | None,
        typer.Option(exists=True, help="Separate validation dataset (default: the val split)."),
    ] = None,
    train_splits: Annotated[
        str,
        typer.Option(help="Splits to train on, comma-separated: train, or train,val as CamVid's published protocol."),
    ] = "train",
    hold_out: Annotated[
        str | None,
        typer.Option(
            help="File-name prefixes (sequences) to hold out of training and validate on, comma-separated "
            "(CamVid: 0006R0): a check on scenes the model never saw."
        ),
    ] = None,
    keep: Annotated[
        KeepChoice,
        typer.Option(
            help="Which epoch to keep: best (by validation mIoU; only when no validation frame is trained on), "
            "last (a fixed schedule), or auto (best when it can be, else last)."
        ),
    ] = KeepChoice.auto,
    init: Annotated[
        str | None,
        typer.Option(
            help="Start from a trained model: nano or small (the shipped CamVid models' Keras weights) or a "
            ".keras file with its spec. Its network and input size are the defaults; a head of another class "
            "count is built afresh."
        ),
    ] = None,
    size: Annotated[
        str | None,
        typer.Option(
            metavar="WxH", help="Model input WIDTHxHEIGHT, multiples of 32 (default: --init's, else 224x224)."
        ),
    ] = None,
    backbone: Annotated[
        BackboneChoice | None,
        typer.Option(help="The encoder, an ImageNet-shaped MobileNet (default: --init's, else mobilenet_v2)."),
    ] = None,
    alpha: Annotated[
        float | None, finite_option(min=0.1, max=4.0, help="Backbone width multiplier (default: --init's, else 1.0).")
    ] = None,
    decoder: Annotated[
        DecoderChoice | None,
        typer.Option(
            help="tiny, small, base, large (separable, 4 stages), dense (the int8 decoder), nano "
            "(the Pi 4 model's: dense blocks, stride 8, narrow), fcn (FCN-8s) or lraspp (MobileNetV3's LR-ASPP). "
            "Default: --init's, else base."
        ),
    ] = None,
    loss: Annotated[
        LossChoice, typer.Option(help="ce (weighted cross-entropy) or ohem (the same over the hard pixels only).")
    ] = LossChoice.ce,
    teacher: Annotated[
        str | None,
        typer.Option(
            help="Distil from a trained model of the same classes: small or nano (the shipped CamVid models) or "
            "a .keras file with its spec; it runs at its own input size on the same augmented batch."
        ),
    ] = None,
    kd_weight: Annotated[
        float, finite_option(min=0.0, max=0.99, help="With --teacher: the distillation term's share of the loss.")
    ] = 0.5,
    kd_temperature: Annotated[
        float, finite_option(min=0.1, max=20.0, help="With --teacher: softens both distributions.")
    ] = 2.0,
    kd_mode: Annotated[
        KdModeChoice,
        typer.Option(
            help="With --teacher: pixel matches each pixel's class distribution (Hinton's KD); channel matches "
            "each class's distribution over the image (channel-wise distillation, Shu et al. 2021)."
        ),
    ] = KdModeChoice.pixel,
    teacher_view: Annotated[
        TeacherViewChoice,
        typer.Option(
            help="With --teacher: what it sees. frame: the student's crop taken from the full-resolution frame "
            "at the teacher's input size, so a teacher larger than the student sees the detail the frame has; "
            "student: the student's crop resized up to the teacher's input."
        ),
    ] = TeacherViewChoice.frame,
    aux_weight: Annotated[
        float,
        finite_option(
            min=0.0,
            max=1.0,
            help="An auxiliary head on the encoder's stride-16 feature, trained on the same labels at this weight "
            "(PSPNet: 0.4); training only, the saved model has no trace of it. 0: none.",
        ),
    ] = 0.0,
    ema: Annotated[
        float,
        finite_option(
            min=0.0,
            max=0.9999,
            help="Keep an exponential moving average of the weights with this momentum per step (0.99-0.999; "
            "Ultralytics and timm train with one): every epoch is scored, and model.keras saved, with the "
            "average. 0: none.",
        ),
    ] = 0.0,
    scale_range: Annotated[
        str, typer.Option(help="Augmentation: random scale LOW,HIGH before the crop to the input size.")
    ] = "0.75,1.5",
    weights: Annotated[str | None, typer.Option(help="Backbone weights: none, imagenet or a .weights.h5 file.")] = None,
    epochs: Annotated[int, typer.Option(min=1, max=100_000, help="Passes over the training frames.")] = 30,
    val_every: Annotated[
        int,
        typer.Option(
            min=1,
            max=100_000,
            help="Score the validation frames every N epochs (and after the last): a long run spends less time "
            "scoring. --keep best then chooses among the scored epochs.",
        ),
    ] = 1,
    batch_size: Annotated[
        int, typer.Option(min=1, max=4096, help="Frames per step (per replica, with --strategy mirrored).")
    ] = 8,
    lr: Annotated[
        float, finite_option(min=1e-8, max=10.0, help="Peak learning rate (cosine decay after one warm-up epoch).")
    ] = 2e-3,
    class_weights: Annotated[str, typer.Option(help="none, median (median-frequency balancing) or a list.")] = "none",
    augment: Annotated[bool, typer.Option("--augment/--no-augment", help="Flip, scale/crop, colour jitter.")] = True,
    seed: Annotated[
        int, typer.Option(help="Seeds the weights, the augmentation and the batches' order: a run repeats with it.")
    ] = 0,
    resume: Annotated[bool, typer.Option("--resume", help="Continue an interrupted run in --out.")] = False,
    backend: Annotated[
        BackendChoice | None,
        typer.Option(
            help="Keras' backend: tensorflow, jax or torch (default: KERAS_BACKEND, else tensorflow). jax and torch "
            "train without TensorFlow, which only convert then needs; the model.keras is the same."
        ),
    ] = None,
    strategy: Annotated[
        StrategyChoice,
        typer.Option(
            help="auto (data parallel over several GPUs, else one device), none, mirrored (tensorflow, jax), or "
            "multiworker (tensorflow; reads TF_CONFIG; every worker runs the same command with the same --out). "
            "--batch-size is per replica."
        ),
    ] = StrategyChoice.auto,
    mixed_precision: Annotated[
        bool | None,
        typer.Option(
            "--mixed-precision/--no-mixed-precision",
            help="bfloat16 (GPUs of compute capability >= 8.0, and CPUs) or float16 (7.x) compute with float32 "
            "logits and loss (default: on for GPUs of compute capability >= 7.0, off on the CPU).",
        ),
    ] = None,
    jit_compile: Annotated[
        bool | None,
        typer.Option(
            "--jit-compile/--no-jit-compile",
            help="Compile the training step with XLA (default: on for jax, which needs it to be fast; off for "
            "tensorflow, measured slower on CPUs here, and torch).",
        ),
    ] = None,
) -> None:
    """Train a MobileNet U-Net. Keeps the best checkpoint by validation mIoU; --resume continues a run."""
    writable(folders=(out,))
    from dataclasses import replace

    from edgeseg.errors import EdgesegError
    from edgeseg.training.backends import select_backend
    from edgeseg.training.config import CONFIG_FILE, Augment, TrainConfig, resolve_init  # no Keras yet

    chosen = select_backend(backend.value if backend else None)  # before anything imports Keras
    if chosen == "tensorflow":
        quiet_tensorflow()
    where = {
        "backend": chosen,
        "strategy": strategy.value,
        "mixed_precision": mixed_precision,
        "jit_compile": jit_compile,
    }

    saved = TrainConfig.load(out) if resume and (out / CONFIG_FILE).is_file() else None
    if data is None and saved is None:
        raise EdgesegError("train needs --data: a dataset folder, a COCO JSON or a pack")
    data_path = str(data) if data is not None else saved.data  # a resumed run's data may have moved

    def fresh() -> TrainConfig:  # the run the options on this command line describe
        arch = resolve_init(init)[1] if init else {}
        return TrainConfig(
            data=data_path,
            out=str(out),
            format=format.value,
            input_hw=parse_size(size, "--size") if size else arch.get("input_hw", (224, 224)),
            backbone=backbone.value if backbone else arch.get("backbone", "mobilenet_v2"),
            alpha=alpha if alpha is not None else arch.get("alpha", 1.0),
            decoder=decoder.value if decoder else arch.get("decoder", "base"),
            init=init,
            loss=loss.value,
            teacher=teacher,
            kd_weight=kd_weight,
            kd_temperature=kd_temperature,
            kd_mode=kd_mode.value,
            teacher_view=teacher_view.value,
            aux_weight=aux_weight,
            ema=ema,
            weights=weights,
            epochs=epochs,
            val_every=val_every,
            batch_size=batch_size,
            lr=lr,
            class_weights=class_weights,
            seed=seed,
            augment=Augment(scale=_range(scale_range, "--scale-range")) if augment else Augment.none(),
            val_data=str(val_data) if val_data else None,
            train_splits=_names(train_splits),
            hold_out=_names(hold_out),
            keep=keep.value,
            **where,
        )

    if saved is not None:
        cfg = replace(saved, data=data_path, **where)  # what it learns is saved; where it runs is this command's
        _refuse_changes(ctx, cfg, fresh)
        if _given(ctx, "val_every"):  # how often it is scored does not change what it learns
            cfg = replace(cfg, val_every=val_every)
    else:
        cfg = fresh()
    if not cfg.teacher:  # the distillation's options mean nothing without a teacher: said, not ignored
        for name in ("teacher_view", "kd_mode", "kd_weight", "kd_temperature"):
            if _given(ctx, name):
                flag = "--" + name.replace("_", "-")
                why = "this run was started without --teacher" if saved is not None else "give --teacher"
                raise EdgesegError(f"{flag}: there is no teacher to distil from ({why})")
    if saved is not None:
        typer.echo(f"resuming {out} with its saved settings")
    from edgeseg.training.train import train as run_training

    result = run_training(cfg, resume=resume, log=typer.echo)
    kept = result["kept_val_miou"]
    typer.echo(
        f"kept the {result['kept']} epoch"
        + (f" (epoch {result['best_epoch']})" if "best_epoch" in result else "")
        + ("" if kept is None else f": val mIoU {kept:.4f}")
        + f"; best val mIoU {result['best_val_miou']:.4f}"
    )
    if result["role"] in ("single", "chief"):
        typer.echo(f"wrote {result['model']}, {result['spec']}, {result['history']}")
    else:
        typer.echo(f"{result['role']} done: the chief writes {result['model']}")


def _names(text: str | None) -> tuple[str, ...]:
    """A comma-separated option as a tuple of its non-empty names."""
    return tuple(n.strip() for n in (text or "").split(",") if n.strip())


def _range(text: str, what: str) -> tuple[float, float]:
    """'LOW,HIGH' -> (low, high), 0 < low <= high <= 4."""
    from edgeseg.errors import EdgesegError

    try:
        low, high = (float(v) for v in text.split(","))
    except ValueError:
        raise EdgesegError(f"{what}: expected LOW,HIGH like 0.5,2.0, got {text!r}") from None
    if not 0 < low <= high <= 4:
        raise EdgesegError(f"{what}: {low:g},{high:g} must satisfy 0 < LOW <= HIGH <= 4")
    return low, high


# What --resume may be given afresh: where the run is, how it runs and how often it is scored, not what it learns.
RESUME_MAY_SET = {"ctx", "data", "out", "resume", "backend", "strategy", "mixed_precision", "jit_compile", "val_every"}
# an option and the TrainConfig field it sets, where the names differ
OPTION_FIELDS = {"size": "input_hw", "scale_range": "augment"}


def _given(ctx: typer.Context, name: str) -> bool:
    """Whether the option was given on the command line (not left at its default). Compared by name: Typer may
    carry its own copy of click's ParameterSource."""
    source = ctx.get_parameter_source(name)
    return source is not None and source.name == "COMMANDLINE"


def _refuse_changes(ctx: typer.Context, cfg, fresh) -> None:
    """--resume continues a run as it was started: an option given on the command line that would change what
    it learns (its epochs, size, data splits...) is refused, naming the options, rather than silently ignored.
    An option repeated with the value the run was started with changes nothing and is accepted (`fresh()` is the
    config this command line describes)."""
    from edgeseg.errors import EdgesegError
    from edgeseg.training.config import PATH_FIELDS

    def same(field: str, a, b) -> bool:
        if field in PATH_FIELDS and isinstance(a, str) and isinstance(b, str):
            return a == b or Path(a).resolve() == Path(b).resolve()
        return _plain(a) == _plain(b)

    given = [name for name in ctx.params if name not in RESUME_MAY_SET and _given(ctx, name)]
    if given:
        field = {name: OPTION_FIELDS.get(name, name) for name in given}
        try:
            asked = fresh()
        except EdgesegError:
            asked = None  # the command line alone does not describe a run: every option given counts as a change
        given = [
            n for n in given if asked is None or not same(field[n], getattr(asked, field[n]), getattr(cfg, field[n]))
        ]
    if given:
        flags = ", ".join("--" + name.replace("_", "-") for name in given)
        raise EdgesegError(
            f"--resume continues {cfg.out} as it was started ({cfg.epochs} epochs at "
            f"{cfg.input_hw[1]}x{cfg.input_hw[0]}); {flags} would change it: start a new run, with "
            f"--init {Path(cfg.out) / 'model.keras'} to keep what it learnt"
        )


def _plain(v):
    """A config value compared as data: tuples and lists alike, dataclasses as their fields."""
    from dataclasses import asdict, is_dataclass

    if is_dataclass(v) and not isinstance(v, type):
        return _plain(asdict(v))
    if isinstance(v, list | tuple):
        return tuple(_plain(x) for x in v)
    if isinstance(v, dict):
        return {k: _plain(x) for k, x in v.items()}
    return v
