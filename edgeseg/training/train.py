"""train: a dataset -> a run folder with model.keras (best val mIoU), spec.json and history.csv.

Keras does the loop: its progress bar, its CSVLogger, its BackupAndRestore for --resume (the same epoch and
optimizer state after an interruption). Validation mIoU is computed each epoch by edgeseg's own
ConfusionMatrix on frames prepared by edgeseg.preprocess: the numbers `edgeseg eval` would print.
"""

from __future__ import annotations

import csv
import json
import math
import os
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path

import keras
import numpy as np

from edgeseg import signals
from edgeseg.datasets import open_dataset
from edgeseg.errors import EdgesegError
from edgeseg.io import atomic_path, atomic_write_text
from edgeseg.metrics import ConfusionMatrix
from edgeseg.postprocess import OutputKind, index_mask
from edgeseg.preprocess import FLOAT_INPUT, preprocess, restore_mask
from edgeseg.progress import progress_bar
from edgeseg.spec import ModelSpec
from edgeseg.training.data import Augment, load_all, median_frequency_weights, train_pipeline
from edgeseg.training.distribute import fix_keras_multiworker, make_distribution, wants_mixed_precision
from edgeseg.training.model import build_unet

SCORES_DETAIL = {"dtype": np.float32, "quantization": (0.0, 0)}  # the float logits' output, for index_mask
CONFIG_FILE = "config.json"  # the settings a run started with, beside model.keras


@dataclass
class TrainConfig:
    data: str
    out: str
    format: str = "auto"
    input_hw: tuple[int, int] = (224, 224)
    backbone: str = "mobilenet_v2"
    alpha: float = 1.0
    decoder: str = "base"
    weights: str | None = None
    epochs: int = 30
    batch_size: int = 8
    lr: float = 2e-3
    weight_decay: float = 1e-4
    warmup_epochs: int = 1
    class_weights: str = "none"  # none | median | comma-separated list
    augment: Augment = field(default_factory=Augment)
    seed: int = 0
    val_data: str | None = None
    val_every: int = 1
    strategy: str = "auto"  # auto | none | mirrored | multiworker (edgeseg.training.distribute)
    mixed_precision: bool | None = None  # None: on for GPUs of compute capability >= 7.0
    jit_compile: bool = False  # XLA: slower on the CPUs measured here, so off unless asked for

    def to_dict(self) -> dict:
        d = asdict(self)
        d["input_hw"] = list(self.input_hw)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> TrainConfig:
        """The inverse of to_dict (JSON lists back to tuples); unknown or missing keys are an EdgesegError."""
        known = {f.name for f in fields(cls)}
        if not isinstance(d, dict) or set(d) - known:
            extra = sorted(set(d) - known) if isinstance(d, dict) else []
            raise EdgesegError(
                f"training settings: unknown keys {extra}" if extra else "training settings: not a JSON object"
            )
        d = dict(d)
        if "input_hw" in d:
            d["input_hw"] = tuple(d["input_hw"])
        if isinstance(d.get("augment"), dict):
            d["augment"] = Augment(**{k: tuple(v) if isinstance(v, list) else v for k, v in d["augment"].items()})
        try:
            return cls(**d)
        except TypeError as e:
            raise EdgesegError(f"training settings: {e}") from None

    @classmethod
    def load(cls, run_dir: Path) -> TrainConfig:
        """The settings a run in `run_dir` was started with (its config.json), for --resume."""
        path = Path(run_dir) / CONFIG_FILE
        if not path.is_file():
            raise EdgesegError(f"{run_dir}: nothing to resume (no {CONFIG_FILE})")
        try:
            d = json.loads(path.read_text())
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
            raise EdgesegError(f"{path}: unreadable ({e})") from None
        try:
            return cls.from_dict(d)
        except EdgesegError as e:
            raise EdgesegError(f"{path}: {e}") from None


class StopOnSignal(keras.callbacks.Callback):
    """Ctrl-C or SIGTERM ends training between batches or after the epoch's callbacks, never inside
    BackupAndRestore's checkpoint write: a signal there used to leave a checkpoint that --resume cannot load."""

    def on_train_batch_end(self, batch, logs=None):
        signals.raise_pending()

    def on_epoch_end(self, epoch, logs=None):
        signals.raise_pending()


class ValidationMIoU(keras.callbacks.Callback):
    """Adds val_miou and val_pixel_accuracy to the epoch logs (before the checkpoint and CSV callbacks)."""

    def __init__(self, frames, masks, spec: ModelSpec, ignore_index, every: int = 1, batch_size: int = 8):
        super().__init__()
        self.frames, self.masks, self.spec = frames, masks, spec
        self.ignore_index, self.every, self.batch_size = ignore_index, every, batch_size
        self.last: dict = {}

    def evaluate(self) -> dict:
        cm = ConfusionMatrix(self.spec.num_classes, self.ignore_index)
        for start in range(0, len(self.frames), self.batch_size):
            chunk = self.frames[start : start + self.batch_size]
            prepared = [preprocess(f, self.spec, FLOAT_INPUT) for f in chunk]
            x = np.concatenate([t for t, _ in prepared])
            logits = np.asarray(self.model(x, training=False))
            for k, (_, geom) in enumerate(prepared):
                pred = restore_mask(index_mask(logits[k : k + 1], SCORES_DETAIL, OutputKind.SCORES), geom)
                cm.update(self.masks[start + k], pred)
        return {"val_miou": cm.miou(), "val_pixel_accuracy": cm.pixel_accuracy()}

    def on_epoch_end(self, epoch, logs=None):
        if logs is None:
            return
        if (epoch + 1) % self.every == 0 or epoch + 1 == self.params.get("epochs"):
            self.last = self.evaluate()
        logs.update(self.last or {"val_miou": float("nan"), "val_pixel_accuracy": float("nan")})
        print(f" - val_miou: {logs['val_miou']:.4f} - val_pixel_accuracy: {logs['val_pixel_accuracy']:.4f}")


class BestModel(keras.callbacks.Callback):
    """Keeps model.keras at the best val_miou so far, written atomically (a temp file, then a rename)."""

    def __init__(
        self,
        path: Path,
        best: float = -math.inf,
        on_save: Callable[[int, float], None] | None = None,
        export: Callable | None = None,
    ):
        super().__init__()
        self.path, self.best, self.on_save, self.export = Path(path), best, on_save, export

    def on_epoch_end(self, epoch, logs=None):
        value = (logs or {}).get("val_miou", float("nan"))
        if not math.isnan(value) and value > self.best:
            self.best = value
            with atomic_path(self.path, suffix=".keras") as tmp:
                (self.export(self.model) if self.export else self.model).save(tmp)
            if self.on_save:
                self.on_save(epoch + 1, value)


class SharedBackup(keras.callbacks.BackupAndRestore):
    """BackupAndRestore for a run whose workers share --out: every worker restores from the chief's backup (the
    replicas hold the same weights), and only the chief writes or deletes it."""

    def __init__(self, backup_dir: str, is_chief: bool):
        super().__init__(backup_dir, save_freq="epoch", delete_checkpoint=True)
        self.is_chief = is_chief

    def _save_model(self):
        if self.is_chief:
            super()._save_model()

    def on_train_end(self, logs=None):
        if self.is_chief:
            super().on_train_end(logs)


def _best_so_far(history: Path) -> float:
    best = -math.inf
    if history.is_file():
        with history.open() as f:
            for row in csv.DictReader(f):
                try:
                    v = float(row.get("val_miou", "nan"))
                except ValueError:
                    continue
                if not math.isnan(v):
                    best = max(best, v)
    return best


def _class_weights(cfg: TrainConfig, masks, n: int) -> np.ndarray | None:
    if cfg.class_weights in ("none", "", None):
        return None
    if cfg.class_weights == "median":
        return median_frequency_weights(masks, n)
    try:
        w = np.array([float(v) for v in cfg.class_weights.split(",")])
    except ValueError:
        raise EdgesegError(f"class weights: expected none, median or {n} numbers, got {cfg.class_weights!r}") from None
    if len(w) != n:
        raise EdgesegError(f"class weights: {len(w)} values for {n} classes")
    return w


@dataclass
class TrainData:
    """A run's data, read once: the spec it implies, the train pairs (RGB) and the val frames (BGR) with masks."""

    spec: ModelSpec
    images: list
    masks: list
    val_frames: list
    val_masks: list
    val_ignore: int | None


def check_run_folder(out: Path, resume: bool | str, log: Callable[[str], None]) -> None:
    """Refuse to overwrite a run, or to resume one that is not there or has finished."""
    backup = out / "backup"
    if resume == "auto":  # multi-worker: the same command starts a run, or continues it after a restart
        if (out / "model.keras").exists() and not backup.exists():
            raise EdgesegError(f"{out}: this run already finished (model.keras is there, no backup to resume)")
        if backup.exists():
            log("a backup is there: continuing the run from its last epoch")
        return
    if out.exists() and any(out.iterdir()) and not resume:
        if backup.exists() or (out / "model.keras").exists():
            raise EdgesegError(f"{out} already holds a run: use --resume to continue it, or another --out")
    if resume:
        if not (out / CONFIG_FILE).is_file():
            raise EdgesegError(f"{out}: nothing to resume (no {CONFIG_FILE})")
        if not backup.exists():
            if (out / "model.keras").exists():
                raise EdgesegError(f"{out}: this run already finished (model.keras is there, no backup to resume)")
            log("no backup found: starting from epoch 1")


def load_train_data(cfg: TrainConfig, log: Callable[[str], None]) -> TrainData:
    train_ds = open_dataset(Path(cfg.data), "train", cfg.format)
    val_ds = open_dataset(Path(cfg.val_data or cfg.data), "val", cfg.format)
    if val_ds.num_classes != train_ds.num_classes:
        raise EdgesegError(f"train has {train_ds.num_classes} classes but val has {val_ds.num_classes}")
    spec = ModelSpec(
        input_hw=tuple(cfg.input_hw),
        classes=train_ds.classes,
        colours=train_ds.colours or (),
        ignore_index=train_ds.ignore_index,
        backbone=f"{cfg.backbone}_{cfg.alpha:g}",
        decoder=cfg.decoder,
        train_data=os.path.relpath(Path(cfg.data).resolve(), Path(cfg.out).resolve()),  # see ModelSpec.train_data
        dataset_format=train_ds.format,
    )
    log(
        f"data: {len(train_ds)} train / {len(val_ds)} val images, {spec.num_classes} classes "
        f"({train_ds.format} layout at {cfg.data})"
    )
    images, masks = load_all(train_ds, progress_bar("reading train", force=True))
    val = [val_ds.read(i) for i in range(len(val_ds))]
    return TrainData(spec, images, masks, [f for f, _ in val], [m for _, m in val], val_ds.ignore_index)


def compiled_model(cfg: TrainConfig, num_classes: int, steps: int):
    """The U-Net with AdamW on a cosine schedule (one warm-up epoch) and the logits' cross-entropy. Build it in
    the strategy's scope."""
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
    model.compile(
        optimizer=keras.optimizers.AdamW(learning_rate=schedule, weight_decay=cfg.weight_decay),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        jit_compile=cfg.jit_compile,  # XLA on CPU: 2x longer first step and 4x slower steps here
    )
    return model


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
    """Train per cfg into cfg.out. `callbacks` run after edgeseg's own (used by tests to interrupt a run).

    Under --strategy multiworker every worker runs the same command with the same --out (a shared file
    system): the chief writes model.keras, spec.json, history.csv and the backup; the other workers write theirs
    into a temporary folder, and a restarted worker continues from the chief's backup."""
    out = Path(cfg.out)
    dist = make_distribution(cfg.strategy)
    log(dist.describe())
    check_run_folder(out, "auto" if dist.name == "multiworker" else resume, log)
    resume = resume or (dist.name == "multiworker" and (out / "backup").exists())
    mixed = wants_mixed_precision(cfg.mixed_precision)
    if mixed:
        log("mixed precision: mixed_float16 compute, float32 logits and loss")
    out.mkdir(parents=True, exist_ok=True)
    work = out if dist.is_chief else Path(tempfile.mkdtemp(prefix=f"edgeseg-worker{dist.task_index}-"))
    try:
        return _fit(cfg, dist, mixed, out, work, resume, log, callbacks)
    except Exception as e:
        if dist.name != "multiworker" or not _is_cluster_error(e):
            raise
        first = (str(e).strip().splitlines() or [type(e).__name__])[0][:200]
        raise EdgesegError(
            f"{dist.role}: the cluster lost a worker ({type(e).__name__}: {first}); start every worker again with "
            "the same command: the run continues from the last epoch the chief backed up"
        ) from None
    finally:
        if work != out:
            shutil.rmtree(work, ignore_errors=True)


def _is_cluster_error(e: BaseException) -> bool:
    """A collective op failed because a peer is gone (UnavailableError and its kin, as TensorFlow reports it)."""
    import tensorflow as tf

    return isinstance(e, tf.errors.OpError) and not isinstance(e, tf.errors.InvalidArgumentError)


def _fit(cfg, dist, mixed: bool, out: Path, work: Path, resume: bool, log, extra_callbacks) -> dict:
    history = work / "history.csv"
    keras.utils.set_random_seed(cfg.seed)
    data = load_train_data(cfg, log)
    spec = data.spec
    weights = _class_weights(cfg, data.masks, spec.num_classes)
    if weights is not None:
        log("class weights: " + ", ".join(f"{c} {w:.2f}" for c, w in zip(spec.classes, weights, strict=True)))
    global_batch = cfg.batch_size * dist.replicas  # --batch-size is per replica
    pipeline = train_pipeline(
        data.images, data.masks, cfg.input_hw, spec.num_classes, global_batch, cfg.augment, weights, cfg.seed
    )
    steps = max(1, len(data.images) // global_batch)
    if dist.replicas > 1:
        log(f"batch {cfg.batch_size} per replica, {global_batch} global; {steps} steps per epoch; lr {cfg.lr:g}")
    previous_policy = keras.config.dtype_policy()
    if mixed:
        keras.config.set_dtype_policy("mixed_float16")
    try:
        with dist.strategy.scope():
            model = compiled_model(cfg, spec.num_classes, steps)
        if dist.name == "multiworker":
            fix_keras_multiworker(model)
    finally:
        keras.config.set_dtype_policy(previous_policy)
    if dist.is_chief:
        atomic_write_text(out / CONFIG_FILE, json.dumps(cfg.to_dict(), indent=2) + "\n")
        spec.save(out / "spec.json")
    if not resume and history.exists():
        history.unlink()

    best_epoch = {}

    def saved(epoch: int, value: float) -> None:
        best_epoch.update(epoch=epoch, val_miou=value)

    export = (lambda m: float32_copy(m, cfg, spec.num_classes)) if mixed else None
    callbacks = [
        ValidationMIoU(data.val_frames, data.val_masks, spec, data.val_ignore, cfg.val_every, cfg.batch_size),
        BestModel(work / "model.keras", _best_so_far(history) if resume else -math.inf, saved, export),
        keras.callbacks.CSVLogger(str(history), append=True),
        SharedBackup(str(out / "backup"), dist.is_chief),
        keras.callbacks.TerminateOnNaN(),
        *(extra_callbacks or []),
        StopOnSignal(),  # last: an epoch's backup is saved before a signal ends the run
    ]
    t0 = time.perf_counter()
    with signals.deferred():
        model.fit(
            pipeline, epochs=cfg.epochs, steps_per_epoch=steps, callbacks=callbacks, verbose="auto", shuffle=False
        )  # tf.data shuffles
    seconds = time.perf_counter() - t0
    if not (work / "model.keras").exists():
        raise EdgesegError("training produced no model (validation mIoU was never a number)")
    best = _best_so_far(history)
    if dist.is_chief:
        replace(spec, val_miou=best).save(out / "spec.json")
    return {
        "run": str(out),
        "model": str(out / "model.keras"),
        "spec": str(out / "spec.json"),
        "history": str(out / "history.csv"),
        "best_val_miou": best,
        "seconds_this_session": round(seconds, 1),
        "role": dist.role,
        "replicas": dist.replicas,
        **({"best_epoch": best_epoch["epoch"]} if best_epoch else {}),
    }
