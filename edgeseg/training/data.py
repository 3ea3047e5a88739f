"""tf.data input pipeline for training.

Images and masks are read once through edgeseg.datasets (OpenCV/Pillow, with the same checks eval uses),
kept in memory, and served by tf.data: shuffle, augmentation in TensorFlow ops (random scale and crop,
horizontal flip, colour jitter), per-pixel weights, batching and prefetch. The dataset's ignore label
becomes 255 inside the pipeline, and padding from the random crop is 255 too: those pixels weigh 0.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import tensorflow as tf

from edgeseg.datasets import Dataset
from edgeseg.metrics import class_pixels
from edgeseg.preprocess import LETTERBOX_FILL
from edgeseg.training.config import Augment

IGNORE = 255
PAD_PIXEL = float(LETTERBOX_FILL)  # the grey inference letterboxes with


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


def train_pipeline(
    images,
    masks,
    input_hw,
    num_classes: int,
    batch_size: int,
    augment: Augment,
    class_weights: np.ndarray | None = None,
    seed: int = 0,
) -> tf.data.Dataset:
    """The training input as tf.data: shuffled, augmented in TensorFlow ops, with per-pixel weights, batched and
    prefetched; repeats forever (Keras counts the steps).

    Args:
        images: RGB uint8 images (load_all's).
        masks: their masks, the ignore label as 255.
        input_hw: the model's (height, width): the random crop's size.
        num_classes: for the per-class weights.
        batch_size: the global batch.
        augment: scale range, flips and colour jitter.
        class_weights: a weight per class (None: all 1).
        seed: the shuffle's and the augmentation's seed.
    """
    h, w = input_hw
    weights = np.zeros(256, np.float32)
    weights[:num_classes] = 1.0 if class_weights is None else np.asarray(class_weights, np.float32)
    weight_table = tf.constant(weights)
    n = len(images)

    def fetch(i):
        return images[int(i)], masks[int(i)]

    def load(i):
        img, mask = tf.numpy_function(fetch, [i], [tf.uint8, tf.uint8], stateful=False)
        img.set_shape([None, None, 3])
        mask.set_shape([None, None])
        return img, mask

    def transform(img, mask):
        img = tf.cast(img, tf.float32)
        mask = mask[..., None]
        s = tf.random.uniform([], augment.scale[0], augment.scale[1])
        sh = tf.cast(tf.round(h * s), tf.int32)
        sw = tf.cast(tf.round(w * s), tf.int32)
        img = tf.image.resize(img, [sh, sw], "bilinear")
        mask = tf.image.resize(mask, [sh, sw], "nearest")
        ph, pw = tf.maximum(h - sh, 0), tf.maximum(w - sw, 0)
        img = tf.pad(img, [[0, ph], [0, pw], [0, 0]], constant_values=PAD_PIXEL)
        mask = tf.pad(mask, [[0, ph], [0, pw], [0, 0]], constant_values=IGNORE)
        both = tf.concat([img, tf.cast(mask, tf.float32)], axis=-1)
        both = tf.image.random_crop(both, [h, w, 4])
        if augment.flip:
            both = tf.image.random_flip_left_right(both)
        img, mask = both[..., :3], tf.cast(both[..., 3], tf.int32)
        if augment.jitter:
            j = augment.jitter
            x = img / 255.0
            x = tf.image.random_brightness(x, j * 0.5)
            x = tf.image.random_contrast(x, 1 - j, 1 + j)
            x = tf.image.random_saturation(x, 1 - j, 1 + j)
            x = tf.image.random_hue(x, j * 0.1)
            img = tf.clip_by_value(x, 0.0, 1.0) * 255.0
        pixel_weight = tf.gather(weight_table, mask)
        label = tf.where(mask == IGNORE, 0, mask)
        return img, label, pixel_weight

    # In-memory data: under multi-worker training each worker holds all of it, and the DATA policy has each
    # take its own share of every global batch (there are no files to shard by). The distributed dataset that
    # Keras makes from this one prefetches each replica's batch to its device.
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    return (
        tf.data.Dataset.range(n)
        .shuffle(n, seed=seed, reshuffle_each_iteration=True)
        .map(load, num_parallel_calls=tf.data.AUTOTUNE)
        .map(transform, num_parallel_calls=tf.data.AUTOTUNE)
        .batch(batch_size, drop_remainder=n >= batch_size)
        .prefetch(tf.data.AUTOTUNE)
        .with_options(options)
    )
