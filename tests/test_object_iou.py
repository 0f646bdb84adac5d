"""Per-object IoU by size (dl_arch/evaluators/object_iou.py) on hand-drawn cases."""

from __future__ import annotations

import numpy as np

from dl_arch.evaluators.object_iou import binned_iou, object_overlaps


def test_object_overlaps_hand_case():
    """A 2x2 object of kind 0 predicted as a 2x3 blob; a 4x4 object of kind 1 half missed."""
    mask = np.zeros((1, 10, 10), np.int32)
    mask[0, 1:3, 1:3] = 1
    mask[0, 5:9, 5:9] = 2
    pred = np.zeros_like(mask)
    pred[0, 1:3, 1:4] = 1  # one extra column inside the grown box
    pred[0, 5:9, 5:7] = 2  # left half of the big object
    pred[0, 0, 9] = 1  # far from the small object: outside its grown box, not counted
    boxes = np.array([[[0.1, 0.1, 0.3, 0.3], [0.5, 0.5, 0.9, 0.9], [0, 0, 0, 0]]], np.float32)
    labels = np.array([[0, 1, -1]])
    sizes, inters, unions = object_overlaps(pred, mask, boxes, labels, margin=0.5)
    np.testing.assert_array_equal(sizes, [4, 16])
    np.testing.assert_array_equal(inters, [4, 8])
    np.testing.assert_array_equal(unions, [6, 16])


def test_binned_iou_pools_objects_and_marks_empty_bins():
    sizes = np.array([3, 5, 50, 60])
    inters = np.array([1, 2, 40, 30])
    unions = np.array([4, 4, 50, 50])
    bins = binned_iou(sizes, inters, unions, edges=(10, 40))
    assert bins[0] == (2, 3 / 8)
    assert bins[1][0] == 0 and np.isnan(bins[1][1])
    assert bins[2] == (2, 70 / 100)
