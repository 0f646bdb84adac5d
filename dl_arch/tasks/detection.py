"""Object detection with the single-shot anchor detector of `dl_arch.models.detection`.

Targets: every anchor takes the ground-truth box of highest IoU; it is positive at
IoU >= `pos_iou`, negative below `neg_iou`, ignored in between, and each ground truth's
best anchor is forced positive so that no object goes unassigned (SSD's matching).

Loss (divided by the number of positive anchors in the batch):
- objectness over positives and negatives: sigmoid focal loss (`focal_loss=True`,
  RetinaNet; every negative counts, down-weighted when easy) or binary cross-entropy
  with hard-negative mining (SSD: per image, only the `neg_pos_ratio` x #positives
  negatives of highest loss count);
- class: softmax cross-entropy over the object classes, on positives only;
- box: smooth-L1 on SSD-encoded deltas and/or GIoU loss on decoded boxes (`box_loss`).

Inference: score(anchor, class) = sigmoid(objectness) * softmax(class logits); then a
score threshold and per-class NMS with a fixed number of outputs, all inside `jit`.
Evaluation: COCO-style AP inside the eval loop from score histograms (summable over
batches and hosts), and the exact COCO protocol (`detection_metrics`) at the end of a
run; pictures of predicted boxes at every eval.
"""

from __future__ import annotations

import functools
import json
import os
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

from dl_arch.config.errors import ConfigError
from dl_arch.config.fields import Field, Fields
from dl_arch.data.box_augment import BOX_AUGMENT_FIELDS
from dl_arch.models.layers import boxes as box_lib
from dl_arch.registry import register_task
from dl_arch.tasks.base import Batch, MetricTotals, Variables, masked_mean_pair
from dl_arch.tasks.detection_metrics import (
    COCO_IOU_THRESHOLDS,
    RECALL_POINTS,
    DetectionEvaluator,
)
from dl_arch.tasks.supervised import SupervisedTask

BOX_LOSSES = ("smooth_l1", "giou", "both")
_UNIT = dict(low=0.0, high=1.0)

DETECTION_FIELDS: Fields = {
    "focal_loss": Field(True, "objectness loss: sigmoid focal (True, RetinaNet) or BCE with "
                              "hard-negative mining (False, SSD)"),
    "focal_alpha": Field(0.25, "focal loss: weight of positives", **_UNIT),
    "focal_gamma": Field(2.0, "focal loss: down-weighting of easy anchors", low=0.0),
    "neg_pos_ratio": Field(3.0, "focal_loss=False: negatives kept per positive (SSD)", low=0.0),
    "min_negatives": Field(0, "focal_loss=False: negatives kept per image even without objects",
                           low=0),
    "pos_iou": Field(0.5, "anchors at IoU >= this with a box are positives", low=0.0, high=1.0,
                     low_open=True),
    "neg_iou": Field(0.4, "anchors below this IoU with every box are negatives (<= pos_iou)",
                     low=0.0, high=1.0, low_open=True),
    "box_loss": Field("smooth_l1", "box regression loss", choices=BOX_LOSSES),
    "smooth_l1_beta": Field(1.0, "smooth-L1 switches from quadratic to linear here", low=0.0,
                            low_open=True),
    "box_weight": Field(1.0, "weight of the box loss against objectness + class", low=0.0),
    "class_weight": Field(1.0, "weight of the class cross-entropy", low=0.0),
    "score_threshold": Field(0.05, "detections below this score are dropped before NMS", **_UNIT),
    "nms_iou": Field(0.5, "same-class boxes above this IoU with a better one are removed",
                     **_UNIT),
    "max_detections": Field(100, "fixed number of detections per image after NMS", low=1),
    "pre_nms_top_k": Field(1000, "best (anchor, class) candidates entering NMS", low=1),
    "score_bins": Field(1000, "resolution of the in-loop AP histograms", low=1),
    "report_images": Field(8, "images drawn with predicted boxes at each eval", low=0),
    "draw_min_score": Field(0.3, "boxes drawn in the pictures need at least this score", **_UNIT),
    "exact_eval_at_end": Field(True, "exact COCO protocol at the end -> detection_metrics.json"),
}


# ----------------------------------------------------------------- target assignment
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


# ------------------------------------------------------------------------------- NMS
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


def detection_scores(outputs: dict[str, jax.Array]) -> jax.Array:
    """Per (anchor, class) scores `[B, A, C]` = P(object) * P(class | object)."""
    return (jax.nn.sigmoid(outputs["objectness_logits"])[..., None]
            * jax.nn.softmax(outputs["class_logits"], axis=-1))


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


# ------------------------------------------------------------------------- drawing
def draw_detections(image_HWC: np.ndarray, dets: dict[str, np.ndarray],
                    class_names: list[str], min_score: float, gt_boxes: np.ndarray | None = None
                    ) -> np.ndarray:
    """One image with predicted boxes (class: score) and dashed ground truth, as uint8 RGB."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.patches import Rectangle

    image = np.clip(np.asarray(image_HWC, np.float32), 0, 1)
    if image.shape[-1] == 1:
        image = np.repeat(image, 3, -1)
    h, w = image.shape[:2]
    fig = Figure(figsize=(3, 3), dpi=80)
    canvas = FigureCanvasAgg(fig)
    ax = fig.add_axes((0, 0, 1, 1))
    ax.imshow(image, extent=(0, w, h, 0))
    ax.set_axis_off()
    colours = ("#e6194b", "#3cb44b", "#4363d8", "#f58231", "#911eb4", "#46f0f0", "#f032e6",
               "#bcf60c", "#008080", "#9a6324")
    for box in [] if gt_boxes is None else gt_boxes:
        y0, x0, y1, x1 = box * np.array([h, w, h, w])
        ax.add_patch(Rectangle((x0, y0), x1 - x0, y1 - y0, fill=False, ec="white", lw=1,
                               ls="--"))
    for box, score, cls, ok in zip(dets["boxes"], dets["scores"], dets["classes"], dets["valid"],
                                   strict=True):
        if not ok or score < min_score:
            continue
        y0, x0, y1, x1 = box * np.array([h, w, h, w])
        colour = colours[int(cls) % len(colours)]
        ax.add_patch(Rectangle((x0, y0), x1 - x0, y1 - y0, fill=False, ec=colour, lw=2))
        name = class_names[int(cls)] if int(cls) < len(class_names) else str(int(cls))
        ax.text(x0, y0, f"{name} {score:.2f}", color="white", fontsize=7, va="bottom",
                bbox={"facecolor": colour, "alpha": 0.8, "pad": 1, "lw": 0})
    canvas.draw()
    return np.asarray(canvas.buffer_rgba())[..., :3].copy()


# ---------------------------------------------------------------------------- task
@register_task("detection")
class DetectionTask(SupervisedTask):
    """Anchor assignment, focal / hard-negative objectness, box losses, NMS and COCO AP."""

    fields = DETECTION_FIELDS
    dataset_fields = BOX_AUGMENT_FIELDS  # read by `preprocess` (box-aware augmentation)

    def __init__(self, config: Any):
        super().__init__(config)
        t = config.task
        self.num_classes = int(config.model.num_classes)
        self.box_loss = t.box_loss
        self.pos_iou, self.neg_iou = t.pos_iou, t.neg_iou
        if self.neg_iou > self.pos_iou:
            raise ConfigError(f"config.task.neg_iou={self.neg_iou} exceeds config.task.pos_iou="
                              f"{self.pos_iou}; anchors between them are ignored, so use "
                              f"neg_iou <= pos_iou")
        self.class_names = list(config.dataset.class_names or
                                [str(k) for k in range(self.num_classes)])
        self.last_ap: np.ndarray | None = None
        self._detect_jit = jax.jit(self.detect)  # shared by pictures and the exact eval

    def nms_options(self) -> dict[str, Any]:
        t = self.config.task
        return {"iou_threshold": t.nms_iou, "score_threshold": t.score_threshold,
                "max_detections": t.max_detections, "pre_nms_top_k": t.pre_nms_top_k}

    def preprocess(self, example: dict[str, Any], rng: Any, train: bool) -> dict[str, Any]:
        from dl_arch.data.box_augment import augment_boxes

        return augment_boxes(example, rng, self.config.dataset, train)

    # ----- loss
    def losses(self, outputs: dict[str, jax.Array], batch: Batch) -> dict[str, jax.Array]:
        """Per-image loss terms `[B]` (each already divided by the batch's positives)."""
        t = self.config.task
        anchors = outputs["anchors"]
        gt_boxes, gt_labels = batch["boxes"].astype(jnp.float32), batch["box_labels"]
        assign = functools.partial(assign_targets, pos_iou=self.pos_iou, neg_iou=self.neg_iou)
        matched_BA, pos_BA, neg_BA = jax.vmap(assign, in_axes=(None, 0, 0))(
            anchors, gt_boxes, gt_labels)
        num_pos = jnp.maximum(pos_BA.sum(), 1).astype(jnp.float32)
        posf = pos_BA.astype(jnp.float32)

        obj_logits = outputs["objectness_logits"]
        if t.focal_loss:
            obj = optax.sigmoid_focal_loss(obj_logits, posf, alpha=t.focal_alpha,
                                           gamma=t.focal_gamma)
            obj = obj * (pos_BA | neg_BA)
        else:
            obj = optax.sigmoid_binary_cross_entropy(obj_logits, posf)
            hard = hard_negative_mask(jax.lax.stop_gradient(obj), pos_BA, neg_BA,
                                      t.neg_pos_ratio, t.min_negatives)
            obj = obj * (pos_BA | hard)

        labels_BA = jnp.take_along_axis(jnp.maximum(gt_labels, 0), matched_BA, axis=1)
        cls = optax.softmax_cross_entropy_with_integer_labels(outputs["class_logits"], labels_BA)

        matched_boxes = jnp.take_along_axis(gt_boxes, matched_BA[..., None], axis=1)
        out = {"objectness_loss": obj.sum(1) / num_pos, "class_loss": (cls * posf).sum(1) / num_pos}
        box = jnp.zeros(obj.shape[0])
        if self.box_loss in ("smooth_l1", "both"):
            target = box_lib.encode_boxes(matched_boxes, anchors[None])
            beta = t.smooth_l1_beta
            sl1 = optax.huber_loss(outputs["box_deltas"], target, delta=beta).sum(-1) / beta
            out["smooth_l1_loss"] = (sl1 * posf).sum(1) / num_pos
            box = box + out["smooth_l1_loss"]
        if self.box_loss in ("giou", "both"):
            pred = box_lib.decode_boxes(outputs["box_deltas"], anchors[None])
            g = 1.0 - box_lib.elementwise_giou(pred, matched_boxes)
            out["giou_loss"] = (g * posf).sum(1) / num_pos
            box = box + out["giou_loss"]
        out["box_loss"] = box
        out["total"] = (out["objectness_loss"] + t.class_weight * out["class_loss"]
                        + t.box_weight * box)
        out["positives_per_image"] = pos_BA.sum(1).astype(jnp.float32)
        return out

    def loss(self, phase: str, params: Any, mutable: Variables, batch: Batch, rng: jax.Array):
        outputs, new_mutable = self.apply_train(params, mutable, batch, rng)
        terms = self.losses(outputs, batch)
        metrics = {k: v.sum() for k, v in terms.items() if k.endswith("_loss")}
        metrics["positives_per_image"] = terms["positives_per_image"].mean()
        return terms["total"].sum(), (metrics, new_mutable)

    # ----- inference
    def detect(self, variables: Variables, images: jax.Array) -> dict[str, jax.Array]:
        """Images -> fixed-size detections `{boxes [B, M, 4], scores, classes, valid}`."""
        outputs = self.model.apply(variables, images, train=False)
        boxes = jnp.clip(box_lib.decode_boxes(outputs["box_deltas"], outputs["anchors"][None]),
                         0.0, 1.0)
        return batched_nms(boxes, detection_scores(outputs), **self.nms_options())

    def eval_metrics(self, variables: Variables, batch: Batch) -> MetricTotals:
        outputs = self.apply_eval(variables, batch)
        mask = batch["_mask"]
        terms = self.losses(outputs, batch)
        # per-image terms are normalised by the batch's positives; rescale to per image
        scale = jnp.maximum(terms["positives_per_image"].sum(), 1.0) / jnp.maximum(
            terms["positives_per_image"], 1.0)
        out = {k: masked_mean_pair(v * scale, mask) for k, v in terms.items()
               if k.endswith("_loss")}
        out["loss"] = masked_mean_pair(terms["total"] * scale, mask)
        boxes = jnp.clip(box_lib.decode_boxes(outputs["box_deltas"], outputs["anchors"][None]),
                         0.0, 1.0)
        dets = batched_nms(boxes, detection_scores(outputs), **self.nms_options())
        hists = ap_histograms(dets, batch["boxes"].astype(jnp.float32), batch["box_labels"], mask,
                              self.num_classes, self.config.task.score_bins)
        one = jnp.ones(())
        out.update({f"_ap_{k}": (v, one) for k, v in hists.items()})
        out["detections_per_image"] = masked_mean_pair(dets["valid"].sum(1), mask)
        return out

    def finalize_metrics(self, totals: dict[str, tuple[Any, Any]]) -> dict[str, Any]:
        totals = dict(totals)
        hist = {k[len("_ap_"):]: totals.pop(k)[0] for k in list(totals) if k.startswith("_ap_")}
        metrics = super().finalize_metrics(totals)
        if hist:
            ap = ap_from_histograms(hist["tp"], hist["fp"], hist["num_gt"])
            self.last_ap = ap
            has = ~np.isnan(ap[0])
            metrics["mAP50"] = float(ap[0, has].mean()) if has.any() else 0.0
            metrics["mAP50_95"] = float(ap[:, has].mean()) if has.any() else 0.0
            for c, name in enumerate(self.class_names[: self.num_classes]):
                if has[c]:
                    metrics[f"AP50/{name}"] = float(ap[0, c])
        return metrics

    # ----- host side
    def evaluate_exact(self, variables: Variables, max_batches: int = 0) -> dict[str, float]:
        """The exact COCO protocol over the eval split (host-side, `detection_metrics`)."""
        from dl_arch.data.pipeline import eval_batches

        c = self.config
        ev = DetectionEvaluator(self.num_classes, max_detections=self.nms_options()[
            "max_detections"], class_names=self.class_names[: self.num_classes])
        for batch in eval_batches(c.dataset, c.seed, c.eval_batch_size or c.batch_size,
                                  self.preprocess, max_batches=max_batches):
            dets = jax.device_get(self._detect_jit(variables, jnp.asarray(self.inputs(batch))))
            ev.add_batch(dets["boxes"], dets["scores"], dets["classes"], dets["valid"],
                         batch["boxes"], batch["box_labels"], batch["_mask"])
        return ev.compute()

    def host_report(self, variables: Variables, batch: dict[str, Any], step: int, workdir: str,
                    writer: Any, final: bool) -> None:
        from dl_arch.tasks.image_grids import make_grid, publish

        t = self.config.task
        n = min(t.report_images, len(batch["_mask"]))
        images = np.asarray(self.inputs(batch))  # the whole batch: same shape as eval batches
        dets = jax.device_get(self._detect_jit(variables, jnp.asarray(images)))
        pictures = []
        for i in range(n):
            one = {k: v[i] for k, v in dets.items()}
            gt = np.asarray(batch["boxes"][i])[np.asarray(batch["box_labels"][i]) >= 0]
            pictures.append(draw_detections(images[i], one, self.class_names,
                                            t.draw_min_score, gt))
        grid = make_grid(np.stack(pictures).astype(np.float32) / 255.0, ncols=min(n, 4))
        publish({"detections": grid}, step, workdir, writer, final)
        if final and t.exact_eval_at_end and jax.process_index() == 0:
            exact = self.evaluate_exact(variables, self.config.eval_max_batches)
            if writer is not None:
                writer.write_scalars(step, {f"final/{k}": v for k, v in exact.items()
                                            if np.isfinite(v)})  # NaN: class without boxes
            if workdir:
                with open(os.path.join(workdir, "detection_metrics.json"), "w") as f:
                    json.dump(exact, f, indent=1)
