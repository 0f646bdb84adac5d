"""Nearest-neighbour upsampling whose gradient is a sum, not a scatter.

`jax.image.resize(..., "nearest")` gathers its output pixels, so its gradient is a
scatter-add: on this 2-core CPU the forward and backward of a 2x upsampling of a
(32, 16, 16, 128) map took 2.8 ms against 0.26 ms as repeats, and on a GPU a bfloat16
scatter-add is the narrow sum `dl_arch.models.layers.embed` had to avoid. By a whole factor
the same output is each pixel repeated along each axis, whose gradient sums each block.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp


def resize_nearest(x_BHWC: jax.Array, height: int, width: int) -> jax.Array:
    """`jax.image.resize(x, (B, height, width, C), "nearest")`: by repeats when height and
    width are whole multiples of the input's (an FPN's 2x), else that resize itself."""
    b, h, w, c = x_BHWC.shape
    if height % h or width % w:
        return jax.image.resize(x_BHWC, (b, height, width, c), "nearest")
    return jnp.repeat(jnp.repeat(x_BHWC, height // h, axis=1), width // w, axis=2)
