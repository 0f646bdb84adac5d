"""Pictures of a detector's predicted boxes on the first eval images, at every evaluation."""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from dl_arch.config.fields import Field
from dl_arch.evaluators.base import EvalContext, Evaluator, Report, every_evals
from dl_arch.registry import register_evaluator
from dl_arch.tasks.detection_plots import detection_grid


@register_evaluator("detections", fields={
    "every_evals": every_evals(1),
    "report_images": Field(8, "eval images drawn with their predicted boxes", low=1),
    "draw_min_score": Field(0.3, "boxes drawn need at least this score", low=0.0, high=1.0),
})
class Detections(Evaluator):
    """detections.png: predicted boxes (class: score) over the dashed ground truth."""

    def __init__(self, config: ml_collections.ConfigDict, task: Any):
        super().__init__(config, task)
        self.needs("detect_jit", "inputs", "class_names")

    def __call__(self, ctx: EvalContext) -> Report:
        batch = ctx.batch
        n = min(self.settings.report_images, len(batch["_mask"]))
        images = np.asarray(self.task.inputs(batch))  # the whole batch: the eval shape
        dets = jax.device_get(self.task.detect_jit(ctx.variables, jnp.asarray(images)))
        grid = detection_grid(images[:n], {k: v[:n] for k, v in dets.items()},
                              batch["boxes"][:n], batch["box_labels"][:n],
                              self.task.class_names, self.settings.draw_min_score,
                              ncols=min(n, 4))
        return Report(images={"detections": grid})
