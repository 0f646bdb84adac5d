"""Image classification for the CNN family: auxiliary-head losses.

Adds to `classification` (softmax CE, accuracy, top-k, per-class P/R/F1, confusion matrix):
`config.model.aux_logits` (GoogLeNet): the auxiliary heads' cross-entropy, weighted by
`config.task.aux_loss_weight` (0.3 in the paper), is added to the training loss.
Filters and feature maps are drawn by the `feature_maps` evaluator when a config lists it
(its layers are model-specific, so it is not on by default).
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

from dl_arch.config.fields import Field
from dl_arch.registry import register_task
from dl_arch.tasks.base import Batch, Variables
from dl_arch.tasks.classification import ClassificationTask, cross_entropy


@register_task("image_classification")
class ImageClassificationTask(ClassificationTask):
    """`classification` plus auxiliary-head losses (module doc)."""

    fields = {
        "aux_loss_weight": Field(0.3, "weight of each auxiliary head's loss (GoogLeNet with "
                                      "model.aux_logits)", low=0.0),
    }

    def init_variables(self, rng: jax.Array, batch: Batch) -> Variables:
        # init makes every collection mutable: sown auxiliary logits are outputs, not state.
        variables = super().init_variables(rng, batch)
        return {k: v for k, v in variables.items() if k != "aux_logits"}

    def loss(self, phase: str, params: Any, mutable: Variables, batch: Batch, rng: jax.Array):
        if not getattr(self.model, "aux_logits", False):
            return super().loss(phase, params, mutable, batch, rng)
        logits, state = self.model.apply(
            {"params": params, **mutable}, self.inputs(batch), train=True,
            rngs={"dropout": rng}, mutable=[*mutable, "aux_logits"])
        state = dict(state)
        aux = state.pop("aux_logits")
        labels = batch["label"]
        smoothing = self.config.task.label_smoothing
        main = cross_entropy(logits, labels, smoothing).mean()
        aux_loss = sum(cross_entropy(v[0], labels, smoothing).mean() for v in aux.values())
        loss = main + self.config.task.aux_loss_weight * aux_loss
        metrics = {"accuracy": jnp.mean(jnp.argmax(logits, -1) == labels),
                   "main_loss": main, "aux_loss": aux_loss}
        return loss, (metrics, state)
