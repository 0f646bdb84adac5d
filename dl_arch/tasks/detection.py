"""Object detection with the single-shot anchor detector of `dl_arch.models.detection`.

Targets (`detection_targets`): every anchor takes the ground-truth box of highest IoU; it is
positive at IoU >= `pos_iou`, negative below `neg_iou`, ignored in between, and each ground
truth's best anchor is forced positive so that no object goes unassigned (SSD's matching).

Loss (divided by the number of positive anchors in the batch):
- objectness over positives and negatives: sigmoid focal loss (`focal_loss=True`,
  RetinaNet; every negative counts, down-weighted when easy) or binary cross-entropy
  with hard-negative mining (SSD: per image, only the `neg_pos_ratio` x #positives
  negatives of highest loss count);
- class: softmax cross-entropy over the object classes, on positives only;
- box: smooth-L1 on SSD-encoded deltas and/or GIoU loss on decoded boxes (`box_loss`).

Inference: score(anchor, class) = sigmoid(objectness) * softmax(class logits); then a
score threshold and per-class NMS (`models.layers.nms`) with a fixed number of outputs, all
inside `jit`. Evaluation (`detection_metrics`): COCO-style AP inside the eval loop from score
histograms (summable over batches and hosts); the evaluators listed by default add pictures
of predicted boxes at every eval (`detections`) and the exact COCO protocol at the end of a
run (`coco_ap`, detection_metrics.json).
"""

from __future__ import annotations

import functools
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

from dl_arch.config.errors import ConfigError
from dl_arch.config.fields import Field, Fields
from dl_arch.data.box_augment import BOX_AUGMENT_FIELDS
from dl_arch.models.layers import boxes as box_lib
from dl_arch.models.layers.nms import batched_nms
from dl_arch.registry import register_task
from dl_arch.tasks.base import Batch, MetricTotals, Variables, masked_mean_pair
from dl_arch.tasks.detection_metrics import ap_from_histograms, ap_histograms
from dl_arch.tasks.detection_targets import assign_targets, hard_negative_mask
from dl_arch.tasks.supervised import SupervisedTask
from dl_arch.train.compile_options import model_jit

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
}


def detection_scores(outputs: dict[str, jax.Array]) -> jax.Array:
    """Per (anchor, class) scores `[B, A, C]` = P(object) * P(class | object)."""
    return (jax.nn.sigmoid(outputs["objectness_logits"])[..., None]
            * jax.nn.softmax(outputs["class_logits"], axis=-1))


@register_task("detection")
class DetectionTask(SupervisedTask):
    """Anchor assignment, focal / hard-negative objectness, box losses, NMS and COCO AP."""

    fields = DETECTION_FIELDS
    evaluators = ("detections", "coco_ap")  # pictures at each eval, exact COCO AP at the end
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

    @functools.cached_property
    def detect_jit(self) -> Any:
        """`detect` compiled once, shared by the evaluators (pictures, exact COCO AP)."""
        return model_jit(self.detect)

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
            metrics["per_class_ap"] = ap  # [IoU threshold, class]; NaN: class without boxes
            has = ~np.isnan(ap[0])
            metrics["mAP50"] = float(ap[0, has].mean()) if has.any() else 0.0
            metrics["mAP50_95"] = float(ap[:, has].mean()) if has.any() else 0.0
            for c, name in enumerate(self.class_names[: self.num_classes]):
                if has[c]:
                    metrics[f"AP50/{name}"] = float(ap[0, c])
        return metrics
