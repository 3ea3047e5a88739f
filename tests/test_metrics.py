import math

import numpy as np
import pytest

from edgeseg.errors import DataError
from edgeseg.metrics import ConfusionMatrix


def test_hand_computed_iou_and_accuracy():
    target = np.array([[0, 0, 1], [1, 2, 2]])
    pred = np.array([[0, 1, 1], [1, 2, 0]])
    cm = ConfusionMatrix(3)
    cm.update(target, pred)
    # class 0: tp 1, fn 1 (pred 1), fp 1 (target 2 predicted 0) -> 1/3
    # class 1: tp 2, fp 1 -> 2/3 ; class 2: tp 1, fn 1 -> 1/2
    np.testing.assert_allclose(cm.iou(), [1 / 3, 2 / 3, 1 / 2])
    assert cm.miou() == pytest.approx((1 / 3 + 2 / 3 + 1 / 2) / 3)
    assert cm.pixel_accuracy() == pytest.approx(4 / 6)
    assert cm.counts.tolist() == [[1, 1, 0], [0, 2, 0], [1, 0, 1]]


def test_ignore_index_pixels_do_not_count():
    target = np.array([[0, 255, 1, 255]])
    pred = np.array([[0, 1, 1, 0]])
    cm = ConfusionMatrix(2, ignore_index=255)
    cm.update(target, pred)
    assert cm.counts.sum() == 2
    assert cm.miou() == 1.0


def test_absent_class_is_nan_and_skipped_by_the_mean():
    cm = ConfusionMatrix(3)
    cm.update(np.array([0, 0, 1]), np.array([0, 0, 1]))
    iou = cm.iou()
    assert math.isnan(iou[2])
    assert cm.miou() == 1.0
    assert cm.summary(["a", "b", "c"])["per_class_iou"]["c"] is None


def test_class_only_predicted_scores_zero_not_nan():
    cm = ConfusionMatrix(3)
    cm.update(np.array([0, 0]), np.array([0, 2]))
    iou = cm.iou()
    assert iou[2] == 0.0 and iou[0] == 0.5 and math.isnan(iou[1])


def test_prediction_outside_the_label_set_is_a_miss():
    cm = ConfusionMatrix(2)
    cm.update(np.array([0, 1, 1]), np.array([0, 1, 7]))
    assert cm.pixel_accuracy() == pytest.approx(2 / 3)
    assert cm.iou()[1] == pytest.approx(1 / 2)


def test_label_beyond_classes_is_an_error_and_shapes_must_match():
    cm = ConfusionMatrix(2)
    with pytest.raises(DataError, match="not a class"):
        cm.update(np.array([0, 5]), np.array([0, 1]))
    with pytest.raises(DataError):
        cm.update(np.zeros((2, 3), int), np.zeros((3, 2), int))


def test_merge_adds_counts():
    a, b = ConfusionMatrix(2), ConfusionMatrix(2)
    a.update(np.array([0, 1]), np.array([0, 1]))
    b.update(np.array([1, 1]), np.array([0, 1]))
    a.merge(b)
    assert a.counts.tolist() == [[1, 0], [1, 2]]
