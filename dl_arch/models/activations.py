"""Activation functions by name, so configs and sweeps can choose them as strings."""

from __future__ import annotations

from collections.abc import Callable

import flax.linen as nn
import jax

from dl_arch.config.errors import ConfigError

ACTIVATIONS: dict[str, Callable[[jax.Array], jax.Array]] = {
    "relu": nn.relu,
    "tanh": nn.tanh,
    "sigmoid": nn.sigmoid,
    "gelu": nn.gelu,
    "silu": nn.silu,
    "leaky_relu": nn.leaky_relu,
    "elu": nn.elu,
    "identity": lambda x: x,
}


def get_activation(name: str, field: str = "config.model.activation") -> Callable:
    """Looks up an activation; unknown names fail with the list of known ones."""
    if name not in ACTIVATIONS:
        raise ConfigError(f"unknown activation '{name}' in {field}; known: {', '.join(ACTIVATIONS)}")
    return ACTIVATIONS[name]
