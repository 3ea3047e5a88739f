"""train: a dataset -> a run folder with model.keras (best val mIoU), spec.json and history.csv.

Keras does the loop, on whichever backend this process's Keras runs (edgeseg.training.backends): its progress
bar, its CSVLogger, its BackupAndRestore for --resume (the same epoch and optimizer state after an interruption).
Validation mIoU is computed each epoch by edgeseg's own ConfusionMatrix on frames prepared by
edgeseg.preprocess: the numbers `edgeseg eval` would print.
"""

# ruff: noqa: E402 - TensorFlow is imported quietly (edgeseg.quiet) before anything imports Keras
from __future__ import annotations

import contextlib
import json
import math
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

from edgeseg.training.quiet_tf import quiet_tensorflow

quiet_tensorflow()  # before Keras loads TensorFlow: its absl and oneDNN lines stay off a script's terminal too
import keras
import numpy as np

from edgeseg import signals
from edgeseg.errors import EdgesegError, OutputError
from edgeseg.io import atomic_write_text
from edgeseg.progress import progress_bar
from edgeseg.spec import ModelSpec
from edgeseg.training.backbones import DENSE_STEM
from edgeseg.training.backends import training_backend
from edgeseg.training.callbacks import (
    BestModel,
    SharedBackup,
    StopOnSignal,
    SwapAverage,
    Throughput,
    ValidationMIoU,
    backed_up_epoch,
)
from edgeseg.training.config import CONFIG_FILE, TrainConfig, parse_class_weights
from edgeseg.training.data import TrainingBatches, load_all, median_frequency_weights
from edgeseg.training.model import build_unet, transfer_weights
from edgeseg.training.protocol import make_protocol
from edgeseg.training.runfolder import best_so_far, check_run_folder, last_val, run_lock, trim_history
from edgeseg.training.stem import fit_dense_stem

__all__ = ["CONFIG_FILE", "TrainConfig", "train"]

FEW_STEPS = 4  # fewer optimizer steps than this per epoch get a note


def _class_weights(cfg: TrainConfig, masks, n: int) -> np.ndarray | None:
    weights = parse_class_weights(cfg.class_weights)
    if weights == "none":
        return None
    if weights == "median":
        return median_frequency_weights(masks, n)
    if len(weights) != n:
        raise EdgesegError(f"class weights: {len(weights)} values for {n} classes")
    return np.array(weights)


@dataclass
class TrainData:
    """A run's data, read once: the spec it implies, the train pairs (RGB) and the val frames (BGR) with masks."""

    spec: ModelSpec
    images: list
    masks: list
    val_frames: list
    val_masks: list
    val_ignore: int | None
    keep: str = "best"  # which epoch model.keras holds: "best" by val mIoU, or "last"


def load_train_data(cfg: TrainConfig, log: Callable[[str], None]) -> TrainData:
    """The run's data, read once: train and val splits, their classes checked to agree, and the spec they imply."""
    protocol = make_protocol(
        Path(cfg.data),
        cfg.format,
        tuple(cfg.train_splits),
        tuple(cfg.hold_out),
        Path(cfg.val_data) if cfg.val_data else None,
        cfg.keep,
    )
    train_ds, val_ds = protocol.train, protocol.val
    spec = ModelSpec(
        input_hw=tuple(cfg.input_hw),
        classes=train_ds.classes,
        colours=train_ds.colours or (),
        ignore_index=train_ds.ignore_index,
        backbone=f"{cfg.backbone}_{cfg.alpha:g}",
        decoder=cfg.decoder,
        train_data=os.path.relpath(Path(cfg.data).resolve(), Path(cfg.out).resolve()),  # see ModelSpec.train_data
        dataset_format=train_ds.format,
        extra={"protocol": protocol.to_dict()},
    )
    log(f"data: {spec.num_classes} classes ({train_ds.format} layout at {cfg.data}); {protocol.note}")
    images, masks = load_all(train_ds, progress_bar("reading train"))
    val = [val_ds.read(i) for i in range(len(val_ds))]
    return TrainData(spec, images, masks, [f for f, _ in val], [m for _, m in val], val_ds.ignore_index, protocol.keep)


def compiled_model(
    cfg: TrainConfig,
    num_classes: int,
    steps: int,
    log: Callable[[str], None] = print,
    jit: bool | None = None,
    stem: dict | None = None,
):
    """The U-Net (started from cfg.init's weights where they fit) with AdamW on a cosine schedule (one warm-up
    epoch) and the logits' cross-entropy (or an Objective for OHEM, distillation or an auxiliary head). Build it in
    the strategy's scope.

    Args:
        cfg: the run's settings.
        num_classes: the dataset's classes.
        steps: optimizer steps per epoch (the schedule's unit).
        log: where the init and teacher lines go.
        jit: compile the step with XLA (None: cfg.jit_compile, else the backend's default).
        stem: the dense stem's fitted weights (edgeseg.training.stem.fit_dense_stem), layer name -> weights.
    """
    if jit is None:
        jit = cfg.jit_compile if cfg.jit_compile is not None else training_backend().jit_default
    total = steps * cfg.epochs
    warmup = min(steps * cfg.warmup_epochs, total // 2)
    schedule = keras.optimizers.schedules.CosineDecay(
        initial_learning_rate=cfg.lr * 0.1 if warmup else cfg.lr,
        decay_steps=max(1, total - warmup),
        alpha=0.01,
        warmup_target=cfg.lr if warmup else None,
        warmup_steps=warmup,
    )
    model = build_unet(num_classes, cfg.input_hw, cfg.backbone, cfg.alpha, cfg.decoder, cfg.weights)
    for name, values in (stem or {}).items():
        model.get_layer(name).set_weights(values)
    if cfg.init:
        from edgeseg.predictors.keras import load_keras
        from edgeseg.training.config import resolve_init

        path, _ = resolve_init(cfg.init)
        copied, rebuilt = transfer_weights(load_keras(path), model)
        if not copied:
            raise EdgesegError(f"--init {cfg.init}: no layer of {path.name} fits this network")
        log(f"init: {copied} layers from {path.name}" + (f"; built afresh: {', '.join(rebuilt)}" if rebuilt else ""))
    optimizer = keras.optimizers.AdamW(
        learning_rate=schedule,
        weight_decay=cfg.weight_decay,
        use_ema=bool(cfg.ema),  # the average lives in the optimizer's state, so the backup holds it too
        ema_momentum=cfg.ema or 0.99,
    )
    if cfg.loss == "ce" and not cfg.teacher and not cfg.aux_weight:
        model.compile(
            optimizer=optimizer,
            loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
            jit_compile=jit,
        )
        return model
    from edgeseg.training.objective import Objective

    teacher = load_teacher(cfg.teacher, num_classes, log) if cfg.teacher else None
    wrapped = Objective(model, cfg.loss, teacher, cfg.kd_weight, cfg.kd_temperature, cfg.aux_weight, cfg.kd_mode)
    wrapped(np.zeros((1, *cfg.input_hw, 3), np.float32))  # built, as BackupAndRestore needs it before fit()
    wrapped.compile(optimizer=optimizer, jit_compile=jit)
    return wrapped


def load_teacher(name: str, num_classes: int, log: Callable[[str], None]):
    """--teacher's model (a shipped name or a .keras file with its spec), checked to predict the same classes."""
    from edgeseg.predictors.keras import load_keras
    from edgeseg.training.config import resolve_init

    path, arch = resolve_init(name)
    teacher = load_keras(path)
    if teacher.outputs[0].shape[-1] != num_classes:
        raise EdgesegError(
            f"--teacher {name}: it predicts {teacher.outputs[0].shape[-1]} classes, this dataset has {num_classes}"
        )
    h, w = arch["input_hw"]
    log(f"distilling from {path.name} ({w}x{h}, {teacher.count_params():,} parameters)")
    return teacher


def float32_copy(model, cfg: TrainConfig, num_classes: int):
    """The same network and weights under the float32 policy: what a mixed-precision run exports, so the .keras
    file (and the .tflite made from it) is the same whatever the strategy and precision of training."""
    policy = keras.config.dtype_policy()
    keras.config.set_dtype_policy("float32")
    try:
        copy = build_unet(num_classes, cfg.input_hw, cfg.backbone, cfg.alpha, cfg.decoder, weights=None)
    finally:
        keras.config.set_dtype_policy(policy)
    copy.set_weights(model.get_weights())
    return copy


def train(
    cfg: TrainConfig, resume: bool = False, log: Callable[[str], None] = print, callbacks: list | None = None
) -> dict:
    """Train per cfg into cfg.out: model.keras (best val mIoU), spec.json, history.csv, config.json.

    Under --strategy multiworker every worker runs the same command with the same --out (a shared file
    system): the chief writes model.keras, spec.json, history.csv and the backup; the other workers write theirs
    into a temporary folder, and a restarted worker continues from the chief's backup.

    Args:
        cfg: the run's settings.
        resume: continue the run in cfg.out from its backup.
        log: where progress lines go.
        callbacks: Keras callbacks to run after edgeseg's own (the tests interrupt runs with them).
    """
    out = Path(cfg.out)
    backend = training_backend()
    if cfg.backend and cfg.backend != backend.name:
        raise EdgesegError(
            f"backend {cfg.backend}: Keras runs on {backend.name} in this process; start a new one with "
            f"KERAS_BACKEND={cfg.backend}"
        )
    dist = backend.distribution(cfg.strategy, log)
    log(f"backend {backend.name}; {dist.describe()}")
    with run_lock(out) if dist.is_chief else contextlib.nullcontext():
        return _train_locked(cfg, dist, out, resume, log, callbacks)


def _train_locked(cfg, dist, out: Path, resume: bool, log, callbacks) -> dict:
    check_run_folder(out, "auto" if dist.name == "multiworker" else resume, log)
    resume = resume or (dist.name == "multiworker" and (out / "backup").exists())
    mixed = training_backend().mixed_policy(cfg.mixed_precision)
    if mixed:
        log(f"mixed precision: {mixed} compute, float32 logits and loss")
    out.mkdir(parents=True, exist_ok=True)
    work = out if dist.is_chief else Path(tempfile.mkdtemp(prefix=f"edgeseg-worker{dist.task_index}-"))
    try:
        return _fit(cfg, dist, mixed, out, work, resume, log, callbacks)
    except Exception as e:
        if dist.name != "multiworker" or not training_backend().is_cluster_error(e):
            raise
        first = (str(e).strip().splitlines() or [type(e).__name__])[0][:200]
        raise EdgesegError(
            f"{dist.role}: the cluster lost a worker ({type(e).__name__}: {first}); start every worker again with "
            "the same command: the run continues from the last epoch the chief backed up"
        ) from None
    finally:
        if work != out:
            shutil.rmtree(work, ignore_errors=True)


def _fit(cfg, dist, mixed: str | None, out: Path, work: Path, resume: bool, log, extra_callbacks) -> dict:
    history = work / "history.csv"
    keras.utils.set_random_seed(cfg.seed)
    data = load_train_data(cfg, log)
    spec = data.spec
    weights = _class_weights(cfg, data.masks, spec.num_classes)
    if weights is not None:
        log("class weights: " + ", ".join(f"{c} {w:.2f}" for c, w in zip(spec.classes, weights, strict=True)))
    global_batch = cfg.batch_size * dist.replicas  # --batch-size is per replica
    first_epoch = backed_up_epoch(out / "backup") if resume else 0
    batches = TrainingBatches(
        data.images,
        data.masks,
        cfg.input_hw,
        spec.num_classes,
        global_batch,
        cfg.augment,
        weights,
        cfg.seed,
        first_epoch,
    )
    steps = len(batches)
    if dist.replicas > 1:
        log(f"batch {cfg.batch_size} per replica, {global_batch} global; {steps} steps per epoch; lr {cfg.lr:g}")
    if steps < FEW_STEPS:
        log(
            f"note: {len(data.images)} training frames at batch {global_batch} make {steps} step(s) per epoch; "
            "the schedule and the validation score move in coarse steps (a smaller --batch-size gives more)"
        )
    log(f"each epoch logs its seconds, images per second and the {training_backend().peak_memory()[0]} memory peak")
    stem = None
    if cfg.backbone == DENSE_STEM and cfg.weights not in (None, "none") and not resume:
        # the new stem learns what the ImageNet one hands the pretrained rest, before the rest trains on it
        bar = progress_bar("fitting the dense stem")
        stem = fit_dense_stem(data.images, cfg.input_hw, cfg.alpha, cfg.weights, cfg.seed, log=log, progress=bar)
    previous_policy = keras.config.dtype_policy()
    if mixed:
        keras.config.set_dtype_policy(mixed)
    try:
        with dist.scope():
            model = compiled_model(cfg, spec.num_classes, steps, log, stem=stem)
        training_backend().prepare(model, dist)
    finally:
        keras.config.set_dtype_policy(previous_policy)
    if cfg.teacher and cfg.teacher_view == "frame":  # the teacher's own view of each crop, at its input size
        batches.teacher_hw = tuple(model.teacher.inputs[0].shape[1:3])
    if dist.is_chief:
        atomic_write_text(out / CONFIG_FILE, json.dumps(cfg.to_dict(relative_to=out), indent=2) + "\n")
        spec.save(out / "spec.json")
    if not resume and history.exists():
        history.unlink()
    elif resume:  # rows of epochs the backup does not hold (killed after the row, before the backup): gone
        trim_history(history, first_epoch)

    best_epoch = {}

    def saved(epoch: int, value: float) -> None:
        best_epoch.update(epoch=epoch, val_miou=value)

    def export(m):  # what model.keras holds: the network alone (not an Objective around it), in float32
        net = getattr(m, "student", m)
        return float32_copy(net, cfg, spec.num_classes) if mixed else net

    scoring = (data.val_frames, data.val_masks, spec, data.val_ignore, cfg.val_every, cfg.batch_size)
    # --ema: the training weights are scored too (raw_val_miou), so that one run says what the average bought;
    # then the same swap twice, around validation and model.keras, which see the averaged weights
    raw = [ValidationMIoU(*scoring, prefix="raw_val")] if cfg.ema else []
    swap = [SwapAverage()] if cfg.ema else []
    callbacks = [
        Throughput(steps * global_batch, training_backend().peak_memory),  # first: times the steps alone
        *raw,
        *swap,
        ValidationMIoU(*scoring),
        BestModel(work / "model.keras", best_so_far(history) if resume else -math.inf, saved, export, data.keep),
        *swap,  # the training weights are back before the backup is written
        keras.callbacks.CSVLogger(str(history), append=True),
        SharedBackup(str(out / "backup"), dist.is_chief),
        keras.callbacks.TerminateOnNaN(),
        *(extra_callbacks or []),
        StopOnSignal(),  # last: an epoch's backup is saved before a signal ends the run
    ]
    t0 = time.perf_counter()
    with signals.deferred(), dist.scope() if training_backend().scope_covers_fit else contextlib.nullcontext():
        try:
            # a bar on a terminal, one line an epoch in a log file (no per-step lines with terminal codes)
            verbose = 1 if sys.stdout.isatty() else 2
            model.fit(batches, epochs=cfg.epochs, callbacks=callbacks, verbose=verbose, shuffle=False)  # it shuffles
        except OSError as e:  # a full disk under Keras' own writers (history.csv)
            raise OutputError(
                f"{out}: cannot write ({e.strerror or e}); --resume continues from the last whole epoch"
            ) from None
    seconds = time.perf_counter() - t0
    if not (work / "model.keras").exists():
        raise EdgesegError("training produced no model (validation mIoU was never a number)")
    best = best_so_far(history)
    kept = best if data.keep == "best" else last_val(history)
    if dist.is_chief:
        replace(spec, val_miou=kept).save(out / "spec.json")
    return {
        "run": str(out),
        "model": str(out / "model.keras"),
        "spec": str(out / "spec.json"),
        "history": str(out / "history.csv"),
        "best_val_miou": best,
        "kept": data.keep,
        "kept_val_miou": kept,
        "seconds_this_session": round(seconds, 1),
        "role": dist.role,
        "replicas": dist.replicas,
        **({"best_epoch": best_epoch["epoch"]} if best_epoch else {}),
    }
