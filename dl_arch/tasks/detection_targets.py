"""Training targets of the anchor detector: anchor-to-box matching and negative sampling.

Every anchor takes the ground-truth box of highest IoU; it is positive at IoU >= `pos_iou`,
negative below `neg_iou`, ignored in between, and each ground truth's best anchor is forced
positive so that no object goes unassigned (SSD's matching). Without focal loss, only the
hardest negatives enter the objectness loss (SSD's hard-negative mining). The regression
targets of positives are the `encode_boxes` deltas of `dl_arch.models.layers.boxes`.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from dl_arch.models.layers import boxes as box_lib


def assign_targets(anchors_A4: jax.Array, gt_boxes_G4: jax.Array, gt_labels_G: jax.Array,
                   pos_iou: float = 0.5, neg_iou: float = 0.4
                   ) -> tuple[jax.Array, jax.Array, jax.Array]:
    """Per anchor of one image: (matched gt index `[A]`, positive `[A]`, negative `[A]`).

    Padding boxes (label -1) are never matched; ignored anchors are neither.
    """
    num_anchors, num_gt = anchors_A4.shape[0], gt_boxes_G4.shape[0]
    valid_G = gt_labels_G >= 0
    iou_AG = jnp.where(valid_G[None, :], box_lib.pairwise_iou(anchors_A4, gt_boxes_G4), -1.0)
    best_gt_A = jnp.argmax(iou_AG, axis=1)
    best_iou_A = jnp.max(iou_AG, axis=1)
    best_anchor_G = jnp.argmax(iou_AG, axis=0)
    target = jnp.where(valid_G, best_anchor_G, num_anchors)  # out of range = dropped
    forced_A = jnp.full((num_anchors,), -1, jnp.int32).at[target].set(
        jnp.arange(num_gt, dtype=jnp.int32), mode="drop")
    matched_A = jnp.where(forced_A >= 0, forced_A, best_gt_A)
    positive_A = (forced_A >= 0) | (best_iou_A >= pos_iou)
    negative_A = (best_iou_A < neg_iou) & ~positive_A
    return matched_A, positive_A, negative_A


def hard_negative_mask(loss_BA: jax.Array, positive_BA: jax.Array, negative_BA: jax.Array,
                       neg_pos_ratio: float, min_negatives: int) -> jax.Array:
    """Per image, the `ratio * #positives` (at least `min_negatives`) negatives of highest loss."""
    neg_loss = jnp.where(negative_BA, loss_BA, -jnp.inf)
    rank = jnp.argsort(jnp.argsort(-neg_loss, axis=1), axis=1)  # 0 = hardest negative
    k = jnp.maximum(neg_pos_ratio * positive_BA.sum(1), min_negatives)
    return negative_BA & (rank < k[:, None])
