"""A GAN's pictures: a grid of a fixed noise batch and latent interpolation strips."""

from __future__ import annotations

from typing import Any

import jax
import ml_collections
import numpy as np

from dl_arch.config.fields import Field
from dl_arch.evaluators.base import EvalContext, Evaluator, Report, every_evals
from dl_arch.registry import register_evaluator
from dl_arch.tasks import image_grids

NUM_STRIPS = 4  # interpolation strips, between pairs of fixed noise vectors


@register_evaluator("gan_samples", fields={
    "every_evals": every_evals(1),
    "num_report_images": Field(64, "generated images in the sample grid", low=1),
    "interpolation_steps": Field(10, "images per latent interpolation strip", low=2),
    "sample_seed": Field(1234, "seed of the fixed noise batch (comparable across steps)"),
})
class GanSamples(Evaluator):
    """samples.png (8 per row) and interpolation.png (one strip per row), drawn by the
    variables evaluation uses (G's average, with its standing statistics, when kept)."""

    def __init__(self, config: ml_collections.ConfigDict, task: Any):
        super().__init__(config, task)
        self.needs("picture_variables", "draw", "noise")

    def __call__(self, ctx: EvalContext) -> Report:
        s = self.settings
        seed = s.sample_seed
        picture_vars = self.task.picture_variables(ctx.variables, seed)
        samples = self.task.draw(picture_vars,
                                 self.task.noise(jax.random.key(seed), s.num_report_images))
        ends = np.asarray(self.task.noise(jax.random.key(seed + 1), 2 * NUM_STRIPS))
        z = np.concatenate([image_grids.interpolate(ends[2 * i], ends[2 * i + 1],
                                                    s.interpolation_steps)
                            for i in range(NUM_STRIPS)])
        return Report(images={
            "samples": image_grids.make_grid(samples, 8),
            "interpolation": image_grids.make_grid(self.task.draw(picture_vars, z),
                                                   s.interpolation_steps)})
