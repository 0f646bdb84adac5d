"""Gradient flow through time: the norm of dL/dh_t at every step t, for every recurrent layer.

Backpropagation through time multiplies dL/dh_t by the recurrent Jacobian once per step;
with a simple RNN the product shrinks geometrically (vanishing gradient) and the loss at
step T barely reaches early steps, while the LSTM's additive cell path keeps it alive.
`hidden_gradient_norms` measures that with no change to model code: every
`dl_arch.models.rnn.Recurrent` layer adds a zero perturbation to its hidden state at each
step when the `perturbations` collection is requested (`nn.Module.perturb`), and the
gradient of the loss with respect to that perturbation is the total dL/dh_t.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import flax
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from dl_arch.config.errors import ConfigError


def hidden_gradient_norms(model: nn.Module, variables: dict[str, Any],
                          loss_of_output: Callable[[Any], jax.Array], *args: Any,
                          **kwargs: Any) -> dict[str, np.ndarray]:
    """{layer path: (T,) mean over the batch of ||dL/dh_t||_2} for `model.apply(variables, *args)`.

    `loss_of_output` maps the model's output to the scalar loss (e.g. the batch mean).
    """
    variables = {k: v for k, v in variables.items() if k != "perturbations"}
    _, made = model.apply(variables, *args, mutable=["perturbations"], **kwargs)
    if "perturbations" not in made:
        raise ConfigError(f"{type(model).__name__} has no recurrent layer that exposes "
                          "'perturbations'; gradient flow needs dl_arch.models.rnn layers: "
                          "set config.task.gradient_flow=False for this model")

    def loss(perturbations):
        out = model.apply({**variables, "perturbations": perturbations}, *args, **kwargs)
        return loss_of_output(out)

    grads = jax.grad(loss)(made["perturbations"])
    norms = {}
    for path, g_TBH in flax.traverse_util.flatten_dict(flax.core.unfreeze(grads), sep="/").items():
        norms[path.removesuffix("/hidden")] = np.asarray(
            jnp.linalg.norm(g_TBH.astype(jnp.float32), axis=-1).mean(axis=1))
    return norms


def gradient_flow_metrics(norms: dict[str, np.ndarray], prefix: str = "grad_flow") -> dict[str, float]:
    """Scalars for the metric writers: log10(|dL/dh_first| / |dL/dh_last|) per layer."""
    out = {}
    for path, n in norms.items():
        ratio = float(n[0]) / max(float(n[-1]), 1e-30)
        out[f"{prefix}/{path}/log10_first_over_last"] = float(np.log10(max(ratio, 1e-30)))
    return out


def save_gradient_flow_plot(norms: dict[str, np.ndarray], path: str, title: str = "") -> np.ndarray:
    """Log-scale plot of ||dL/dh_t|| against t, one line per layer; returns the RGB image."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    for name, n in sorted(norms.items()):
        ax.semilogy(np.arange(len(n)), np.maximum(n, 1e-30), label=name)
    ax.set_xlabel("time step t")
    ax.set_ylabel("mean ||dL/dh_t||")
    ax.set_title(title or "gradient flow through time")
    ax.legend(fontsize=7)
    ax.grid(True, which="both", alpha=0.3)
    return save_figure(fig, path)


def save_figure(fig: Any, path: str) -> np.ndarray:
    """Writes a matplotlib figure as PNG, closes it, returns its RGB uint8 image (TensorBoard)."""
    import matplotlib.pyplot as plt

    fig.tight_layout()
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    fig.savefig(path, dpi=100)
    fig.canvas.draw()
    image = np.asarray(fig.canvas.buffer_rgba())[..., :3].copy()
    plt.close(fig)
    return image
