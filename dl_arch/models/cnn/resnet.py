"""ResNet 18/34/50/101/152 (He et al. 2015), v1.5: bottlenecks stride in their 3x3 conv."""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any, ClassVar

import flax.linen as nn
import jax
import jax.numpy as jnp

from dl_arch.config.errors import ConfigError
from dl_arch.models.cnn.common import (
    STEM_CHECKS,
    Window,
    batch_norm,
    check_images,
    check_stem,
    conv_init,
    head,
    max_pool,
)
from dl_arch.registry import register_model


class BasicBlock(nn.Module):
    """Two 3x3 conv-BN layers and an identity (or 1x1 conv-BN) shortcut."""

    features: int
    strides: int = 1
    dtype: Any = jnp.float32
    param_dtype: Any = jnp.float32
    expansion = 1

    @nn.compact
    def __call__(self, x: jax.Array, train: bool) -> jax.Array:
        conv = functools.partial(nn.Conv, use_bias=False, dtype=self.dtype,
                                 param_dtype=self.param_dtype, kernel_init=conv_init)
        norm = functools.partial(batch_norm, train, self.dtype, self.param_dtype)
        y = conv(self.features, (3, 3), self.strides, padding=1, name="conv1")(x)
        y = nn.relu(norm(name="bn1")(y))
        y = conv(self.features, (3, 3), padding=1, name="conv2")(y)
        y = norm(name="bn2")(y)
        return nn.relu(y + _shortcut(self, x, train))


class Bottleneck(nn.Module):
    """1x1 reduce, 3x3 (strided, v1.5), 1x1 expand by 4, each with BN, plus shortcut."""

    features: int
    strides: int = 1
    dtype: Any = jnp.float32
    param_dtype: Any = jnp.float32
    expansion = 4

    @nn.compact
    def __call__(self, x: jax.Array, train: bool) -> jax.Array:
        conv = functools.partial(nn.Conv, use_bias=False, dtype=self.dtype,
                                 param_dtype=self.param_dtype, kernel_init=conv_init)
        norm = functools.partial(batch_norm, train, self.dtype, self.param_dtype)
        y = nn.relu(norm(name="bn1")(conv(self.features, (1, 1), name="conv1")(x)))
        y = conv(self.features, (3, 3), self.strides, padding=1, name="conv2")(y)
        y = nn.relu(norm(name="bn2")(y))
        y = conv(self.features * 4, (1, 1), name="conv3")(y)
        y = norm(name="bn3")(y)
        return nn.relu(y + _shortcut(self, x, train))


def _shortcut(block: BasicBlock | Bottleneck, x: jax.Array, train: bool) -> jax.Array:
    """Identity, or a strided 1x1 conv + BN when the shape changes (torchvision 'B')."""
    out = block.features * block.expansion
    if block.strides == 1 and x.shape[-1] == out:
        return x
    x = nn.Conv(out, (1, 1), block.strides, use_bias=False, dtype=block.dtype,
                param_dtype=block.param_dtype, kernel_init=conv_init,
                name="downsample_conv")(x)  # called inside block's compact __call__
    return batch_norm(train, block.dtype, block.param_dtype, name="downsample_bn")(x)


BLOCKS = {"basic": BasicBlock, "bottleneck": Bottleneck}


def resnet_plan(stem: str, stage_sizes: Sequence[int], block: str) -> list[Window]:
    """The convolutions and pools of a ResNet (stem, then each block's strided path)."""
    windows = [Window(7, 2, 3), Window(3, 2, 1)] if stem == "imagenet" else [Window(3, 1, 1)]
    for s, num_blocks in enumerate(stage_sizes):
        for b in range(num_blocks):
            strided = Window(3, 2 if s > 0 and b == 0 else 1, 1)
            windows += ([strided, Window(3, 1, 1)] if block == "basic"
                        else [Window(1), strided, Window(1)])
    return windows


class ResNet(nn.Module):
    """Stem, four stages of residual blocks (`layer{stage}_{block}`), global pool, head.

    stem="imagenet": 7x7/2 conv + 3x3/2 max pool; stem="small": one 3x3/1 conv (CIFAR).
    """

    stage_sizes: Sequence[int] = (2, 2, 2, 2)  # residual blocks per stage (channels double per stage)
    block: str = "basic"  # basic | bottleneck
    num_classes: int = 1000  # classes of the head
    stem: str = "imagenet"  # imagenet: 7x7/2 conv + 3x3/2 max pool | small: one 3x3/1 conv (CIFAR)
    width: int = 64  # channels of the stem and of the first stage
    dtype: Any = jnp.float32
    param_dtype: Any = jnp.float32

    field_checks: ClassVar[dict[str, dict[str, Any]]] = {
        **STEM_CHECKS, "block": dict(choices=tuple(BLOCKS))}

    def plan(self, stem: str) -> list[Window]:
        """The convolutions and pools that shrink the image."""
        return resnet_plan(stem, self.stage_sizes, self.block)

    @nn.compact
    def __call__(self, x_BHWC: jax.Array, *, train: bool = False) -> jax.Array:
        check_stem(self.stem, "resnet")
        if self.block not in BLOCKS:
            raise ConfigError(f"config.model.block='{self.block}'; use basic or bottleneck")
        check_images(x_BHWC, "resnet", self.plan, self.stem)
        block_cls = BLOCKS[self.block]
        conv = functools.partial(nn.Conv, self.width, use_bias=False, dtype=self.dtype,
                                 param_dtype=self.param_dtype, kernel_init=conv_init,
                                 name="conv1")
        x = jnp.asarray(x_BHWC, self.dtype)
        if self.stem == "imagenet":
            x = conv((7, 7), strides=2, padding=3)(x)
        else:
            x = conv((3, 3), padding=1)(x)
        x = nn.relu(batch_norm(train, self.dtype, self.param_dtype, name="bn1")(x))
        if self.stem == "imagenet":
            x = max_pool(x, 3, 2, padding=1)
        for s, num_blocks in enumerate(self.stage_sizes):
            for b in range(num_blocks):
                x = block_cls(self.width * 2**s, strides=2 if s > 0 and b == 0 else 1,
                              dtype=self.dtype, param_dtype=self.param_dtype,
                              name=f"layer{s + 1}_{b}")(x, train)
            self.sow("intermediates", f"layer{s + 1}", x)
        x = jnp.mean(x, axis=(1, 2))
        return head(self.num_classes, self.param_dtype)(x)


_DEPTHS = {18: ((2, 2, 2, 2), "basic"), 34: ((3, 4, 6, 3), "basic"),
           50: ((3, 4, 6, 3), "bottleneck"), 101: ((3, 4, 23, 3), "bottleneck"),
           152: ((3, 8, 36, 3), "bottleneck")}
for _depth, (_sizes, _block) in _DEPTHS.items():
    register_model(f"resnet{_depth}", functools.partial(ResNet, stage_sizes=_sizes, block=_block))
register_model("resnet_tiny", functools.partial(
    ResNet, stage_sizes=(1, 1), block="basic", width=8, stem="small"))
register_model("resnet_bottleneck_tiny", functools.partial(
    ResNet, stage_sizes=(1, 1), block="bottleneck", width=4, stem="small"))
