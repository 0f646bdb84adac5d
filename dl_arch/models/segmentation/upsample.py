"""Upsampling for the segmenters: bilinear resize, and transposed convolutions that start as
bilinear interpolation (FCN's learnable `upscore` layers).

Both place pixel centres at half-integers (torch's `align_corners=False`): inside the map a
bilinear-initialised transposed convolution by f (kernel 2f, stride f, torch padding f/2)
equals `resize_bilinear` by f; at the border it fades toward zero (zero padding) where the
resize repeats the edge.
"""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np


def resize_bilinear(x_BHWC: jax.Array, height: int, width: int) -> jax.Array:
    """Bilinear resize to (height, width) with half-pixel centres, in float32 (for logits).

    `jax.image.resize` antialiases only when it shrinks; upsampling is plain bilinear
    interpolation, as torch's `interpolate(mode="bilinear", align_corners=False)`.
    """
    b, _, _, c = x_BHWC.shape
    return jax.image.resize(x_BHWC.astype(jnp.float32), (b, height, width, c), "bilinear")


def bilinear_kernel(size: int) -> np.ndarray:
    """(size, size) weights of bilinear upsampling by f = ceil(size / 2) (FCN's `upsample_filt`):
    per axis a tent around the kernel centre, 1 - |offset| / f, zero f output pixels away."""
    factor = (size + 1) // 2
    centre = factor - 1 if size % 2 else factor - 0.5
    tent = 1 - np.abs(np.arange(size) - centre) / factor
    return np.outer(tent, tent).astype(np.float32)


def bilinear_init(key: jax.Array, shape: tuple[int, ...], dtype: Any = jnp.float32) -> jax.Array:
    """Transposed-conv kernel (k, k, C_in, C_out) that upsamples each channel on its own:
    the bilinear tent on the diagonal C_in == C_out, zero between channels."""
    del key
    k, _, c_in, c_out = shape
    eye = np.eye(c_in, c_out, dtype=np.float32)
    return jnp.asarray(bilinear_kernel(k)[:, :, None, None] * eye, dtype)


def bilinear_conv_transpose(features: int, factor: int, name: str, dtype: Any = jnp.float32,
                            param_dtype: Any = jnp.float32) -> nn.ConvTranspose:
    """A learnable upsampling by an even `factor` (kernel 2f, stride f, no bias), initialised
    to bilinear interpolation: torch's ConvTranspose2d(k=2f, s=f, padding=f/2), output side
    exactly f x input. (lax pads the stride-dilated input by k - 1 - torch padding; the kernel
    is not flipped, which a symmetric bilinear start does not see.)"""
    k = 2 * factor
    pad = k - 1 - factor // 2
    return nn.ConvTranspose(features, (k, k), strides=(factor, factor),
                            padding=((pad, pad), (pad, pad)), use_bias=False,
                            kernel_init=bilinear_init, dtype=dtype, param_dtype=param_dtype,
                            name=name)


class BlockConvTranspose(nn.Module):
    """`nn.ConvTranspose(features, (s, s), strides=(s, s), padding="VALID")` (U-Net's up-convolution)
    as the one matrix product it is: each input pixel writes its own s x s block of outputs, so
    the layer is a 1 x 1 convolution to s * s * features channels laid out as blocks. The same
    `kernel` (s, s, C_in, features) and `bias`, and the same outputs: lax applies the kernel's
    taps flipped. On CPU, XLA's transposed convolution took 5-12x longer forward and backward
    at U-Net's shapes, its kernel gradient a third of `unet_shapes`' step
    (docs/results/benchmarks.md, stop 62)."""

    features: int
    stride: int = 2
    dtype: Any = None
    param_dtype: Any = jnp.float32
    kernel_init: Any = nn.initializers.lecun_normal()
    bias_init: Any = nn.initializers.zeros

    @nn.compact
    def __call__(self, x_BHWC: jax.Array) -> jax.Array:
        s = self.stride
        kernel = self.param("kernel", self.kernel_init, (s, s, x_BHWC.shape[-1], self.features),
                            self.param_dtype)
        bias = self.param("bias", self.bias_init, (self.features,), self.param_dtype)
        x_BHWC, kernel, bias = nn.dtypes.promote_dtype(x_BHWC, kernel, bias, dtype=self.dtype)
        b, h, w, _ = x_BHWC.shape
        blocks = jnp.einsum("bhwc,pqcf->bhpwqf", x_BHWC, kernel[::-1, ::-1])
        return blocks.reshape(b, h * s, w * s, self.features) + bias[None, None, None]
