"""The perceptron and the multi-layer perceptron.

The perceptron is one affine map from inputs to class scores: its decision boundary is a
hyperplane, so it cannot represent XOR. The MLP adds hidden layers with a non-linearity.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

import flax.linen as nn
import jax
import jax.numpy as jnp

from dl_arch.models.activations import ACTIVATIONS, get_activation
from dl_arch.registry import register_model


@register_model("perceptron")
class Perceptron(nn.Module):
    """A single dense layer on the flattened input: logits = x W + b."""

    num_classes: int = 2  # classes (outputs of the linear map)
    dtype: jnp.dtype = jnp.float32
    param_dtype: jnp.dtype = jnp.float32

    @nn.compact
    def __call__(self, x: jax.Array, *, train: bool = False) -> jax.Array:
        x = x.reshape(x.shape[0], -1).astype(self.dtype)
        logits = nn.Dense(self.num_classes, dtype=self.dtype, param_dtype=self.param_dtype,
                          name="linear")(x)
        return logits.astype(jnp.float32)


@register_model("mlp")
class MLP(nn.Module):
    """Dense layers of `hidden_sizes` (or `depth` x `width`) with an activation and dropout."""

    num_classes: int = 2  # classes of the head
    hidden_sizes: Sequence[int] = ()  # widths of the hidden layers (empty: depth x width)
    depth: int = 2  # hidden layers, used when hidden_sizes is empty
    width: int = 64  # width of each hidden layer, used when hidden_sizes is empty
    activation: str = "relu"  # non-linearity after each hidden layer
    dropout: float = 0.0  # dropout after each hidden layer in training
    dtype: jnp.dtype = jnp.float32
    param_dtype: jnp.dtype = jnp.float32

    field_checks: ClassVar[dict[str, dict[str, Any]]] = {
        "activation": dict(choices=tuple(ACTIVATIONS))}

    @property
    def layer_sizes(self) -> tuple[int, ...]:
        return tuple(self.hidden_sizes) if self.hidden_sizes else (self.width,) * self.depth

    @nn.compact
    def __call__(self, x: jax.Array, *, train: bool = False) -> jax.Array:
        act = get_activation(self.activation)
        h = x.reshape(x.shape[0], -1).astype(self.dtype)
        for i, size in enumerate(self.layer_sizes):
            h = nn.Dense(size, dtype=self.dtype, param_dtype=self.param_dtype, name=f"hidden_{i}")(h)
            h = act(h)
            self.sow("intermediates", f"hidden_{i}", h)
            if self.dropout > 0:
                h = nn.Dropout(self.dropout, deterministic=not train)(h)
        logits = nn.Dense(self.num_classes, dtype=self.dtype, param_dtype=self.param_dtype,
                          name="head")(h)
        return logits.astype(jnp.float32)
