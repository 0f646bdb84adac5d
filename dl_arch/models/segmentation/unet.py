"""U-Net (Ronneberger, Fischer & Brox 2015).

Layout at the paper's size (width 64, depth 4):
  contracting path: `down{i}` for i = 1..4, two 3x3 convs + ReLU (`down{i}_conv1/2`) at
    64 * 2**(i-1) channels, then a 2x2 max pool; `bottom`: two 3x3 convs at 1024;
  expanding path: `up{i}` for i = 4..1, a 2x2 up-convolution halving the channels
    (`up{i}_upconv`), concatenated with down{i}'s map, two 3x3 convs + ReLU (`up{i}_conv1/2`);
  `out`: a 1x1 conv to the classes.
31,031,810 parameters with 1 input channel and 2 classes (the paper's configuration).

Differences from the paper, on purpose: the 3x3 convs pad by 1 ("same"), so no skip map is
cropped and the output is the input size for sides that are multiples of 2**depth (the paper
uses valid convs: a 572x572 input gives a 388x388 map; padding changes no parameter count).
`batch_norm` adds BN after every 3x3 conv (`{down,bottom,up}*_bn1/2`; not in the paper,
faster CPU training). The paper's dropout at the end of the contracting path is left out.

`skip_connections=False`: the expanding path gets no encoder maps; every layer keeps its name
and output channels, and the first conv of each up step reads only the up-convolution's
channels (half of what it reads with skips), so only `up{i}_conv1/kernel` changes shape.
"""

from __future__ import annotations

import functools
from typing import Any, ClassVar

import flax.linen as nn
import jax
import jax.numpy as jnp

from dl_arch.models.cnn.common import batch_norm, conv_init_fan_in, max_pool
from dl_arch.models.segmentation.common import check_sides
from dl_arch.models.segmentation.upsample import BlockConvTranspose
from dl_arch.registry import register_model


class UNet(nn.Module):
    """U-Net: logits [B, H, W, num_classes] (module doc)."""

    num_classes: int = 2  # classes of the per-pixel logits (the paper: 2)
    width: int = 64  # channels of the first step, doubling per step down (64 -> 1024 in the paper)
    depth: int = 4  # down steps (2x2 max pools); image sides must be multiples of 2**depth
    skip_connections: bool = True  # concatenate each encoder map into the up step at its size
    batch_norm: bool = False  # BatchNorm after every 3x3 conv (not in the paper)
    dtype: Any = jnp.float32
    param_dtype: Any = jnp.float32

    field_checks: ClassVar[dict[str, dict[str, Any]]] = {"depth": dict(low=1)}

    def _double_conv(self, x: jax.Array, channels: int, name: str, train: bool) -> jax.Array:
        for j in (1, 2):
            # the paper's init: normal with std sqrt(2 / fan_in)
            x = nn.Conv(channels, (3, 3), padding=1, dtype=self.dtype,
                        param_dtype=self.param_dtype, kernel_init=conv_init_fan_in,
                        name=f"{name}_conv{j}")(x)
            if self.batch_norm:
                x = batch_norm(train, self.dtype, self.param_dtype, name=f"{name}_bn{j}")(x)
            x = nn.relu(x)
        return x

    @nn.compact
    def __call__(self, x_BHWC: jax.Array, *, train: bool = False) -> jax.Array:
        check_sides(x_BHWC, 2**self.depth, f"unet with depth={self.depth}")
        x = jnp.asarray(x_BHWC, self.dtype)
        skips = []
        for i in range(1, self.depth + 1):
            x = self._double_conv(x, self.width * 2 ** (i - 1), f"down{i}", train)
            self.sow("intermediates", f"down{i}", x)
            skips.append(x)
            x = max_pool(x, 2, 2)
        x = self._double_conv(x, self.width * 2**self.depth, "bottom", train)
        self.sow("intermediates", "bottom", x)
        for i in range(self.depth, 0, -1):
            channels = self.width * 2 ** (i - 1)
            x = BlockConvTranspose(channels, 2, dtype=self.dtype, param_dtype=self.param_dtype,
                                   kernel_init=conv_init_fan_in, name=f"up{i}_upconv")(x)
            if self.skip_connections:
                x = jnp.concatenate([skips[i - 1], x], axis=-1)
            x = self._double_conv(x, channels, f"up{i}", train)
            self.sow("intermediates", f"up{i}", x)
        return nn.Conv(self.num_classes, (1, 1), dtype=jnp.float32, param_dtype=self.param_dtype,
                       name="out")(x)


register_model("unet", UNet)
register_model("unet_tiny", functools.partial(UNet, width=8, depth=3, batch_norm=True))
