"""Image classification for the CNN family: auxiliary-head losses and feature-map pictures.

Adds to `classification` (softmax CE, accuracy, top-k, per-class P/R/F1, confusion matrix):
- `config.model.aux_logits` (GoogLeNet): the auxiliary heads' cross-entropy, weighted by
  `config.task.aux_loss_weight` (0.3 in the paper), is added to the training loss.
- `config.task.visualize_layers` (regexes over intermediate names, e.g. ("layer1", "layer4")):
  at the end of a run, the first-layer filters and those layers' feature maps for
  `config.task.visualize_num_images` eval images are saved under `<workdir>/feature_maps/`.
"""

from __future__ import annotations

import os
from typing import Any

import jax
import jax.numpy as jnp

from dl_arch.config.fields import Field
from dl_arch.registry import register_task
from dl_arch.tasks.base import Batch, Variables
from dl_arch.tasks.classification import ClassificationTask, cross_entropy
from dl_arch.tasks.feature_maps import save_visualisations


@register_task("image_classification")
class ImageClassificationTask(ClassificationTask):
    """`classification` plus auxiliary-head losses and feature-map pictures (module doc)."""

    fields = {
        "aux_loss_weight": Field(0.3, "weight of each auxiliary head's loss (GoogLeNet with "
                                      "model.aux_logits)", low=0.0),
        "visualize_layers": Field((), "end of run: filters and the feature maps of the layers "
                                      "matching these regexes (empty: none)",
                                  each=Field("", "a regex over intermediate names", kind=str)),
        "visualize_num_images": Field(4, "eval images whose feature maps are drawn", low=1),
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

    def host_report(self, variables: Variables, batch: dict[str, Any], step: int, workdir: str,
                    writer: Any, final: bool) -> None:
        super().host_report(variables, batch, step, workdir, writer, final)
        layers = self.config.task.visualize_layers
        if not final or not layers:
            return
        n = self.config.task.visualize_num_images
        images = self.inputs(batch)[:n]
        grids = save_visualisations(self.model, variables, images, layers,
                                    os.path.join(workdir, "feature_maps"))
        if writer is not None:
            writer.write_images(step, grids)
