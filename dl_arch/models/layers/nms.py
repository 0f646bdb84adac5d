"""Per-class greedy non-maximum suppression with a fixed output size, jit- and vmap-friendly.

Detection heads score every (box, class) pair; NMS keeps the best of overlapping
same-class boxes. The output has a fixed size (padded, with a `valid` mask) so that
inference and the in-loop AP run inside `jit`.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp

from dl_arch.models.layers import boxes as box_lib


def nms_single(boxes_N4: jax.Array, scores_NC: jax.Array, *, iou_threshold: float,
               score_threshold: float, max_detections: int, pre_nms_top_k: int
               ) -> dict[str, jax.Array]:
    """Per-class greedy NMS for one image, with a fixed output size (runs under `jit`).

    The `pre_nms_top_k` highest (box, class) scores are candidates; those above
    `score_threshold` are visited in score order and each suppresses lower-scored
    candidates of its class with IoU > `iou_threshold`. Returns the `max_detections`
    best survivors: boxes `[M, 4]`, scores `[M]`, classes `[M]`, valid `[M]`.
    """
    num_boxes, num_classes = scores_NC.shape
    k = min(pre_nms_top_k, num_boxes * num_classes)
    scores_K, flat_K = jax.lax.top_k(scores_NC.reshape(-1), k)
    boxes_K4 = boxes_N4[flat_K // num_classes]
    classes_K = flat_K % num_classes
    iou_KK = box_lib.pairwise_iou(boxes_K4, boxes_K4)
    order = jnp.arange(k)
    # suppress[i, j]: candidate i, if kept, removes later candidate j of its class
    suppress_KK = ((iou_KK > iou_threshold) & (classes_K[:, None] == classes_K[None, :])
                   & (order[None, :] > order[:, None]))

    def visit(i: jax.Array, keep_K: jax.Array) -> jax.Array:
        return keep_K & ~(keep_K[i] & suppress_KK[i])

    keep_K = jax.lax.fori_loop(0, k, visit, scores_K > score_threshold)
    m = min(max_detections, k)
    kept_scores, pick = jax.lax.top_k(jnp.where(keep_K, scores_K, -1.0), m)
    valid = kept_scores > -1.0
    out = {
        "boxes": jnp.where(valid[:, None], boxes_K4[pick], 0.0),
        "scores": jnp.where(valid, kept_scores, 0.0),
        "classes": jnp.where(valid, classes_K[pick], -1),
        "valid": valid,
    }
    if m < max_detections:  # fewer candidates than outputs: pad to the promised size
        pad = max_detections - m
        out = {key: jnp.pad(v, [(0, pad)] + [(0, 0)] * (v.ndim - 1),
                            constant_values=-1 if key == "classes" else 0)
               for key, v in out.items()}
    return out


def batched_nms(boxes_BN4: jax.Array, scores_BNC: jax.Array, *, iou_threshold: float = 0.5,
                score_threshold: float = 0.05, max_detections: int = 100,
                pre_nms_top_k: int = 1000) -> dict[str, jax.Array]:
    """`nms_single` over a batch: every output gains a leading batch axis."""
    fn = functools.partial(nms_single, iou_threshold=iou_threshold,
                           score_threshold=score_threshold, max_detections=max_detections,
                           pre_nms_top_k=pre_nms_top_k)
    return jax.vmap(fn)(boxes_BN4, scores_BNC)
