"""The exact COCO AP protocol (`detection_metrics.DetectionEvaluator`) over the eval split.

The in-loop `eval/mAP50` comes from score histograms; this evaluator matches every
detection instead, as pycocotools does, and is listed by the detection task for the end
of the run: `eval/coco/<figure>` scalars (mAP50, mAP50_95, AP50/<class>, AP/<class>) and
detection_metrics.json. With several processes each reads its share of the eval split and
all of them score the gathered whole.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from dl_arch.evaluators.base import EvalContext, Evaluator, Report
from dl_arch.registry import register_evaluator
from dl_arch.tasks.detection_metrics import DetectionEvaluator


def _gathered(tree: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Every process's rows of a batch, concatenated (itself when there is one process)."""
    if jax.process_count() == 1:
        return tree
    from jax.experimental import multihost_utils

    return jax.device_get(multihost_utils.process_allgather(tree, tiled=True))


@register_evaluator("coco_ap", fields={})
class CocoAP(Evaluator):
    """eval/coco/* scalars and detection_metrics.json (NaN: a class without ground truth)."""

    def __init__(self, config: ml_collections.ConfigDict, task: Any):
        super().__init__(config, task)
        self.needs("detect_jit", "inputs", "nms_options", "num_classes", "class_names")

    def __call__(self, ctx: EvalContext) -> Report:
        task = self.task
        ev = DetectionEvaluator(task.num_classes,
                                max_detections=task.nms_options()["max_detections"],
                                class_names=task.class_names[: task.num_classes])
        for batch in ctx.eval_batches():
            dets = jax.device_get(task.detect_jit(ctx.variables,
                                                  jnp.asarray(task.inputs(batch))))
            rows = _gathered({**dets, "gt_boxes": np.asarray(batch["boxes"]),
                              "gt_labels": np.asarray(batch["box_labels"]),
                              "mask": np.asarray(batch["_mask"])})
            ev.add_batch(rows["boxes"], rows["scores"], rows["classes"], rows["valid"],
                         rows["gt_boxes"], rows["gt_labels"], rows["mask"])
        exact = ev.compute()
        return Report(scalars={f"coco/{k}": v for k, v in exact.items() if np.isfinite(v)},
                      records={"detection_metrics": exact})
