"""A forecaster's predictions on a few eval series, beside the truth and the naive forecast."""

from __future__ import annotations

import numpy as np

from dl_arch.config.fields import Field
from dl_arch.evaluators.base import EvalContext, Evaluator, Report
from dl_arch.evaluators.figures import figure_image, pyplot
from dl_arch.registry import register_evaluator
from dl_arch.tasks.forecasting import as_btf


def forecast_image(context_BTF: np.ndarray, truth_BHF: np.ndarray, forecast_BHF: np.ndarray,
                   title: str) -> np.ndarray:
    """One panel per series (first feature): context, truth, forecast and the naive
    last-value forecast (RGB uint8)."""
    n = len(context_BTF)
    plt = pyplot()
    fig, axes = plt.subplots(n, 1, figsize=(8, 2.2 * n), dpi=100, squeeze=False)
    t_in = np.arange(context_BTF.shape[1])
    t_out = context_BTF.shape[1] + np.arange(truth_BHF.shape[1])
    for i, ax in enumerate(axes[:, 0]):
        ax.plot(t_in, context_BTF[i, :, 0], color="gray", label="context")
        ax.plot(t_out, truth_BHF[i, :, 0], color="black", label="truth")
        ax.plot(t_out, forecast_BHF[i, :, 0], color="tab:red", label="forecast")
        ax.plot(t_out, np.repeat(context_BTF[i, -1, 0], len(t_out)), "--", color="tab:blue",
                label="naive (last value)")
        if i == 0:
            ax.legend(fontsize=7, ncol=4)
    axes[0, 0].set_title(title)
    return figure_image(fig)


@register_evaluator("forecast_plot", fields={
    "num_examples": Field(4, "eval series drawn (one panel each)", low=1),
})
class ForecastPlot(Evaluator):
    """forecast.png: context, truth, forecast and naive forecast of the first eval series."""

    def __call__(self, ctx: EvalContext) -> Report:
        self.needs("predict")
        real = np.asarray(ctx.batch["_mask"]) > 0
        sub = {k: np.asarray(ctx.batch[k])[real][:self.settings.num_examples]
               for k in ("inputs", "targets")}
        pred = np.asarray(self.task.predict({"params": ctx.variables["params"]}, sub))
        title = f"{self.config.model.name} on {self.config.dataset.name}, step {ctx.step}"
        image = forecast_image(np.asarray(as_btf(sub["inputs"])),
                               np.asarray(as_btf(sub["targets"])), pred, title)
        return Report(images={"forecast": image})
