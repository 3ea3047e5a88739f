"""Objective: the network trained with a loss that compile() alone cannot express: online hard example mining
(--loss ohem) and distillation from a teacher model (--teacher MODEL), alone or together.

The network inside is trained and saved as it is (`objective.student`); the teacher is frozen. The teacher runs
on the same augmented batch at its own input size, and its logits are resized to the student's, so a 384x288
teacher can teach a 256x192 student. Losses are per pixel, weighted by the pipeline's per-pixel weights (class
weights; ignored pixels weigh 0).
"""

from __future__ import annotations

import math

import keras
from keras import ops

OHEM_THRESHOLD = -math.log(0.7)  # a pixel whose true class has p < 0.7 is hard (BiSeNet's OHEM setting)
OHEM_MIN_SHARE = 1 / 16  # but at least this share of the labelled pixels, the hardest, is always kept


class Objective(keras.Model):
    """A student network and how it learns.

    Args:
        student: the network being trained (what is saved).
        loss: "ce" (weighted cross-entropy) or "ohem" (the same over the hard pixels only).
        teacher: a trained network whose softened predictions the student also learns from, or None.
        kd_weight: the distillation term's share of the loss (the labels' share is 1 - kd_weight).
        temperature: softens both distributions in the distillation term.
    """

    def __init__(self, student, loss: str = "ce", teacher=None, kd_weight: float = 0.5, temperature: float = 2.0):
        super().__init__(name="objective")
        self.student, self.teacher = student, teacher
        self.loss_name, self.kd_weight, self.temperature = loss, float(kd_weight), float(temperature)
        if teacher is not None:
            teacher.trainable = False

    def call(self, x, training=False):
        """The student's logits."""
        return self.student(x, training=training)

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        """The labels' term (cross-entropy or OHEM), plus the distillation term when there is a teacher. Keras'
        Model.compute_loss signature.

        Args:
            x: the batch's images.
            y: their labels.
            y_pred: the student's logits.
            sample_weight: per-pixel weights (0 for ignored pixels).
            training: whether this is a training step.
        """
        logits = ops.cast(y_pred, "float32")
        weight = ops.ones_like(logits[..., 0]) if sample_weight is None else ops.cast(sample_weight, "float32")
        ce = keras.losses.sparse_categorical_crossentropy(y, logits, from_logits=True)
        labels = (
            ohem(ce, weight) if self.loss_name == "ohem" else ops.sum(ce * weight) / ops.cast(ops.size(ce), "float32")
        )
        if self.teacher is None:
            return labels
        return (1.0 - self.kd_weight) * labels + self.kd_weight * self.distillation(x, logits)

    def distillation(self, x, logits):
        """KL(teacher || student) on temperature-softened distributions, times T^2, over every pixel."""
        th, tw = self.teacher.inputs[0].shape[1:3]
        sh, sw = logits.shape[1:3]
        xt = x if (th, tw) == (sh, sw) else ops.image.resize(x, (th, tw), interpolation="bilinear")
        t = ops.cast(self.teacher(xt, training=False), "float32")
        if tuple(t.shape[1:3]) != (sh, sw):
            t = ops.image.resize(t, (sh, sw), interpolation="bilinear")
        t = ops.stop_gradient(t)
        temp = self.temperature
        p_t = ops.softmax(t / temp, axis=-1)
        kl = ops.sum(p_t * (ops.log_softmax(t / temp, axis=-1) - ops.log_softmax(logits / temp, axis=-1)), axis=-1)
        return ops.mean(kl) * temp * temp


def ohem(ce, weight):
    """The weighted cross-entropy over the hard labelled pixels: those whose loss exceeds OHEM_THRESHOLD, or, when
    fewer are, the hardest OHEM_MIN_SHARE of them."""
    valid = ops.reshape(weight > 0, (-1,))
    losses = ops.reshape(ce, (-1,))
    weights = ops.reshape(weight, (-1,))
    n_valid = ops.sum(ops.cast(valid, "int32"))
    n_min = ops.maximum(ops.cast(ops.cast(n_valid, "float32") * OHEM_MIN_SHARE, "int32"), 1)
    ranked = ops.where(valid, losses, -1.0)
    kth = ops.sort(ranked)[ops.size(ranked) - n_min]  # the n_min-th largest labelled loss
    cut = ops.minimum(OHEM_THRESHOLD, kth)
    keep = ops.cast(valid & (losses >= cut), "float32")
    return ops.sum(losses * weights * keep) / ops.maximum(ops.sum(keep), 1.0)
