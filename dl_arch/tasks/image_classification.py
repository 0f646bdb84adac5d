"""Image classification for the CNN family: auxiliary-head losses and feature-map pictures.

Adds to `classification` (softmax CE, accuracy, top-k, per-class P/R/F1, confusion matrix):
- `config.model.aux_logits` (GoogLeNet): the auxiliary heads' cross-entropy, weighted by
  `config.task.aux_loss_weight` (0.3 in the paper), is added to the training loss.
- `config.visualize_layers` (regexes over intermediate names, e.g. ("layer1", "layer4")):
  at the end of a run, the first-layer filters and those layers' feature maps for
  `config.visualize_num_images` eval images are saved under `<workdir>/feature_maps/`.
"""

from __future__ import annotations

import os
from typing import Any

import jax
import jax.numpy as jnp

from dl_arch.registry import register_task
from dl_arch.tasks.base import Batch, Variables
from dl_arch.tasks.classification import ClassificationTask, cross_entropy
from dl_arch.tasks.feature_maps import save_visualisations


@register_task("image_classification")
class ImageClassificationTask(ClassificationTask):
    """Fields beyond `classification`: task.aux_loss_weight, visualize_layers, ..._num_images."""

    def init_variables(self, rng: jax.Array, batch: Batch) -> Variables:
        # init makes every collection mutable: sown auxiliary logits are outputs, not state.
        variables = super().init_variables(rng, batch)
        return {k: v for k, v in variables.items() if k != "aux_logits"}

    def loss(self, phase: str, params: Any, mutable: Variables, batch: Batch, rng: jax.Array):
        if not self.config.model.get("aux_logits", False):
            return super().loss(phase, params, mutable, batch, rng)
        logits, state = self.model.apply(
            {"params": params, **mutable}, self.inputs(batch), train=True,
            rngs={"dropout": rng}, mutable=[*mutable, "aux_logits"])
        state = dict(state)
        aux = state.pop("aux_logits")
        labels = batch["label"]
        smoothing = self.config.task.get("label_smoothing", 0.0)
        main = cross_entropy(logits, labels, smoothing).mean()
        aux_loss = sum(cross_entropy(v[0], labels, smoothing).mean() for v in aux.values())
        loss = main + self.config.task.get("aux_loss_weight", 0.3) * aux_loss
        metrics = {"accuracy": jnp.mean(jnp.argmax(logits, -1) == labels),
                   "main_loss": main, "aux_loss": aux_loss}
        return loss, (metrics, state)

    def host_report(self, variables: Variables, batch: dict[str, Any], step: int, workdir: str,
                    writer: Any, final: bool) -> None:
        super().host_report(variables, batch, step, workdir, writer, final)
        layers = tuple(self.config.get("visualize_layers", ()) or ())
        if not final or not layers:
            return
        n = int(self.config.get("visualize_num_images", 4))
        images = self.inputs(batch)[:n]
        grids = save_visualisations(self.model, variables, images, layers,
                                    os.path.join(workdir, "feature_maps"))
        if writer is not None:
            writer.write_images(step, grids)
