"""Sliding-window layers written as k*k strided slices ("taps") of the padded input.

XLA's CPU backend runs a grouped convolution, a max-pool's select-and-scatter gradient and a
convolution of an input with one to three channels 3-18x slower than the same arithmetic on
k*k strided slices, which it fuses into a few loops (`python -m benchmarks.bench_cnn`, the
window-layer rows). The depthwise convolution, the overlapping max-pool and the first
convolution of LeNet-5 and ResNet use these on CPU.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any

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


FEW_CHANNELS = 3  # the most input channels `conv_few_inputs` computes on taps


@functools.partial(jax.custom_vjp, nondiff_argnums=(2, 3))
def _conv_by_taps(x_BHWC: jax.Array, kernel: jax.Array, strides: tuple[int, int],
                  padding: tuple[tuple[int, int], tuple[int, int]]) -> jax.Array:
    kh, kw, channels, features = kernel.shape
    weights = kernel.reshape(kh * kw, channels, 1, 1, 1, features)
    out = None
    for tap, weight in zip(window_taps(x_BHWC, (kh, kw), strides, padding), weights, strict=True):
        for c in range(channels):
            term = tap[..., c:c + 1] * weight[c]
            out = term if out is None else out + term
    return out


def _xla_conv(x_BHWC, kernel, strides, padding):
    return jax.lax.conv_general_dilated(x_BHWC, kernel, strides, padding,
                                        dimension_numbers=("NHWC", "HWIO", "NHWC"))


def _conv_fwd(x_BHWC, kernel, strides, padding):
    return _conv_by_taps(x_BHWC, kernel, strides, padding), (x_BHWC, kernel)


def _conv_bwd(strides, padding, residuals, dy):
    # XLA's own gradient convolutions, which are fast here; their forward is not computed
    _, back = jax.vjp(lambda x, k: _xla_conv(x, k, strides, padding), *residuals)
    return back(dy)


_conv_by_taps.defvjp(_conv_fwd, _conv_bwd)


def conv_few_inputs(lhs: jax.Array, rhs: jax.Array, window_strides: Sequence[int],
                    padding: Any, lhs_dilation: Any = None, rhs_dilation: Any = None,
                    dimension_numbers: Any = None, feature_group_count: int = 1,
                    precision: Any = None) -> jax.Array:
    """`lax.conv_general_dilated` (the signature `nn.Conv(conv_general_dilated=...)` calls),
    whose forward runs on taps on CPU when the input has at most `FEW_CHANNELS` channels, no
    dilation and no groups (XLA's CPU convolution of LeNet-5's one-channel input ran at 2
    GFLOP/s); the gradients stay XLA's convolutions. Any other case is XLA's convolution."""
    def xla(x, k):
        return jax.lax.conv_general_dilated(x, k, window_strides, padding, lhs_dilation,
                                            rhs_dilation, dimension_numbers,
                                            feature_group_count, precision=precision)

    nhwc = jax.lax.conv_dimension_numbers(lhs.shape, rhs.shape, ("NHWC", "HWIO", "NHWC"))
    plain = (lhs.ndim != 4 or isinstance(padding, str) or feature_group_count != 1
             or rhs.shape[2] > FEW_CHANNELS
             or any(d not in (None, (1, 1), [1, 1]) for d in (lhs_dilation, rhs_dilation))
             or jax.lax.conv_dimension_numbers(lhs.shape, rhs.shape, dimension_numbers) != nhwc)
    if plain:
        return xla(lhs, rhs)
    strides = tuple(int(s) for s in window_strides)
    pads = tuple((int(lo), int(hi)) for lo, hi in padding)
    return jax.lax.platform_dependent(
        lhs, rhs, cpu=lambda x, k: _conv_by_taps(x, k, strides, pads), default=xla)
