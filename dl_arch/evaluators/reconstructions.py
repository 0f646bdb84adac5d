"""An autoencoder's reconstructions of eval images, and latent interpolations between them."""

from __future__ import annotations

from typing import Any

import ml_collections
import numpy as np

from dl_arch.config.fields import Field
from dl_arch.evaluators.base import EvalContext, Evaluator, Report, every_evals
from dl_arch.registry import register_evaluator
from dl_arch.tasks import image_grids

MAX_STRIPS = 4  # interpolation strips, each between two eval images


def real_images(batch: dict[str, Any], count: int) -> np.ndarray:
    """The first `count` real (not padding) images of an eval batch, float32 NHWC."""
    images = np.asarray(batch["image"], np.float32)
    if "_mask" in batch:
        images = images[np.asarray(batch["_mask"]) > 0]
    return images[:count]


@register_evaluator("reconstructions", fields={
    "every_evals": every_evals(1),
    "num_report_images": Field(16, "eval images shown with their reconstructions", low=1),
    "interpolation_steps": Field(10, "images per latent interpolation strip", low=2),
})
class Reconstructions(Evaluator):
    """reconstruction.png (inputs over reconstructions; with a corruption denoising.png:
    clean / noisy / denoised) and interpolation.png (decoded codes on the line between the
    codes of two eval images, one pair per row) from the first eval batch."""

    def __init__(self, config: ml_collections.ConfigDict, task: Any):
        super().__init__(config, task)
        self.needs("reconstruct", "latents", "decode_images", "corruption")

    def __call__(self, ctx: EvalContext) -> Report:
        s = self.settings
        images = real_images(ctx.batch, s.num_report_images)
        if len(images) == 0:
            return Report()
        noisy, recon = self.task.reconstruct(ctx.variables, images)
        if self.task.corruption == "none":
            report = Report(images={"reconstruction": image_grids.comparison_grid(
                [images, recon])})
        else:
            report = Report(images={"denoising": image_grids.comparison_grid(
                [images, noisy, recon])})
        if len(images) >= 2:
            z = self.task.latents(ctx.variables, images)
            steps = s.interpolation_steps
            rows = [image_grids.interpolate(z[2 * i], z[2 * i + 1], steps)
                    for i in range(min(MAX_STRIPS, len(images) // 2))]
            strips = self.task.decode_images(ctx.variables, np.concatenate(rows))
            report.images["interpolation"] = image_grids.make_grid(strips, steps)
        return report
