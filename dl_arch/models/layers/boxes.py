"""Bounding-box utilities: format conversion, IoU / GIoU, anchors, and box encoding.

Boxes are `[..., 4]` arrays. Corner format is `(ymin, xmin, ymax, xmax)` (the TFDS
convention), centre format is `(cy, cx, h, w)`. Every function is pure jnp, works on
any leading batch shape and runs inside `jit`/`vmap`; `make_anchors` is plain numpy
because anchors are a constant of the image size.
"""

from __future__ import annotations

from collections.abc import Sequence

import jax.numpy as jnp
import numpy as np

from dl_arch.config.errors import ConfigError

# SSD / Faster R-CNN "variances": encoded offsets are divided by these so that the
# regression targets of matched anchors have roughly unit scale.
DEFAULT_VARIANCES = (0.1, 0.1, 0.2, 0.2)
# exp() of a height/width delta is clipped here so an untrained head cannot overflow.
_MAX_LOG_SCALE = float(np.log(1000.0 / 16.0))
_EPS = 1e-9


def corners_to_centers(boxes: jnp.ndarray) -> jnp.ndarray:
    """(ymin, xmin, ymax, xmax) -> (cy, cx, h, w)."""
    ymin, xmin, ymax, xmax = jnp.moveaxis(boxes, -1, 0)
    return jnp.stack([(ymin + ymax) / 2, (xmin + xmax) / 2, ymax - ymin, xmax - xmin], -1)


def centers_to_corners(boxes: jnp.ndarray) -> jnp.ndarray:
    """(cy, cx, h, w) -> (ymin, xmin, ymax, xmax)."""
    cy, cx, h, w = jnp.moveaxis(boxes, -1, 0)
    return jnp.stack([cy - h / 2, cx - w / 2, cy + h / 2, cx + w / 2], -1)


def box_area(boxes: jnp.ndarray) -> jnp.ndarray:
    """Area of corner boxes; degenerate (inverted) boxes count as 0."""
    h = jnp.maximum(boxes[..., 2] - boxes[..., 0], 0.0)
    w = jnp.maximum(boxes[..., 3] - boxes[..., 1], 0.0)
    return h * w


def _intersection_and_union(a_N4: jnp.ndarray, b_M4: jnp.ndarray
                            ) -> tuple[jnp.ndarray, jnp.ndarray]:
    """Pairwise intersection and union areas `[..., N, M]` of two sets of corner boxes."""
    a = a_N4[..., :, None, :]
    b = b_M4[..., None, :, :]
    lo = jnp.maximum(a[..., :2], b[..., :2])
    hi = jnp.minimum(a[..., 2:], b[..., 2:])
    inter = jnp.prod(jnp.maximum(hi - lo, 0.0), axis=-1)
    union = box_area(a_N4)[..., :, None] + box_area(b_M4)[..., None, :] - inter
    return inter, union


def pairwise_iou(a_N4: jnp.ndarray, b_M4: jnp.ndarray) -> jnp.ndarray:
    """IoU matrix `[..., N, M]` between corner boxes (0 where the union is empty)."""
    inter, union = _intersection_and_union(a_N4, b_M4)
    return jnp.where(union > 0, inter / jnp.maximum(union, _EPS), 0.0)


def pairwise_giou(a_N4: jnp.ndarray, b_M4: jnp.ndarray) -> jnp.ndarray:
    """Generalised IoU matrix `[..., N, M]` (Rezatofighi et al., 2019), in [-1, 1]."""
    inter, union = _intersection_and_union(a_N4, b_M4)
    iou = inter / jnp.maximum(union, _EPS)
    a = a_N4[..., :, None, :]
    b = b_M4[..., None, :, :]
    lo = jnp.minimum(a[..., :2], b[..., :2])
    hi = jnp.maximum(a[..., 2:], b[..., 2:])
    hull = jnp.prod(jnp.maximum(hi - lo, 0.0), axis=-1)
    return iou - (hull - union) / jnp.maximum(hull, _EPS)


def elementwise_giou(a: jnp.ndarray, b: jnp.ndarray) -> jnp.ndarray:
    """GIoU of matching pairs `a[..., i]` and `b[..., i]` (the loss form, no N x M matrix)."""
    lo = jnp.maximum(a[..., :2], b[..., :2])
    hi = jnp.minimum(a[..., 2:], b[..., 2:])
    inter = jnp.prod(jnp.maximum(hi - lo, 0.0), axis=-1)
    union = box_area(a) + box_area(b) - inter
    hull_lo = jnp.minimum(a[..., :2], b[..., :2])
    hull_hi = jnp.maximum(a[..., 2:], b[..., 2:])
    hull = jnp.prod(jnp.maximum(hull_hi - hull_lo, 0.0), axis=-1)
    return inter / jnp.maximum(union, _EPS) - (hull - union) / jnp.maximum(hull, _EPS)


def encode_boxes(boxes: jnp.ndarray, anchors: jnp.ndarray,
                 variances: Sequence[float] = DEFAULT_VARIANCES) -> jnp.ndarray:
    """Corner boxes -> regression targets (dy, dx, dh, dw) relative to corner anchors.

    dy = (cy - a_cy) / a_h / v0, dh = log(h / a_h) / v2 (SSD / Faster R-CNN encoding).
    """
    b = corners_to_centers(boxes)
    a = corners_to_centers(anchors)
    var = jnp.asarray(variances, b.dtype).reshape((1,) * (b.ndim - 1) + (4,))
    d_yx = (b[..., :2] - a[..., :2]) / jnp.maximum(a[..., 2:], _EPS)
    d_hw = jnp.log(jnp.maximum(b[..., 2:], _EPS) / jnp.maximum(a[..., 2:], _EPS))
    return jnp.concatenate([d_yx, d_hw], -1) / var


def decode_boxes(deltas: jnp.ndarray, anchors: jnp.ndarray,
                 variances: Sequence[float] = DEFAULT_VARIANCES) -> jnp.ndarray:
    """Inverse of `encode_boxes`: regression outputs -> corner boxes."""
    a = corners_to_centers(anchors)
    d = deltas * jnp.asarray(variances, deltas.dtype).reshape((1,) * (deltas.ndim - 1) + (4,))
    c_yx = a[..., :2] + d[..., :2] * a[..., 2:]
    hw = a[..., 2:] * jnp.exp(jnp.minimum(d[..., 2:], _MAX_LOG_SCALE))
    return centers_to_corners(jnp.concatenate([c_yx, hw], -1))


def make_anchors(feature_shapes: Sequence[tuple[int, int]], sizes: Sequence[float],
                 aspect_ratios: Sequence[float], scales: Sequence[float] = (1.0,)
                 ) -> np.ndarray:
    """Corner anchors `[A, 4]` in normalised [0, 1] image coordinates.

    Level `l` has a `feature_shapes[l] = (h, w)` grid; each cell gets one anchor per
    (scale, aspect ratio) centred on the cell, of side `sizes[l] * scale` (fraction of
    the image) and `h / w = aspect_ratio`. Order: level, row, column, anchor.
    """
    if len(feature_shapes) != len(sizes):
        raise ConfigError(
            f"config.model.anchor_sizes has {len(sizes)} entries but the model has "
            f"{len(feature_shapes)} feature levels; give one size per level"
        )
    out = []
    for (fh, fw), size in zip(feature_shapes, sizes, strict=True):
        cy = (np.arange(fh, dtype=np.float64) + 0.5) / fh
        cx = (np.arange(fw, dtype=np.float64) + 0.5) / fw
        shapes = [(size * s * np.sqrt(r), size * s / np.sqrt(r))
                  for s in scales for r in aspect_ratios]
        hw = np.asarray(shapes)  # [K, 2]
        gy, gx = np.meshgrid(cy, cx, indexing="ij")
        centres = np.stack([gy, gx], -1).reshape(-1, 1, 2)  # [h*w, 1, 2]
        centres = np.broadcast_to(centres, (fh * fw, len(shapes), 2))
        hw = np.broadcast_to(hw[None], centres.shape)
        out.append(np.concatenate([centres - hw / 2, centres + hw / 2], -1).reshape(-1, 4))
    return np.concatenate(out, 0).astype(np.float32)
