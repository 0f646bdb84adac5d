"""GoogLeNet / Inception v1 (Szegedy et al. 2014): the paper's layout or torchvision's.

layout="paper": convolutions with biases and ReLU, no BatchNorm, 5x5 convolutions in the
third Inception branch (local response normalisation is left out, as in torchvision).
layout="torchvision": conv (no bias) + BatchNorm(eps=1e-3) + ReLU everywhere and a 3x3
kernel in the third branch: 6,624,904 parameters without auxiliary heads at 1000 classes.
"""

from __future__ import annotations

import functools
from typing import Any, ClassVar

import flax.linen as nn
import jax
import jax.numpy as jnp

from dl_arch.config.errors import ConfigError
from dl_arch.models.cnn.common import (
    STEM_CHECKS,
    Window,
    adaptive_avg_pool,
    batch_norm,
    check_images,
    check_stem,
    conv_init,
    conv_init_fan_in,
    flatten_hwc,
    head,
    max_pool,
)
from dl_arch.registry import register_model

# name: (1x1, 3x3 reduce, 3x3, 5x5 reduce, 5x5, pool projection) output channels.
INCEPTION_BLOCKS = {
    "3a": (64, 96, 128, 16, 32, 32), "3b": (128, 128, 192, 32, 96, 64),
    "4a": (192, 96, 208, 16, 48, 64), "4b": (160, 112, 224, 24, 64, 64),
    "4c": (128, 128, 256, 24, 64, 64), "4d": (112, 144, 288, 32, 64, 64),
    "4e": (256, 160, 320, 32, 128, 128),
    "5a": (256, 160, 320, 32, 128, 128), "5b": (384, 192, 384, 48, 128, 128),
}
LAYOUTS = ("paper", "torchvision")


class ConvUnit(nn.Module):
    """conv -> (BatchNorm) -> ReLU; torchvision's BasicConv2d when `batch_norm` is set."""

    features: int
    kernel: int
    strides: int = 1
    batch_norm: bool = False
    dtype: Any = jnp.float32
    param_dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x: jax.Array, train: bool) -> jax.Array:
        x = nn.Conv(self.features, (self.kernel, self.kernel), self.strides,
                    padding=self.kernel // 2, use_bias=not self.batch_norm, dtype=self.dtype,
                    param_dtype=self.param_dtype,
                    kernel_init=conv_init if self.batch_norm else conv_init_fan_in,
                    name="conv")(x)
        if self.batch_norm:
            x = batch_norm(train, self.dtype, self.param_dtype, epsilon=1e-3, name="bn")(x)
        return nn.relu(x)


class Inception(nn.Module):
    """Four parallel branches (1x1 | 1x1-3x3 | 1x1-kxk | maxpool-1x1) concatenated."""

    channels: tuple[int, int, int, int, int, int]
    branch3_kernel: int = 5
    batch_norm: bool = False
    dtype: Any = jnp.float32
    param_dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x: jax.Array, train: bool) -> jax.Array:
        unit = functools.partial(ConvUnit, batch_norm=self.batch_norm, dtype=self.dtype,
                                 param_dtype=self.param_dtype)
        c1, c2r, c2, c3r, c3, c4 = self.channels
        b1 = unit(c1, 1, name="branch1")(x, train)
        b2 = unit(c2, 3, name="branch2")(unit(c2r, 1, name="branch2_reduce")(x, train), train)
        b3 = unit(c3r, 1, name="branch3_reduce")(x, train)
        b3 = unit(c3, self.branch3_kernel, name="branch3")(b3, train)
        b4 = unit(c4, 1, name="branch4")(max_pool(x, 3, 1, padding=1, ceil_mode=True), train)
        return jnp.concatenate([b1, b2, b3, b4], axis=-1)


class AuxHead(nn.Module):
    """Auxiliary classifier on 4a/4d: pool to 4x4, 1x1 conv 128, fc 1024, dropout 0.7, fc."""

    num_classes: int
    width_multiplier: float = 1.0
    batch_norm: bool = False
    dtype: Any = jnp.float32
    param_dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x: jax.Array, train: bool) -> jax.Array:
        w = lambda c: max(1, int(c * self.width_multiplier))
        x = adaptive_avg_pool(x, 4)
        x = ConvUnit(w(128), 1, batch_norm=self.batch_norm, dtype=self.dtype,
                     param_dtype=self.param_dtype, name="conv")(x, train)
        x = nn.relu(nn.Dense(w(1024), dtype=self.dtype, param_dtype=self.param_dtype,
                             name="fc1")(flatten_hwc(x)))
        x = nn.Dropout(0.7, deterministic=not train)(x)
        return head(self.num_classes, self.param_dtype, name="fc2")(x)


class GoogLeNet(nn.Module):
    """Stem, Inception 3a-3b, 4a-4e, 5a-5b with max pools between, global pool, head.

    With `aux_logits`, the two auxiliary heads' logits are sown into the collection
    `aux_logits` (`aux1`, `aux2`); the call always returns the main logits.
    stem="small" (32x32): 3x3/1 first conv and no first max pool.
    """

    num_classes: int = 1000  # classes of the head (and of the auxiliary heads)
    stem: str = "imagenet"  # imagenet: 7x7/2 conv + max pool | small: 3x3/1 conv, no pool (32x32)
    layout: str = "paper"  # paper (5x5, biases, no BN) | torchvision (3x3, BatchNorm)
    aux_logits: bool = False  # auxiliary classifiers on 4a and 4d (logits sown in aux_logits)
    width_multiplier: float = 1.0  # scales every channel count (tiny test variants)
    dropout_rate: float = 0.4  # dropout before the head in training
    dtype: Any = jnp.float32
    param_dtype: Any = jnp.float32

    field_checks: ClassVar[dict[str, dict[str, Any]]] = {
        **STEM_CHECKS, "layout": dict(choices=LAYOUTS)}

    @staticmethod
    def plan(stem: str) -> list[Window]:
        """The convolutions and pools that shrink the image (stem, pools before 3a, 4a, 5a)."""
        pool = Window(3, 2, ceil_mode=True)
        branch_pool = Window(3, 1, 1, ceil_mode=True)  # in every Inception block: keeps the size
        stem_windows = ([Window(7, 2, 3), pool] if stem == "imagenet" else [Window(3, 1, 1)])
        return (stem_windows + [Window(1), Window(3, 1, 1), pool] + [branch_pool] * 2 + [pool]
                + [branch_pool] * 5 + [Window(2, 2, ceil_mode=True)] + [branch_pool] * 2)

    @nn.compact
    def __call__(self, x_BHWC: jax.Array, *, train: bool = False) -> jax.Array:
        check_stem(self.stem, "googlenet")
        if self.layout not in LAYOUTS:
            raise ConfigError(f"config.model.layout='{self.layout}'; use paper or torchvision")
        check_images(x_BHWC, "googlenet", self.plan, self.stem)
        bn = self.layout == "torchvision"
        w = lambda c: max(1, int(c * self.width_multiplier))
        unit = functools.partial(ConvUnit, batch_norm=bn, dtype=self.dtype,
                                 param_dtype=self.param_dtype)
        x = jnp.asarray(x_BHWC, self.dtype)
        if self.stem == "imagenet":
            x = max_pool(unit(w(64), 7, strides=2, name="conv1")(x, train), 3, 2, ceil_mode=True)
        else:
            x = unit(w(64), 3, name="conv1")(x, train)
        x = unit(w(64), 1, name="conv2")(x, train)
        x = unit(w(192), 3, name="conv3")(x, train)
        x = max_pool(x, 3, 2, ceil_mode=True)
        self.sow("intermediates", "stem", x)
        for name in ("3a", "3b", "4a", "4b", "4c", "4d", "4e", "5a", "5b"):
            if name in ("4a", "5a"):
                x = max_pool(x, 3, 2, ceil_mode=True) if name == "4a" else max_pool(
                    x, 2, 2, ceil_mode=True)
            x = Inception(tuple(w(c) for c in INCEPTION_BLOCKS[name]),
                          branch3_kernel=3 if bn else 5, batch_norm=bn, dtype=self.dtype,
                          param_dtype=self.param_dtype, name=f"inception{name}")(x, train)
            self.sow("intermediates", f"inception{name}_output", x)
            if self.aux_logits and name in ("4a", "4d"):
                aux = AuxHead(self.num_classes, self.width_multiplier, batch_norm=bn,
                              dtype=self.dtype, param_dtype=self.param_dtype,
                              name="aux_head1" if name == "4a" else "aux_head2")(x, train)
                self.sow("aux_logits", "aux1" if name == "4a" else "aux2", aux)
        x = jnp.mean(x, axis=(1, 2))
        x = nn.Dropout(self.dropout_rate, deterministic=not train)(x)
        return head(self.num_classes, self.param_dtype)(x)


register_model("googlenet", GoogLeNet)
register_model("googlenet_tiny", functools.partial(
    GoogLeNet, width_multiplier=0.125, stem="small"))
