"""Positional encodings: sinusoidal (the original Transformer), learned tables, rotary (RoPE)."""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from dl_arch.config.errors import ConfigError
from dl_arch.models.layers.embed import lookup

Array = jax.Array


def sinusoidal_encoding(positions_BT: Array, dim: int, base: float = 10000.0) -> Array:
    """(B, T, dim) table: sin on even channels, cos on odd ones, wavelengths up to 2*pi*base."""
    if dim % 2:
        raise ConfigError(f"sinusoidal encoding needs an even width, got {dim}; "
                         "set config.model.emb_dim to an even number")
    inv_freq = base ** (-jnp.arange(0, dim, 2, dtype=jnp.float32) / dim)  # (dim/2,)
    angles_BTF = positions_BT.astype(jnp.float32)[..., None] * inv_freq[None, None, :]
    # interleave so channel 2i is sin(pos / base^(2i/dim)) and 2i+1 the matching cos
    return jnp.stack([jnp.sin(angles_BTF), jnp.cos(angles_BTF)], axis=-1).reshape(
        *positions_BT.shape, dim)


class LearnedPositionEmbedding(nn.Module):
    """A trainable (num_positions, features) table looked up by position index."""

    num_positions: int
    features: int
    embedding_init: Any = nn.initializers.normal(stddev=0.02)
    dtype: Any = jnp.float32
    param_dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, positions_BT: Array) -> Array:
        """Returns (B, T, features)."""
        table = self.param("embedding", self.embedding_init,
                           (self.num_positions, self.features), self.param_dtype)
        return lookup(table, positions_BT).astype(self.dtype)


def apply_rope(x_BTNH: Array, positions_BT: Array, base: float = 10000.0) -> Array:
    """Rotates channel pairs (i, i + H/2) by angle pos * base^(-2i/H) (rotate-half RoPE)."""
    h = x_BTNH.shape[-1]
    if h % 2:
        raise ConfigError(f"RoPE needs an even head dim, got {h}; change config.model widths")
    inv_freq = base ** (-jnp.arange(0, h, 2, dtype=jnp.float32) / h)  # (H/2,)
    angles_BTF = positions_BT.astype(jnp.float32)[..., None] * inv_freq[None, None, :]
    cos = jnp.cos(angles_BTF)[:, :, None, :]
    sin = jnp.sin(angles_BTF)[:, :, None, :]
    x1, x2 = jnp.split(x_BTNH.astype(jnp.float32), 2, axis=-1)
    rotated = jnp.concatenate([x1 * cos - x2 * sin, x2 * cos + x1 * sin], axis=-1)
    return rotated.astype(x_BTNH.dtype)
