"""First-layer filters and chosen layers' feature maps of a CNN on a few eval images."""

from __future__ import annotations

import numpy as np

from dl_arch.config.fields import Field
from dl_arch.evaluators.base import EvalContext, Evaluator, Report
from dl_arch.evaluators.layer_pictures import layer_pictures
from dl_arch.registry import register_evaluator


@register_evaluator("feature_maps", fields={
    "layers": Field((), "also draw the feature maps of the intermediates matching these "
                        "regexes, e.g. ('layer1', 'layer2_0/conv1') (empty: the filters only)",
                    each=Field("", "a regex over intermediate names", kind=str)),
    "num_images": Field(4, "eval images whose feature maps are drawn", low=1),
})
class FeatureMaps(Evaluator):
    """feature_maps/filters.png and feature_maps/<layer>.png (one row of channels per image)."""

    def __call__(self, ctx: EvalContext) -> Report:
        self.needs("model", "inputs")
        real = np.asarray(ctx.batch["_mask"]) > 0
        images = np.asarray(self.task.inputs(ctx.batch))[real][:self.settings.num_images]
        grids = layer_pictures(self.task.model, ctx.variables, images, self.settings.layers)
        return Report(images={f"feature_maps/{name}": grid for name, grid in grids.items()})
