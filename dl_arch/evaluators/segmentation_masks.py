"""Pictures of a segmenter's predictions: input | ground truth | prediction of eval images."""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from dl_arch.config.fields import Field
from dl_arch.evaluators.base import EvalContext, Evaluator, Report, every_evals
from dl_arch.registry import register_evaluator
from dl_arch.tasks.mask_pictures import mask_comparison


@register_evaluator("segmentation_masks", fields={
    "every_evals": every_evals(1),
    "num_images": Field(8, "eval images drawn with their ground truth and predicted masks",
                        low=1),
    "per_row": Field(2, "examples side by side in each row of the picture", low=1),
})
class SegmentationMasks(Evaluator):
    """segmentation_masks.png: the first eval images, each as input | ground truth |
    prediction in a fixed colour per class (ignored pixels grey), with a legend."""

    def __init__(self, config: ml_collections.ConfigDict, task: Any):
        super().__init__(config, task)
        self.needs("predict_jit", "inputs", "class_names")

    def __call__(self, ctx: EvalContext) -> Report:
        batch = ctx.batch
        real = np.asarray(batch["_mask"]) > 0 if "_mask" in batch else np.ones(
            len(batch["mask"]), bool)
        rows = np.flatnonzero(real)[: self.settings.num_images]
        if rows.size == 0:
            return Report()
        images = np.asarray(self.task.inputs(batch))  # the whole batch: the compiled eval shape
        preds = np.asarray(jax.device_get(self.task.predict_jit(ctx.variables,
                                                                jnp.asarray(images))))
        picture = mask_comparison(self._displayed(images[rows]), np.asarray(batch["mask"])[rows],
                                  preds[rows], self.task.class_names, self.settings.per_row)
        return Report(images={"segmentation_masks": picture})

    def _displayed(self, images: np.ndarray) -> np.ndarray:
        """The model's inputs with the dataset's normalisation undone, when it declares one."""
        d = self.config.dataset
        images = np.asarray(images, np.float32)
        if "normalize_std" in d and len(np.atleast_1d(d.normalize_std)):
            images = images * np.asarray(d.normalize_std, np.float32)
        if "normalize_mean" in d and len(np.atleast_1d(d.normalize_mean)):
            images = images + np.asarray(d.normalize_mean, np.float32)
        return images
