"""An autoencoder's 2-D latent codes of eval images, coloured by class."""

from __future__ import annotations

from typing import Any

import ml_collections

from dl_arch.config.fields import Field
from dl_arch.evaluators.base import EvalContext, Evaluator, Report, every_evals
from dl_arch.evaluators.examples import load_examples
from dl_arch.registry import register_evaluator
from dl_arch.tasks import image_grids


@register_evaluator("latent_scatter", fields={
    "every_evals": every_evals(1),
    "scatter_examples": Field(1000, "eval images in the scatter plot", low=1),
})
class LatentScatter(Evaluator):
    """latent_scatter.png: the codes (a VAE's posterior means) of the eval split's first
    `scatter_examples` images; a model whose latent_dim is not 2 draws nothing, so the
    autoencoding task can list it for every model."""

    def __init__(self, config: ml_collections.ConfigDict, task: Any):
        super().__init__(config, task)
        self.needs("latents", "model")

    def __call__(self, ctx: EvalContext) -> Report:
        if self.task.model.latent_dim != 2:
            return Report()
        ds = self.config.dataset
        images, labels = load_examples(ds, ds.eval_split, self.config.seed,
                                       self.settings.scatter_examples)
        z = self.task.latents(ctx.variables, images)
        names = ds.class_names if "class_names" in ds else None
        return Report(images={"latent_scatter": image_grids.scatter_image(
            z, labels, f"latent means of the eval split, step {ctx.step}", names)})
