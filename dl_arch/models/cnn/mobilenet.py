"""MobileNetV2 (Sandler et al. 2018): inverted residuals with depthwise 3x3 convolutions."""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any, ClassVar

import flax.linen as nn
import jax
import jax.numpy as jnp

from dl_arch.config.errors import ConfigError
from dl_arch.config.fields import Field
from dl_arch.models.cnn.common import (
    STEM_CHECKS,
    Window,
    as_tuple,
    batch_norm,
    check_images,
    check_stem,
    conv_init,
    head,
    make_divisible,
)
from dl_arch.models.cnn.taps import window_conv
from dl_arch.registry import register_model

# (expansion t, output channels c, repeats n, first stride s) per group, from the paper.
MOBILENET_V2_SETTINGS = ((1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2),
                         (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1))


class InvertedResidual(nn.Module):
    """1x1 expand (ReLU6) -> 3x3 depthwise (ReLU6) -> 1x1 linear projection (+ residual)."""

    features: int
    strides: int
    expansion: int
    dtype: Any = jnp.float32
    param_dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x: jax.Array, train: bool) -> jax.Array:
        # window_conv: on CPU the depthwise convolution on taps and the 1x1 convolutions as
        # matrix products
        conv = functools.partial(nn.Conv, use_bias=False, dtype=self.dtype,
                                 param_dtype=self.param_dtype, kernel_init=conv_init,
                                 conv_general_dilated=window_conv)
        norm = functools.partial(batch_norm, train, self.dtype, self.param_dtype)
        in_ch = x.shape[-1]
        hidden = int(round(in_ch * self.expansion))
        y = x
        if self.expansion != 1:
            y = nn.relu6(norm(name="expand_bn")(conv(hidden, (1, 1), name="expand_conv")(y)))
        y = conv(hidden, (3, 3), self.strides, padding=1, feature_group_count=hidden,
                 name="depthwise_conv")(y)
        y = nn.relu6(norm(name="depthwise_bn")(y))
        y = norm(name="project_bn")(conv(self.features, (1, 1), name="project_conv")(y))
        if self.strides == 1 and in_ch == self.features:
            y = y + x
        return y


class MobileNetV2(nn.Module):
    """Stem conv, inverted-residual groups (`block{i}`), 1x1 conv to 1280, pool, head.

    `width_multiplier` scales every channel count (rounded to multiples of 8).
    stem="small" (CIFAR) makes the stem conv and the second group stride 1.
    """

    num_classes: int = 1000  # classes of the head
    stem: str = "imagenet"  # imagenet: stride-2 stem conv | small: stem and group 2 at stride 1
    width_multiplier: float = 1.0  # scales every channel count (rounded to multiples of 8)
    settings: Sequence[Sequence[int]] = MOBILENET_V2_SETTINGS  # (t, c, n, s) per group
    last_channels: int = 1280  # channels of the last 1x1 convolution before the pool
    dropout_rate: float = 0.2  # dropout before the head in training
    dtype: Any = jnp.float32
    param_dtype: Any = jnp.float32

    field_checks: ClassVar[dict[str, dict[str, Any]]] = {
        **STEM_CHECKS,
        "settings": dict(each=Field((1, 16, 1, 1), "(expansion t, channels c, repeats n, stride s)",
                                    each=Field(1, "a positive count", low=1)))}

    def plan(self, stem: str) -> list[Window]:
        """The convolutions that shrink the image: the stem and each block's depthwise 3x3."""
        small = stem == "small"
        windows = [Window(3, 1 if small else 2, 1)]
        for g, (_, _, n, s) in enumerate(as_tuple(self.settings)):
            s = 1 if small and g == 1 else s
            windows += [Window(3, s, 1)] + [Window(3, 1, 1)] * (n - 1)
        return windows

    @nn.compact
    def __call__(self, x_BHWC: jax.Array, *, train: bool = False) -> jax.Array:
        check_stem(self.stem, "mobilenet_v2")
        if self.width_multiplier <= 0:
            raise ConfigError("config.model.width_multiplier must be > 0 (1.0 = the paper's)")
        check_images(x_BHWC, "mobilenet_v2", self.plan, self.stem)
        small = self.stem == "small"
        wm = self.width_multiplier
        conv = functools.partial(nn.Conv, use_bias=False, dtype=self.dtype,
                                 param_dtype=self.param_dtype, kernel_init=conv_init)
        norm = functools.partial(batch_norm, train, self.dtype, self.param_dtype)
        x = jnp.asarray(x_BHWC, self.dtype)
        x = conv(make_divisible(32 * wm), (3, 3), 1 if small else 2, padding=1,
                 name="stem_conv")(x)
        x = nn.relu6(norm(name="stem_bn")(x))
        index = 0
        for g, (t, c, n, s) in enumerate(as_tuple(self.settings)):
            if small and g == 1:
                s = 1  # CIFAR variant: keep 32x32 through the second group
            for i in range(n):
                x = InvertedResidual(make_divisible(c * wm), s if i == 0 else 1, t,
                                     dtype=self.dtype, param_dtype=self.param_dtype,
                                     name=f"block{index}")(x, train)
                index += 1
            self.sow("intermediates", f"group{g + 1}", x)
        x = conv(make_divisible(self.last_channels * max(1.0, wm)), (1, 1), name="last_conv")(x)
        x = nn.relu6(norm(name="last_bn")(x))
        x = jnp.mean(x, axis=(1, 2))
        x = nn.Dropout(self.dropout_rate, deterministic=not train)(x)
        return head(self.num_classes, self.param_dtype)(x)


register_model("mobilenet_v2", MobileNetV2)
register_model("mobilenet_v2_tiny", functools.partial(
    MobileNetV2, width_multiplier=0.25, settings=((1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 2, 2)),
    last_channels=64, stem="small"))
