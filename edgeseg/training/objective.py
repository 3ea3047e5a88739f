"""Objective: the network trained with a loss that compile() alone cannot express: online hard example mining
(--loss ohem), distillation from a teacher model (--teacher MODEL) and an auxiliary head (--aux-weight), alone or
together.

The network inside is trained and saved as it is (`objective.student`); the teacher is frozen. The teacher runs
on the same augmented batch at its own input size, and its logits are resized to the student's, so a 384x288
teacher can teach a 256x192 student. The batch's images are the student's alone (the teacher sees them resized
to its size) or a pair, (the student's, the teacher's own view of the same crops: `--teacher-view frame`).
Losses are per pixel, weighted by the pipeline's per-pixel weights (class weights; ignored pixels weigh 0).

The distillation term matches the teacher's softened logits either per pixel (each pixel's distribution over the
classes: Hinton's KD, `--kd-mode pixel`) or per class (each class's distribution over the image's pixels:
channel-wise distillation, Shu et al., ICCV 2021, `--kd-mode channel`): the second asks the student to put each
class's strongest responses where the teacher puts them, which weighs the small regions of thin classes (poles,
signs) as much as the road, where a per-pixel mean is dominated by the large ones.

The auxiliary head (PSPNet's deep supervision) scores the encoder's stride-16 feature and learns from the same
labels; it exists only while training: it sees the encoder's features but the saved network never holds it.
"""

from __future__ import annotations

import math

import keras
from keras import ops

OHEM_THRESHOLD = -math.log(0.7)  # a pixel whose true class has p < 0.7 is hard (BiSeNet's OHEM setting)
OHEM_MIN_SHARE = 1 / 16  # but at least this share of the labelled pixels, the hardest, is always kept
AUX_WIDTH = 64  # the auxiliary head's 3x3 convolution (PSPNet's has 256, for a network 50 times nano's size)
AUX_STRIDE = 16  # the auxiliary head reads the encoder's output at this stride


class Objective(keras.Model):
    """A student network and how it learns.

    Args:
        student: the network being trained (what is saved).
        loss: "ce" (weighted cross-entropy) or "ohem" (the same over the hard pixels only).
        teacher: a trained network whose softened predictions the student also learns from, or None.
        kd_weight: the distillation term's share of the loss (the labels' share is 1 - kd_weight).
        temperature: softens both distributions in the distillation term.
        kd_mode: "pixel" (each pixel's distribution over the classes) or "channel" (each class's over the pixels).
        aux_weight: the auxiliary head's term, added to the loss at this weight (0: no auxiliary head).
    """

    def __init__(
        self,
        student,
        loss: str = "ce",
        teacher=None,
        kd_weight: float = 0.5,
        temperature: float = 2.0,
        aux_weight: float = 0.0,
        kd_mode: str = "pixel",
    ):
        super().__init__(name="objective")
        self.student, self.teacher = student, teacher
        self.loss_name, self.kd_weight, self.temperature = loss, float(kd_weight), float(temperature)
        self.aux_weight, self.kd_mode = float(aux_weight), kd_mode
        self.with_aux = with_aux_head(student) if self.aux_weight else None
        if teacher is not None:
            teacher.trainable = False

    def call(self, x, training=False):
        """The student's logits; while training with an auxiliary head, (logits, the auxiliary head's logits)."""
        x, _ = split_views(x)
        if training and self.with_aux is not None:
            return tuple(self.with_aux(x, training=True))
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
        aux = None
        if isinstance(y_pred, tuple | list):
            y_pred, aux = y_pred
        logits = ops.cast(y_pred, "float32")
        weight = ops.ones_like(logits[..., 0]) if sample_weight is None else ops.cast(sample_weight, "float32")
        labels = self.labels_term(y, logits, weight)
        total = (
            labels
            if self.teacher is None
            else (1.0 - self.kd_weight) * labels + self.kd_weight * self.distillation(x, logits)
        )
        if aux is None:
            return total
        aux = ops.image.resize(ops.cast(aux, "float32"), tuple(logits.shape[1:3]), interpolation="bilinear")
        return total + self.aux_weight * self.labels_term(y, aux, weight)

    def labels_term(self, y, logits, weight):
        """Cross-entropy with the labels, weighted per pixel (over the hard pixels only with --loss ohem)."""
        ce = keras.losses.sparse_categorical_crossentropy(y, logits, from_logits=True)
        if self.loss_name == "ohem":
            return ohem(ce, weight)
        return ops.sum(ce * weight) / ops.cast(ops.size(ce), "float32")

    def distillation(self, x, logits):
        """KL(teacher || student) on temperature-softened distributions, times T^2: the mean over the pixels of
        the KL between their class distributions (pixel), or the mean over images and classes of the KL between the
        classes' distributions over the pixels (channel)."""
        th, tw = self.teacher.inputs[0].shape[1:3]
        sh, sw = logits.shape[1:3]
        x, xt = split_views(x)
        if xt is None:  # the student's crop, resized to the teacher's input
            xt = x if tuple(x.shape[1:3]) == (th, tw) else ops.image.resize(x, (th, tw), interpolation="bilinear")
        t = ops.cast(self.teacher(xt, training=False), "float32")
        if tuple(t.shape[1:3]) != (sh, sw):
            t = ops.image.resize(t, (sh, sw), interpolation="bilinear")
        t = ops.stop_gradient(t)
        temp = self.temperature
        s = logits
        if self.kd_mode == "channel":  # (N, H, W, C) -> (N, C, H*W): a distribution over the pixels per class
            t, s = (ops.reshape(ops.transpose(v, (0, 3, 1, 2)), (-1, v.shape[3], sh * sw)) for v in (t, logits))
        p_t = ops.softmax(t / temp, axis=-1)
        kl = ops.sum(p_t * (ops.log_softmax(t / temp, axis=-1) - ops.log_softmax(s / temp, axis=-1)), axis=-1)
        return ops.mean(kl) * temp * temp


def split_views(x):
    """A batch's images as (the student's, the teacher's view or None)."""
    if isinstance(x, tuple | list):
        return x[0], x[1]
    return x, None


def with_aux_head(student):
    """A training graph over the student's own layers: its logits and an auxiliary head's, a 3x3 convolution
    (BatchNorm, ReLU, dropout) and a 1x1 score layer on the encoder's stride-16 feature, at stride 16.

    Args:
        student: a build_unet network with an encoder (not the classic U-Net).
    """
    from keras import layers

    # the encoder's outputs as this graph sees them (encoder.output is the nested model's own, unconnected here);
    # TrainConfig.check refuses --aux-weight for the classic U-Net, which has no encoder, before any work
    encoder = student.get_layer("encoder")
    # found by its size, not its place: the dense stem's encoder has no stride-2 output, so places shift
    height = student.inputs[0].shape[1]
    feature = next(t for t in encoder._inbound_nodes[0].output_tensors if t.shape[1] == height // AUX_STRIDE)
    num_classes = student.outputs[0].shape[-1]
    x = layers.Conv2D(AUX_WIDTH, 3, padding="same", use_bias=False, name="aux_conv")(feature)
    x = layers.BatchNormalization(name="aux_conv_bn")(x)
    x = layers.ReLU(name="aux_conv_relu")(x)
    x = layers.Dropout(0.1, name="aux_dropout")(x)
    aux = layers.Conv2D(num_classes, 1, name="aux_logits", dtype="float32")(x)
    return keras.Model(student.inputs, [student.outputs[0], aux], name="with_aux")


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
