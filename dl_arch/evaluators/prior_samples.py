"""A VAE's samples: decoded draws of its prior for a fixed noise batch."""

from __future__ import annotations

from typing import Any

import ml_collections

from dl_arch.config.fields import Field
from dl_arch.evaluators.base import EvalContext, Evaluator, Report, every_evals
from dl_arch.registry import register_evaluator
from dl_arch.tasks import image_grids


@register_evaluator("prior_samples", fields={
    "every_evals": every_evals(1),
    "num_samples": Field(64, "prior samples in the grid", low=1),
    "sample_seed": Field(1234, "seed of the prior samples (fixed: comparable across steps)"),
})
class PriorSamples(Evaluator):
    """prior_samples.png, 8 per row; a model without a prior (a plain autoencoder) draws
    nothing, so the autoencoding task can list it for every model."""

    def __init__(self, config: ml_collections.ConfigDict, task: Any):
        super().__init__(config, task)
        self.needs("generate_images")

    def __call__(self, ctx: EvalContext) -> Report:
        if not getattr(self.task, "generates_images", True):
            return Report()
        s = self.settings
        samples = self.task.generate_images(ctx.variables, s.num_samples, s.sample_seed)
        return Report(images={"prior_samples": image_grids.make_grid(samples, 8)})
