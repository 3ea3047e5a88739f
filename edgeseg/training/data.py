"""The training input, the same on TensorFlow, JAX and PyTorch: a keras.utils.PyDataset of augmented batches.

Images and masks are read once through edgeseg.datasets (the reader eval and calibration use, a packed dataset
included) and kept in memory. Each batch is made by edgeseg.training.augment in numpy and OpenCV, in worker
threads: threads rather than processes, because the frames are already decoded in memory (a process pool would
copy them, or fork a process that JAX or PyTorch have already filled with threads), and OpenCV's resizes and
colour conversions release the GIL, so threads use the cores. Keras hands the batches to whichever backend
trains: tf.data from a generator on TensorFlow, arrays on JAX, tensors on PyTorch.

Every batch is a function of (seed, epoch, batch index) alone: the same frames in the same order with the same
augmentation whichever worker makes it, and a resumed run picks up the epoch it stopped at.
"""

from __future__ import annotations

import os
from collections.abc import Callable

import keras
import numpy as np

from edgeseg.datasets import Dataset
from edgeseg.metrics import class_pixels
from edgeseg.training.augment import IGNORE, augment_pair
from edgeseg.training.config import Augment

MAX_WORKERS = 8  # threads making batches; more buys nothing once the model waits on none


def load_all(ds: Dataset, progress: Callable[[int, int], None] | None = None):
    """Every (RGB uint8, mask uint8 with ignore -> 255) pair of a split, read and checked once."""
    images, masks = [], []
    for i in range(len(ds)):
        img, mask = ds.read(i)
        if ds.ignore_index is not None and ds.ignore_index != IGNORE:
            mask = np.where(mask == ds.ignore_index, IGNORE, mask).astype(np.uint8)
        images.append(np.ascontiguousarray(img[..., ::-1]))
        masks.append(mask)
        if progress:
            progress(i + 1, len(ds))
    return images, masks


def class_frequencies(masks: list[np.ndarray], num_classes: int) -> np.ndarray:
    """Each class's share of the labelled pixels of `masks`."""
    counts = class_pixels(masks, num_classes).astype(np.float64)
    return counts / max(counts.sum(), 1.0)


def median_frequency_weights(masks: list[np.ndarray], num_classes: int, cap: float = 10.0) -> np.ndarray:
    """SegNet's median frequency balancing: w_c = median(freq) / freq_c (capped; absent classes get 1)."""
    freq = class_frequencies(masks, num_classes)
    present = freq > 0
    w = np.ones(num_classes)
    w[present] = np.median(freq[present]) / freq[present]
    return np.clip(w, 1.0 / cap, cap)


class TrainingBatches(keras.utils.PyDataset):
    """One epoch of augmented training batches: (images float32 (B, h, w, 3) RGB 0..255, labels int32 (B, h, w),
    per-pixel weights float32 (B, h, w), 0 where the label is ignored). Each epoch visits every frame once in a
    new order; with at least `batch_size` frames the last partial batch is dropped, so every batch has one
    shape (a traced or compiled step is built once). With `teacher_hw` set (train --teacher-view frame), the
    images are a pair: (the student's, the teacher's view of the same crops at its input size, float32).

    Args:
        images: RGB uint8 images (load_all's).
        masks: their masks, the ignore label as 255.
        input_hw: the model's (height, width).
        num_classes: for the per-class weights.
        batch_size: the global batch.
        augment: scale range, flips and colour jitter.
        class_weights: a weight per class (None: all 1).
        seed: the order's and the augmentation's seed.
        epoch: the epoch the first batch belongs to (a resumed run's).
        workers: threads making batches (None: this machine's cores, at most MAX_WORKERS).
        teacher_hw: a teacher's (height, width) to make its view of each crop for, or None.
    """

    def __init__(
        self,
        images,
        masks,
        input_hw,
        num_classes: int,
        batch_size: int,
        augment: Augment,
        class_weights: np.ndarray | None = None,
        seed: int = 0,
        epoch: int = 0,
        workers: int | None = None,
        teacher_hw: tuple[int, int] | None = None,
    ):
        workers = workers or max(1, min(os.cpu_count() or 1, MAX_WORKERS))
        super().__init__(workers=workers, use_multiprocessing=False, max_queue_size=2 * workers)
        self.images, self.masks, self.input_hw = images, masks, tuple(input_hw)
        self.batch_size, self.augment, self.seed = batch_size, augment, seed
        self.weights = np.zeros(256, np.float32)
        self.weights[:num_classes] = 1.0 if class_weights is None else np.asarray(class_weights, np.float32)
        self.steps = max(1, len(images) // batch_size)
        self.teacher_hw = None if teacher_hw is None else tuple(teacher_hw)
        self._start(epoch)

    def _start(self, epoch: int) -> None:
        # changed only between epochs (on_epoch_end runs after Keras has stopped the epoch's workers)
        self.epoch = epoch
        self.order = np.random.default_rng((self.seed, epoch)).permutation(len(self.images))

    def __len__(self) -> int:
        return self.steps

    def __getitem__(self, idx: int):
        """Batch `idx` of the current epoch."""
        if not 0 <= idx < self.steps:
            raise IndexError(idx)
        rng = np.random.default_rng((self.seed, self.epoch, idx, 1))
        picks = self.order[idx * self.batch_size : (idx + 1) * self.batch_size]
        h, w = self.input_hw
        x = np.empty((len(picks), h, w, 3), np.float32)
        labels = np.empty((len(picks), h, w), np.int32)
        views = None if self.teacher_hw is None else np.empty((len(picks), *self.teacher_hw, 3), np.float32)
        for k, i in enumerate(picks):
            made = augment_pair(self.images[i], self.masks[i], self.input_hw, self.augment, rng, self.teacher_hw)
            x[k], labels[k] = made[:2]
            if views is not None:
                views[k] = made[2]
        weight = self.weights[labels]
        labels[labels == IGNORE] = 0
        return (x if views is None else (x, views)), labels, weight

    def on_epoch_end(self) -> None:
        """The next epoch gets its own order and augmentation."""
        self._start(self.epoch + 1)
