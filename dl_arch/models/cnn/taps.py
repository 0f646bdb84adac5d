"""Sliding-window layers written as k*k strided slices ("taps") of the padded input.

XLA's CPU backend runs a grouped convolution and a max-pool's select-and-scatter gradient
5-10x slower than the same arithmetic on k*k strided slices, which it fuses into a few loops
(measured forward + backward in `python -m benchmarks.bench_cnn`, the depthwise and max-pool
rows). The depthwise convolution and the overlapping max-pool use these on CPU.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

import jax
import jax.numpy as jnp


def window_taps(x_BHWC: jax.Array, window: tuple[int, int], strides: tuple[int, int],
                padding: Sequence[tuple[int, int]], pad_value: float = 0.0) -> list[jax.Array]:
    """For each window position (u, v) in row-major order, the strided slice of the padded
    input that position sees: tap[u*kw + v][b, i, j, c] = x_padded[b, i*sh + u, j*sw + v, c]."""
    kh, kw = window
    sh, sw = strides
    x = jnp.pad(x_BHWC, ((0, 0), tuple(padding[0]), tuple(padding[1]), (0, 0)),
                constant_values=pad_value)
    batch, height, width, channels = x.shape
    out_h, out_w = (height - kh) // sh + 1, (width - kw) // sw + 1
    return [jax.lax.slice(x, (0, u, v, 0),
                          (batch, u + sh * (out_h - 1) + 1, v + sw * (out_w - 1) + 1, channels),
                          (1, sh, sw, 1))
            for u in range(kh) for v in range(kw)]


def _max_of(taps: list[jax.Array]) -> jax.Array:
    out = taps[0]
    for tap in taps[1:]:
        out = jnp.maximum(out, tap)
    return out


@functools.partial(jax.custom_vjp, nondiff_argnums=(1, 2, 3))
def max_pool_by_taps(x_BHWC: jax.Array, window: int, stride: int,
                     padding: tuple[tuple[int, int], tuple[int, int]]) -> jax.Array:
    """Max-pool (padding counts as -inf) whose gradient goes, as XLA's select-and-scatter
    sends it, to the first maximum of each window in row-major order."""
    return _max_of(window_taps(x_BHWC, (window, window), (stride, stride), padding, -jnp.inf))


def _max_pool_fwd(x_BHWC, window, stride, padding):
    return max_pool_by_taps(x_BHWC, window, stride, padding), x_BHWC


def _max_pool_bwd(window, stride, padding, x_BHWC, dy):
    taps, back = jax.vjp(lambda x: window_taps(x, (window, window), (stride, stride), padding,
                                               -jnp.inf), x_BHWC)
    y = _max_of(taps)
    taken = jnp.zeros(y.shape, bool)
    grads = []
    for tap in taps:
        first = (tap == y) & ~taken
        taken = taken | first
        grads.append(jnp.where(first, dy, jnp.zeros_like(dy)))
    return back(grads)


max_pool_by_taps.defvjp(_max_pool_fwd, _max_pool_bwd)
