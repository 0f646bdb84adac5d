"""Box utilities against plain-python references (loops over the textbook formulas)."""

from __future__ import annotations

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.test_util import check_grads

from dl_arch.models.layers import boxes as B


def random_boxes(rng: np.random.Generator, n: int) -> np.ndarray:
    """Valid corner boxes in [0, 1], some tiny, some overlapping."""
    lo = rng.uniform(0, 0.8, (n, 2))
    hw = rng.uniform(0.01, 0.5, (n, 2))
    return np.concatenate([lo, np.minimum(lo + hw, 1.0)], -1).astype(np.float32)


def ref_iou_giou(a: np.ndarray, b: np.ndarray) -> tuple[float, float]:
    """IoU and GIoU of two corner boxes, one scalar at a time."""
    ih = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iw = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ih * iw
    area_a = (a[2] - a[0]) * (a[3] - a[1])
    area_b = (b[2] - b[0]) * (b[3] - b[1])
    union = area_a + area_b - inter
    hull = (max(a[2], b[2]) - min(a[0], b[0])) * (max(a[3], b[3]) - min(a[1], b[1]))
    iou = inter / union
    return iou, iou - (hull - union) / hull


def test_conversion_roundtrip_and_values():
    rng = np.random.default_rng(0)
    corners = random_boxes(rng, 16)
    centres = B.corners_to_centers(corners)
    expected = np.stack([(corners[:, 0] + corners[:, 2]) / 2, (corners[:, 1] + corners[:, 3]) / 2,
                         corners[:, 2] - corners[:, 0], corners[:, 3] - corners[:, 1]], -1)
    chex.assert_trees_all_close(centres, expected, atol=1e-6)
    chex.assert_trees_all_close(B.centers_to_corners(centres), corners, atol=1e-6)
    # leading batch axes pass through
    chex.assert_shape(B.corners_to_centers(corners.reshape(2, 8, 4)), (2, 8, 4))


@pytest.mark.parametrize("wrap", [jax.jit, lambda f: f], ids=["jit", "nojit"])
def test_pairwise_iou_giou_match_loops(wrap):
    rng = np.random.default_rng(1)
    a, b = random_boxes(rng, 7), random_boxes(rng, 5)
    b[0] = a[0]  # identical pair: IoU = GIoU = 1
    b[1] = [0.9, 0.9, 0.95, 0.95]  # likely disjoint from most
    iou = wrap(B.pairwise_iou)(a, b)
    giou = wrap(B.pairwise_giou)(a, b)
    chex.assert_shape(iou, (7, 5))
    ref = np.array([[ref_iou_giou(x, y) for y in b] for x in a])
    chex.assert_trees_all_close(iou, ref[..., 0], atol=1e-5)
    chex.assert_trees_all_close(giou, ref[..., 1], atol=1e-5)
    assert abs(float(iou[0, 0]) - 1) < 1e-6 and abs(float(giou[0, 0]) - 1) < 1e-6
    chex.assert_trees_all_close(wrap(B.elementwise_giou)(a[:5], b), np.diag(ref[:5, :, 1]),
                                atol=1e-5)


def test_batched_iou_and_degenerate_boxes():
    rng = np.random.default_rng(2)
    a, b = random_boxes(rng, 12).reshape(3, 4, 4), random_boxes(rng, 6).reshape(3, 2, 4)
    batched = jax.jit(B.pairwise_iou)(a, b)
    per_image = np.stack([np.asarray(B.pairwise_iou(a[i], b[i])) for i in range(3)])
    chex.assert_trees_all_close(batched, per_image, atol=1e-7)
    zero = jnp.zeros((1, 4))  # padding box: IoU 0 with everything, no NaN
    out = B.pairwise_iou(zero, jnp.concatenate([zero, b[0]], 0))
    chex.assert_trees_all_close(out, np.zeros((1, 3)))
    chex.assert_tree_all_finite(B.pairwise_giou(zero, zero))


def test_encode_decode_formula_and_roundtrip():
    rng = np.random.default_rng(3)
    boxes, anchors = random_boxes(rng, 20), random_boxes(rng, 20)
    deltas = np.asarray(B.encode_boxes(boxes, anchors))
    # textbook SSD encoding, written out per coordinate
    def centres(x):
        return np.stack([(x[:, 0] + x[:, 2]) / 2, (x[:, 1] + x[:, 3]) / 2,
                         x[:, 2] - x[:, 0], x[:, 3] - x[:, 1]], -1)

    bc, ac = centres(boxes), centres(anchors)
    expected = np.stack([(bc[:, 0] - ac[:, 0]) / ac[:, 2] / 0.1,
                         (bc[:, 1] - ac[:, 1]) / ac[:, 3] / 0.1,
                         np.log(bc[:, 2] / ac[:, 2]) / 0.2,
                         np.log(bc[:, 3] / ac[:, 3]) / 0.2], -1)
    chex.assert_trees_all_close(deltas, expected, rtol=1e-4, atol=1e-4)
    chex.assert_trees_all_close(jax.jit(B.decode_boxes)(deltas, anchors), boxes, atol=1e-5)
    # zero deltas decode to the anchor itself
    chex.assert_trees_all_close(B.decode_boxes(np.zeros_like(deltas), anchors), anchors, atol=1e-6)


def test_giou_gradient_matches_finite_differences():
    rng = np.random.default_rng(4)
    a, b = random_boxes(rng, 3).astype(np.float64), random_boxes(rng, 3).astype(np.float64)
    with jax.enable_x64(True):
        check_grads(lambda x: B.elementwise_giou(x, jnp.asarray(b)).sum(), (jnp.asarray(a),),
                    order=1, modes=("rev",), eps=1e-6)


def test_make_anchors_layout():
    anchors = B.make_anchors([(2, 2), (1, 1)], sizes=[0.25, 0.5], aspect_ratios=[1.0, 2.0])
    chex.assert_shape(anchors, (2 * 2 * 2 + 1 * 1 * 2, 4))
    # first cell of level 0, ratio 1: centred at (0.25, 0.25), side 0.25
    chex.assert_trees_all_close(anchors[0], np.array([0.125, 0.125, 0.375, 0.375]), atol=1e-6)
    # ratio 2 means h / w = 2 with the same area
    c = np.asarray(B.corners_to_centers(anchors[1]))
    np.testing.assert_allclose([c[2] / c[3], c[2] * c[3]], [2.0, 0.25**2], rtol=1e-5)
    with pytest.raises(ValueError, match="anchor_sizes"):
        B.make_anchors([(2, 2)], sizes=[0.1, 0.2], aspect_ratios=[1.0])
