"""COCO-style detection AP: mAP50 (IoU 0.5), mAP50_95 (COCO) and per-class AP.

On the host, a numpy re-implementation of the `pycocotools` bbox protocol (area range
"all", no crowd annotations), so evaluation needs no COCO json files and runs on any dataset:

1. Per image and class, detections are sorted by score (stable) and cut to
   `max_detections`; each, in order, takes the unmatched ground truth of highest IoU
   with IoU >= threshold (true positive) or stays a false positive.
2. Per class and threshold, detections of all images are merged, sorted by score
   (stable, images in the order they were added), and precision is made monotone.
3. AP is the mean precision at the 101 recall points 0, 0.01, ..., 1; classes without
   ground truth are left out of the mean. `tests/test_detection_metrics.py` checks the
   numbers against pycocotools.

Inside the jitted eval loop, `ap_histograms` counts true and false positives per score bin
(summable over batches and hosts) and `ap_from_histograms` turns the totals into a 101-point
AP that follows the host protocol on binned scores.
"""

from __future__ import annotations

from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np

from dl_arch.config.errors import ConfigError
from dl_arch.models.layers import boxes as box_lib

COCO_IOU_THRESHOLDS = np.linspace(0.5, 0.95, 10)
RECALL_POINTS = np.linspace(0.0, 1.0, 101)


def iou_matrix(a_N4: np.ndarray, b_M4: np.ndarray) -> np.ndarray:
    """Pairwise IoU `[N, M]` of corner boxes, in float64 like pycocotools."""
    a = np.asarray(a_N4, np.float64)[:, None, :]
    b = np.asarray(b_M4, np.float64)[None, :, :]
    h = np.minimum(a[..., 2], b[..., 2]) - np.maximum(a[..., 0], b[..., 0])
    w = np.minimum(a[..., 3], b[..., 3]) - np.maximum(a[..., 1], b[..., 1])
    inter = np.where((h > 0) & (w > 0), h * w, 0.0)
    area_a = (a[..., 2] - a[..., 0]) * (a[..., 3] - a[..., 1])
    area_b = (b[..., 2] - b[..., 0]) * (b[..., 3] - b[..., 1])
    union = area_a + area_b - inter
    return np.where(union > 0, inter / np.where(union > 0, union, 1.0), 0.0)


def greedy_match(ious_DG: np.ndarray, thresholds: np.ndarray) -> np.ndarray:
    """True-positive flags `[T, D]` for score-sorted detections against ground truths."""
    num_det, num_gt = ious_DG.shape
    tp = np.zeros((len(thresholds), num_det), bool)
    for t, thr in enumerate(thresholds):
        taken = np.zeros(num_gt, bool)
        for d in range(num_det):
            cand = np.where(taken, -1.0, ious_DG[d])
            # pycocotools keeps the last gt of the highest IoU among those >= thr
            best = num_gt - 1 - int(np.argmax(cand[::-1])) if num_gt else -1
            if best >= 0 and cand[best] >= min(thr, 1 - 1e-10):
                taken[best] = True
                tp[t, d] = True
    return tp


def average_precision(scores: np.ndarray, tp: np.ndarray, num_gt: int) -> float:
    """101-point interpolated AP of merged detections (`tp` in the order of `scores`)."""
    if len(scores) == 0:
        return 0.0
    order = np.argsort(-scores, kind="mergesort")
    tp = tp[order].astype(np.float64)
    tp_sum = np.cumsum(tp)
    fp_sum = np.cumsum(1.0 - tp)
    recall = tp_sum / num_gt
    precision = tp_sum / (tp_sum + fp_sum + np.spacing(1))
    precision = np.maximum.accumulate(precision[::-1])[::-1]  # monotone from the right
    idx = np.searchsorted(recall, RECALL_POINTS, side="left")
    q = np.where(idx < len(precision), precision[np.minimum(idx, len(precision) - 1)], 0.0)
    return float(q.mean())


class DetectionEvaluator:
    """Accumulates detections image by image; `compute()` gives COCO-style AP figures."""

    def __init__(self, num_classes: int, iou_thresholds: Sequence[float] = COCO_IOU_THRESHOLDS,
                 max_detections: int = 100, class_names: Sequence[str] | None = None):
        if num_classes < 1:
            raise ConfigError("config.model.num_classes must be >= 1 for detection metrics")
        self.num_classes = num_classes
        self.thresholds = np.asarray(iou_thresholds, np.float64)
        self.max_detections = max_detections
        self.class_names = list(class_names) if class_names else [str(k) for k in
                                                                   range(num_classes)]
        self._scores: list[list[np.ndarray]] = [[] for _ in range(num_classes)]
        self._tp: list[list[np.ndarray]] = [[] for _ in range(num_classes)]
        self._num_gt = np.zeros(num_classes, np.int64)
        self.num_images = 0

    def add_image(self, det_boxes: np.ndarray, det_scores: np.ndarray, det_classes: np.ndarray,
                  gt_boxes: np.ndarray, gt_classes: np.ndarray) -> None:
        """Adds one image: detections `[D, 4]`/`[D]`/`[D]` and ground truth `[G, 4]`/`[G]`."""
        det_boxes, gt_boxes = np.reshape(det_boxes, (-1, 4)), np.reshape(gt_boxes, (-1, 4))
        det_scores = np.asarray(det_scores, np.float64).reshape(-1)
        det_classes = np.asarray(det_classes).reshape(-1)
        gt_classes = np.asarray(gt_classes).reshape(-1)
        self.num_images += 1
        for k in np.union1d(np.unique(det_classes), np.unique(gt_classes)).astype(int):
            if not 0 <= k < self.num_classes:
                raise ConfigError(f"class id {k} outside [0, {self.num_classes}); check "
                                 "config.model.num_classes against the dataset")
            d = np.flatnonzero(det_classes == k)
            d = d[np.argsort(-det_scores[d], kind="mergesort")][: self.max_detections]
            g = np.flatnonzero(gt_classes == k)
            self._num_gt[k] += len(g)
            tp = greedy_match(iou_matrix(det_boxes[d], gt_boxes[g]), self.thresholds)
            self._scores[k].append(det_scores[d])
            self._tp[k].append(tp)

    def add_batch(self, det_boxes: np.ndarray, det_scores: np.ndarray, det_classes: np.ndarray,
                  det_valid: np.ndarray, gt_boxes: np.ndarray, gt_classes: np.ndarray,
                  image_mask: np.ndarray | None = None) -> None:
        """Adds a padded batch: `det_*` `[B, D, ...]`, `gt_classes` -1 marks padding boxes."""
        for i in range(len(det_boxes)):
            if image_mask is not None and not image_mask[i]:
                continue
            dv = np.asarray(det_valid[i], bool)
            gv = np.asarray(gt_classes[i]) >= 0
            self.add_image(np.asarray(det_boxes[i])[dv], np.asarray(det_scores[i])[dv],
                           np.asarray(det_classes[i])[dv], np.asarray(gt_boxes[i])[gv],
                           np.asarray(gt_classes[i])[gv])

    def per_class_ap(self) -> np.ndarray:
        """AP `[K, T]` per class and IoU threshold; NaN for classes without ground truth."""
        ap = np.full((self.num_classes, len(self.thresholds)), np.nan)
        for k in range(self.num_classes):
            if self._num_gt[k] == 0:
                continue
            scores = np.concatenate(self._scores[k]) if self._scores[k] else np.zeros(0)
            tp = (np.concatenate(self._tp[k], axis=1) if self._tp[k]
                  else np.zeros((len(self.thresholds), 0), bool))
            for t in range(len(self.thresholds)):
                ap[k, t] = average_precision(scores, tp[t], int(self._num_gt[k]))
        return ap

    def compute(self) -> dict[str, float]:
        """{'mAP50', 'mAP50_95', 'AP50/<class>', 'AP/<class>'} (NaN without gt)."""
        ap = self.per_class_ap()
        has_gt = ~np.isnan(ap[:, 0])
        out: dict[str, float] = {}
        at50 = np.flatnonzero(np.isclose(self.thresholds, 0.5))
        if len(at50):
            out["mAP50"] = float(ap[has_gt, at50[0]].mean()) if has_gt.any() else float("nan")
        out["mAP50_95"] = float(ap[has_gt].mean()) if has_gt.any() else float("nan")
        for k, name in enumerate(self.class_names):
            if len(at50):
                out[f"AP50/{name}"] = float(ap[k, at50[0]])
            out[f"AP/{name}"] = float(np.mean(ap[k]))
        return out


# ------------------------------------------------------------ in-loop AP histograms
def match_detections(det: dict[str, jax.Array], gt_boxes_G4: jax.Array, gt_labels_G: jax.Array,
                     thresholds: jax.Array) -> jax.Array:
    """True-positive flags `[T, M]` of one image's score-sorted detections (COCO greedy)."""
    iou_MG = box_lib.pairwise_iou(det["boxes"], gt_boxes_G4)
    same = (det["classes"][:, None] == gt_labels_G[None, :]) & (gt_labels_G >= 0)[None, :]
    iou_MG = jnp.where(same & det["valid"][:, None], iou_MG, -1.0)

    def per_threshold(thr: jax.Array) -> jax.Array:
        def step(taken_G, iou_G):
            cand = jnp.where(taken_G, -1.0, iou_G)
            best = jnp.argmax(cand)
            hit = cand[best] >= thr
            return taken_G.at[best].set(taken_G[best] | hit), hit

        _, tp = jax.lax.scan(step, jnp.zeros(gt_labels_G.shape, bool), iou_MG)
        return tp

    return jax.vmap(per_threshold)(thresholds)


def ap_histograms(dets: dict[str, jax.Array], gt_boxes_BG4: jax.Array, gt_labels_BG: jax.Array,
                  mask_B: jax.Array, num_classes: int, num_bins: int
                  ) -> dict[str, jax.Array]:
    """Summable TP / FP counts `[T, C, bins]` per score bin, and ground-truth counts `[C]`."""
    thresholds = jnp.asarray(COCO_IOU_THRESHOLDS, jnp.float32)
    tp_BTM = jax.vmap(match_detections, in_axes=(0, 0, 0, None))(
        dets, gt_boxes_BG4, gt_labels_BG, thresholds)
    real_BM = dets["valid"] & (mask_B[:, None] > 0)
    bins_BM = jnp.clip((dets["scores"] * num_bins).astype(jnp.int32), 0, num_bins - 1)
    cls_BM = jnp.maximum(dets["classes"], 0)
    seg = (cls_BM * num_bins + bins_BM).reshape(-1)

    def hist(flags_BM: jax.Array) -> jax.Array:
        w = (flags_BM & real_BM).reshape(-1).astype(jnp.float32)
        return jax.ops.segment_sum(w, seg, num_classes * num_bins).reshape(num_classes, num_bins)

    tp = jax.vmap(hist)(jnp.moveaxis(tp_BTM, 1, 0))
    fp = jax.vmap(hist)(jnp.moveaxis(~tp_BTM, 1, 0))
    gt_real = (gt_labels_BG >= 0) & (mask_B[:, None] > 0)
    num_gt = jax.ops.segment_sum(gt_real.reshape(-1).astype(jnp.float32),
                                 jnp.maximum(gt_labels_BG, 0).reshape(-1), num_classes)
    return {"tp": tp, "fp": fp, "num_gt": num_gt}


def ap_from_histograms(tp_TCS: np.ndarray, fp_TCS: np.ndarray, num_gt_C: np.ndarray
                       ) -> np.ndarray:
    """101-point AP `[T, C]` from score-bin counts (NaN for classes without ground truth)."""
    tp = np.cumsum(np.asarray(tp_TCS, np.float64)[..., ::-1], axis=-1)  # high scores first
    fp = np.cumsum(np.asarray(fp_TCS, np.float64)[..., ::-1], axis=-1)
    num_gt = np.asarray(num_gt_C, np.float64)
    ap = np.full(tp.shape[:2], np.nan)
    for t in range(tp.shape[0]):
        for c in range(tp.shape[1]):
            if num_gt[c] == 0:
                continue
            seen = (tp[t, c] + fp[t, c]) > 0
            if not seen.any():
                ap[t, c] = 0.0
                continue
            rec = tp[t, c][seen] / num_gt[c]
            prec = np.maximum.accumulate((tp[t, c][seen] / (tp[t, c] + fp[t, c])[seen])[::-1])[::-1]
            idx = np.searchsorted(rec, RECALL_POINTS, side="left")
            ap[t, c] = np.where(idx < len(prec), prec[np.minimum(idx, len(prec) - 1)], 0.0).mean()
    return ap
