"""Gradient flow through time: dL/dh_t at every step t, for every recurrent layer.

Backpropagation through time multiplies dL/dh_t by the recurrent Jacobian once per step;
with a simple RNN the product shrinks geometrically (vanishing gradient) and the loss at
step T barely reaches early steps, while the LSTM's additive cell path keeps it alive.
This is measured with no change to model code: every `dl_arch.models.rnn.Recurrent` layer
adds a zero perturbation to its hidden state at each step when the `perturbations`
collection is requested (`nn.Module.perturb`), and the gradient of the loss with respect
to that perturbation is the total dL/dh_t. The `gradient_flow` evaluator plots it at eval
time; the `grad_through_time` probe (`dl_arch.experiments.probes`) measures it on the
training loss at init and after training.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import flax
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np


def perturbation_zeros(model: nn.Module, variables: dict[str, Any], *args: Any,
                       **kwargs: Any) -> dict[str, Any] | None:
    """The zero hidden-state perturbations of `model.apply(variables, *args, **kwargs)`'s
    recurrent layers (a tree of (T, B, H) arrays), or None when it has no such layer."""
    variables = {k: v for k, v in variables.items() if k != "perturbations"}
    _, shapes = jax.eval_shape(
        lambda v: model.apply(v, *args, mutable=["perturbations"], **kwargs), variables)
    if "perturbations" not in shapes:
        return None
    return jax.tree_util.tree_map(lambda s: jnp.zeros(s.shape, s.dtype), shapes["perturbations"])


def hidden_state_gradients(loss_of_perturbations: Callable[[Any], jax.Array],
                           zeros: dict[str, Any]) -> dict[str, jax.Array]:
    """{layer path: (T, B, H) dL/dh_t}: the gradient of the loss in each layer's perturbation
    (`zeros` from `perturbation_zeros`, `loss_of_perturbations` applies the model with them)."""
    grads = jax.grad(loss_of_perturbations)(zeros)
    flat = flax.traverse_util.flatten_dict(flax.core.unfreeze(grads), sep="/")
    return {path.removesuffix("/hidden"): g for path, g in flat.items()}


def mean_norm_over_time(g_TBH: jax.Array) -> np.ndarray:
    """(T,) the batch mean of ||dL/dh_t||_2 at each step t."""
    return np.asarray(jnp.linalg.norm(jnp.asarray(g_TBH, jnp.float32), axis=-1).mean(axis=1))


def hidden_gradient_norms(model: nn.Module, variables: dict[str, Any],
                          loss_of_output: Callable[[Any], jax.Array], *args: Any,
                          **kwargs: Any) -> dict[str, np.ndarray]:
    """{layer path: (T,) mean over the batch of ||dL/dh_t||_2} for `model.apply(variables,
    *args, **kwargs)`; {} for a model without recurrent layers.

    `loss_of_output` maps the model's output to the scalar loss (e.g. the batch mean).
    """
    variables = {k: v for k, v in variables.items() if k != "perturbations"}
    zeros = perturbation_zeros(model, variables, *args, **kwargs)
    if zeros is None:
        return {}

    def loss(perturbations: Any) -> jax.Array:
        out = model.apply({**variables, "perturbations": perturbations}, *args, **kwargs)
        return loss_of_output(out)

    return {path: mean_norm_over_time(g)
            for path, g in hidden_state_gradients(loss, zeros).items()}
