"""The Keras callbacks edgeseg trains with: validation mIoU by edgeseg's own metrics, the best model kept
atomically, a backup shared by a cluster's workers, and signals that stop training only at safe points."""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Callable
from pathlib import Path

import keras
import numpy as np

from edgeseg import signals
from edgeseg.errors import OutputError
from edgeseg.io import atomic_path, atomic_write_text
from edgeseg.metrics import ConfusionMatrix
from edgeseg.postprocess import OutputKind, index_mask
from edgeseg.preprocess import preprocess, restore_mask
from edgeseg.spec import ModelSpec
from edgeseg.tensors import FLOAT_INPUT, float_tensor

LOGITS = float_tensor("logits", (1, None, None, None))  # the float logits' output, for index_mask


class StopOnSignal(keras.callbacks.Callback):
    """Ctrl-C or SIGTERM ends training between batches or after the epoch's callbacks, never inside
    BackupAndRestore's checkpoint write: a signal there used to leave a checkpoint that --resume cannot load."""

    def on_train_batch_end(self, batch, logs=None):
        """Stop here if Ctrl-C or SIGTERM came during the batch."""
        signals.raise_pending()

    def on_epoch_end(self, epoch, logs=None):
        """Stop here if a signal came during the epoch's callbacks (after the backup is written)."""
        signals.raise_pending()


class ValidationMIoU(keras.callbacks.Callback):
    """Adds val_miou and val_pixel_accuracy to the epoch logs (before the checkpoint and CSV callbacks).

    Args:
        frames: the validation frames (BGR).
        masks: their masks.
        spec: the model's spec (its preprocessing).
        ignore_index: the label value that is not scored.
        every: score every this many epochs (and the last).
        batch_size: frames per forward pass.
        prefix: the logs' keys start with it: "val" (val_miou), or "raw_val" for the training weights of a run
            that keeps a moving average of them.
    """

    def __init__(
        self, frames, masks, spec: ModelSpec, ignore_index, every: int = 1, batch_size: int = 8, prefix: str = "val"
    ):
        super().__init__()
        self.frames, self.masks, self.spec = frames, masks, spec
        self.ignore_index, self.every, self.batch_size = ignore_index, every, batch_size
        self.prefix = prefix
        self.last: dict = {}

    def evaluate(self) -> dict:
        """mIoU and pixel accuracy of the model as it is now, on the validation frames, scored as `edgeseg eval`
        scores."""
        cm = ConfusionMatrix(self.spec.num_classes, self.ignore_index)
        for start in range(0, len(self.frames), self.batch_size):
            chunk = self.frames[start : start + self.batch_size]
            prepared = [preprocess(f, self.spec, FLOAT_INPUT) for f in chunk]
            x = np.concatenate([t for t, _ in prepared])
            logits = keras.ops.convert_to_numpy(self.model(x, training=False))  # from any backend's device
            for k, (_, geom) in enumerate(prepared):
                pred = restore_mask(index_mask(logits[k : k + 1], LOGITS, OutputKind.SCORES), geom)
                cm.update(self.masks[start + k], pred)
        return {f"{self.prefix}_miou": cm.miou(), f"{self.prefix}_pixel_accuracy": cm.pixel_accuracy()}

    def on_epoch_end(self, epoch, logs=None):
        """Score the epoch into the logs; between scored epochs the scores are NaN (history.csv's "nan"), not the
        last score repeated, which a reader of the history would take for a measurement."""
        if logs is None:
            return
        miou, accuracy = f"{self.prefix}_miou", f"{self.prefix}_pixel_accuracy"
        if (epoch + 1) % self.every == 0 or epoch + 1 == self.params.get("epochs"):
            self.last = self.evaluate()
            logs.update(self.last)
        else:
            logs.update({miou: float("nan"), accuracy: float("nan")})  # Keras' epoch line shows them


class Throughput(keras.callbacks.Callback):
    """Each epoch's training time, images per second and peak memory, added to the epoch's logs: Keras' progress
    line prints them as training goes, and history.csv keeps them (epoch_seconds, images_per_second,
    peak_memory_mib). First in the callback list, so the time is the optimizer steps' alone, without validation
    or saving. The first epoch's time includes tracing or compiling the step.

    Args:
        images_per_epoch: the frames one epoch's steps see (steps x global batch).
        peak_memory: () -> (where, bytes): the training device's peak memory (TrainingBackend.peak_memory).
    """

    def __init__(self, images_per_epoch: int, peak_memory: Callable[[], tuple[str, int]]):
        super().__init__()
        self.images, self.peak_memory = images_per_epoch, peak_memory
        self.t0 = time.perf_counter()

    def on_epoch_begin(self, epoch, logs=None):
        """Start the epoch's clock."""
        self.t0 = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        """Stop the clock; put the epoch's throughput into its logs."""
        seconds = time.perf_counter() - self.t0
        if logs is not None:
            logs.update(epoch_seconds=round(seconds, 2), images_per_second=round(self.images / max(seconds, 1e-9), 2))
            logs.update(peak_memory_mib=round(self.peak_memory()[1] / 2**20, 1))


def backed_up_epoch(backup: Path) -> int:
    """The epoch a run resumes at: the count BackupAndRestore (SharedBackup) last wrote, 0 without one."""
    try:
        epoch = json.loads((Path(backup) / "training_metadata.json").read_text()).get("epoch", 0)
    except (OSError, ValueError, AttributeError):
        return 0
    return epoch if isinstance(epoch, int) and not isinstance(epoch, bool) and epoch >= 0 else 0


class SwapAverage(keras.callbacks.Callback):
    """With --ema: swaps the model's weights with the optimizer's moving average of them at each epoch's end.
    Listed twice, around validation and BestModel, so that the epoch is scored and saved with the averaged
    weights and training (and the backup, which must resume the same run) goes on with its own. At the end of
    fit Keras itself puts the average into the model (Optimizer.finalize_variable_values).

    Keras' SwapEMAWeights swaps once per epoch and leaves the average in the model at the backup; a resumed run
    would then train on from the average, so edgeseg swaps back itself."""

    def on_epoch_end(self, epoch, logs=None):
        """Exchange the trainable weights with their averages."""
        optimizer = self.model.optimizer
        optimizer = getattr(optimizer, "inner_optimizer", optimizer)  # mixed precision's LossScaleOptimizer
        pairs = zip(optimizer._trainable_variables, optimizer._model_variables_moving_average, strict=True)
        for weight, average in pairs:
            if average is not None:
                kept = keras.ops.convert_to_numpy(weight)
                weight.assign(average)
                average.assign(kept)


class BestModel(keras.callbacks.Callback):
    """Keeps model.keras at the best val_miou so far (keep="best") or at the last epoch (keep="last": a fixed
    schedule), written atomically (a temp file, then a rename).

    Args:
        path: model.keras.
        best: the best so far (a resumed run's).
        on_save: called with (epoch, val_miou) after each save.
        export: model -> the model to save (a float32 copy of a mixed-precision one).
        keep: "best" or "last".
    """

    def __init__(
        self,
        path: Path,
        best: float = -math.inf,
        on_save: Callable[[int, float], None] | None = None,
        export: Callable | None = None,
        keep: str = "best",
    ):
        super().__init__()
        self.path, self.best, self.on_save, self.export = Path(path), best, on_save, export
        self.keep = keep

    def on_epoch_end(self, epoch, logs=None):
        """Save the model when this epoch's val_miou beats the best so far (every epoch with keep="last")."""
        value = (logs or {}).get("val_miou", float("nan"))
        better = not math.isnan(value) and value > self.best
        if self.keep == "last" or better:
            self.best = max(self.best, value) if better else self.best
            with atomic_path(self.path, suffix=".keras") as tmp:
                try:
                    (self.export(self.model) if self.export else self.model).save(tmp)
                except OSError as e:  # a full disk: the last good model.keras stays
                    raise OutputError(f"{self.path}: cannot write ({e.strerror or e})") from None
            if self.on_save:
                self.on_save(epoch + 1, value)


class SharedBackup(keras.callbacks.BackupAndRestore):
    """BackupAndRestore for a run whose workers share --out: every worker restores from the chief's backup (the
    replicas hold the same weights), and only the chief writes or deletes it."""

    def __init__(self, backup_dir: str, is_chief: bool):
        super().__init__(backup_dir, save_freq="epoch", delete_checkpoint=True)
        self.is_chief = is_chief

    def _save_model(self):
        """Keras' own _save_model (a private method, overridden here and only here) writes latest.weights.h5
        in place: a SIGKILL during the write left a checkpoint that --resume could not load. Here the weights
        and then the epoch are each written to a temporary file and renamed over the old one, so the backup is
        always one whole epoch (at worst the weights are one epoch ahead of the count, and that epoch runs
        again). Only the chief writes."""
        if not self.is_chief:
            return
        backup = Path(self.backup_dir)
        try:
            backup.mkdir(parents=True, exist_ok=True)
            partial = backup / "partial.weights.h5"
            self.model.save_weights(str(partial), overwrite=True)
            with open(partial, "rb+") as f:
                os.fsync(f.fileno())
            os.replace(partial, self._weights_path)
        except OSError as e:
            raise OutputError(f"{backup}: cannot write the backup ({e.strerror or e})") from None
        meta = {"epoch": self._current_epoch, "batch": self._last_batch_seen}
        atomic_write_text(Path(self._training_metadata_path), json.dumps(meta))

    def on_train_end(self, logs=None):
        """Only the chief deletes the finished run's backup."""
        if self.is_chief:
            super().on_train_end(logs)
