"""Gradient flow through time of a recurrent model: ||dL/dh_t|| against t, per layer."""

from __future__ import annotations

import numpy as np

from dl_arch.config.errors import ConfigError
from dl_arch.evaluators.base import EvalContext, Evaluator, Report, every_evals
from dl_arch.evaluators.figures import figure_image, pyplot
from dl_arch.registry import register_evaluator
from dl_arch.tasks.gradient_flow import hidden_gradient_norms


def gradient_flow_image(norms: dict[str, np.ndarray], title: str) -> np.ndarray:
    """Log-scale plot of ||dL/dh_t|| against t, one line per layer (RGB uint8)."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(7, 4), dpi=100)
    for name, n in sorted(norms.items()):
        ax.semilogy(np.arange(len(n)), np.maximum(n, 1e-30), label=name)
    ax.set_xlabel("time step t")
    ax.set_ylabel("mean ||dL/dh_t||")
    ax.set_title(title)
    ax.legend(fontsize=7)
    ax.grid(True, which="both", alpha=0.3)
    return figure_image(fig)


def gradient_flow_scalars(norms: dict[str, np.ndarray]) -> dict[str, float]:
    """log10(|dL/dh_first| / |dL/dh_last|) per layer: how much of the gradient reaches t=0."""
    out = {}
    for path, n in norms.items():
        ratio = float(n[0]) / max(float(n[-1]), 1e-30)
        out[f"grad_flow/{path}/log10_first_over_last"] = float(np.log10(max(ratio, 1e-30)))
    return out


@register_evaluator("gradient_flow", fields={"every_evals": every_evals(1)})
class GradientFlow(Evaluator):
    """gradient_flow.png and gradient_flow.npz (the norms per layer, '/' written '.'), and
    eval/grad_flow/<layer>/log10_first_over_last, on the real examples of the first eval
    batch; the task gives the loss of the model's output (`per_example`)."""

    def __call__(self, ctx: EvalContext) -> Report:
        self.needs("model", "per_example", "model_kwargs")
        real = np.asarray(ctx.batch["_mask"]) > 0
        batch = {k: np.asarray(v)[real] for k, v in ctx.batch.items() if k != "_mask"}
        loss_of = lambda out: self.task.per_example(out, batch)["loss"].mean()
        norms = hidden_gradient_norms(self.task.model, {"params": ctx.variables["params"]},
                                      loss_of, batch["inputs"], **self.task.model_kwargs(batch))
        if not norms:
            raise ConfigError(f"config.evaluators lists 'gradient_flow', but model "
                              f"'{self.config.model.name}' has no recurrent layer "
                              f"(dl_arch.models.rnn) to measure; drop it from config.evaluators")
        title = f"{self.config.model.name}: mean ||dL/dh_t|| at step {ctx.step}"
        return Report(scalars=gradient_flow_scalars(norms),
                      images={"gradient_flow": gradient_flow_image(norms, title)},
                      arrays={"gradient_flow": {k.replace("/", "."): v for k, v in norms.items()}})
