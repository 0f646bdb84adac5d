"""A depthwise convolution (one k x k filter per channel) that is fast on XLA's CPU backend.

XLA's CPU backend runs a grouped convolution with one group per channel 5-40x slower than the
same sum written over the window's taps (`taps.window_taps`) times per-channel weights
(forward + backward, `python -m benchmarks.bench_cnn`, the depthwise row). On CPU this layer
computes that sum; on GPU and TPU, where the vendor libraries have fast depthwise kernels, it
is the grouped convolution. The parameter is the one that
`nn.Conv(C, k, feature_group_count=C, use_bias=False)` holds: `kernel` of shape (kh, kw, 1, C).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from dl_arch.models.cnn.taps import window_taps


def depthwise_by_taps(x_BHWC: jax.Array, kernel: jax.Array, strides: tuple[int, int],
                      padding: Sequence[tuple[int, int]]) -> jax.Array:
    """Sum over the kernel's taps of the strided input slice each tap sees, times that tap's
    per-channel weight: the depthwise convolution without a grouped convolution."""
    kh, kw, _, channels = kernel.shape
    taps = window_taps(x_BHWC, (kh, kw), strides, padding)
    weights = kernel.reshape(kh * kw, 1, 1, 1, channels)
    out = taps[0] * weights[0]
    for tap, weight in zip(taps[1:], weights[1:], strict=True):
        out = out + tap * weight
    return out


def depthwise_by_groups(x_BHWC: jax.Array, kernel: jax.Array, strides: tuple[int, int],
                        padding: Sequence[tuple[int, int]]) -> jax.Array:
    """The depthwise convolution as XLA's grouped convolution (one group per channel)."""
    return jax.lax.conv_general_dilated(
        x_BHWC, kernel, strides, [tuple(p) for p in padding],
        dimension_numbers=("NHWC", "HWIO", "NHWC"), feature_group_count=x_BHWC.shape[-1])


class DepthwiseConv(nn.Module):
    """Depthwise k x k convolution, no bias; `padding` is per side, the same on every side."""

    kernel_size: tuple[int, int] = (3, 3)
    strides: int = 1
    padding: int = 1
    dtype: Any = jnp.float32
    param_dtype: Any = jnp.float32
    kernel_init: Callable = nn.initializers.lecun_normal()

    @nn.compact
    def __call__(self, x_BHWC: jax.Array) -> jax.Array:
        kernel = self.param("kernel", self.kernel_init, (*self.kernel_size, 1, x_BHWC.shape[-1]),
                            self.param_dtype)
        x_BHWC, kernel = nn.dtypes.promote_dtype(x_BHWC, kernel, dtype=self.dtype)
        strides = (self.strides, self.strides)
        padding = ((self.padding, self.padding), (self.padding, self.padding))
        return jax.lax.platform_dependent(
            x_BHWC, kernel,
            cpu=lambda x, k: depthwise_by_taps(x, k, strides, padding),
            default=lambda x, k: depthwise_by_groups(x, k, strides, padding))
