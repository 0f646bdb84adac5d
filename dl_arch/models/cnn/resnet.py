"""ResNet 18/34/50/101/152 (He et al. 2015), v1.5: bottlenecks stride in their 3x3 conv.

`resnet_trunk` builds the stem and the residual stages inside the caller's compact scope, so
the classifier, the detector's backbone and the segmenters share one implementation and one
parameter layout (`conv1`, `bn1`, `layer{stage}_{block}`). Dilation follows torchvision's
`replace_stride_with_dilation` (Yu & Koltun 2016; DeepLab): a dilated stage keeps the
resolution and doubles the dilation of the 3x3 convolutions instead of striding.
"""

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
from dl_arch.models.cnn.taps import window_conv
from dl_arch.registry import register_model


class BasicBlock(nn.Module):
    """Two 3x3 conv-BN layers and an identity (or 1x1 conv-BN) shortcut."""

    features: int
    strides: int = 1
    dilation: int = 1  # unused, always 1 (`check_dilation`): torchvision's BasicBlock has none
    dtype: Any = jnp.float32
    param_dtype: Any = jnp.float32
    expansion = 1

    @nn.compact
    def __call__(self, x: jax.Array, train: bool) -> jax.Array:
        conv = functools.partial(nn.Conv, use_bias=False, dtype=self.dtype,
                                 param_dtype=self.param_dtype, kernel_init=conv_init,
                                 conv_general_dilated=window_conv)
        norm = functools.partial(batch_norm, train, self.dtype, self.param_dtype)
        y = conv(self.features, (3, 3), self.strides, padding=1, name="conv1")(x)
        y = nn.relu(norm(name="bn1")(y))
        y = conv(self.features, (3, 3), padding=1, name="conv2")(y)
        y = norm(name="bn2")(y)
        return nn.relu(y + _shortcut(self, x, train))


class Bottleneck(nn.Module):
    """1x1 reduce, 3x3 (strided, v1.5; dilated in a dilated stage), 1x1 expand by 4, each
    with BN, plus shortcut."""

    features: int
    strides: int = 1
    dilation: int = 1  # of the 3x3 conv (padding = dilation keeps the map size)
    dtype: Any = jnp.float32
    param_dtype: Any = jnp.float32
    expansion = 4

    @nn.compact
    def __call__(self, x: jax.Array, train: bool) -> jax.Array:
        conv = functools.partial(nn.Conv, use_bias=False, dtype=self.dtype,
                                 param_dtype=self.param_dtype, kernel_init=conv_init,
                                 conv_general_dilated=window_conv)
        norm = functools.partial(batch_norm, train, self.dtype, self.param_dtype)
        y = nn.relu(norm(name="bn1")(conv(self.features, (1, 1), name="conv1")(x)))
        y = conv(self.features, (3, 3), self.strides, padding=self.dilation,
                 kernel_dilation=self.dilation, name="conv2")(y)
        y = nn.relu(norm(name="bn2")(y))
        y = conv(self.features * 4, (1, 1), name="conv3")(y)
        y = norm(name="bn3")(y)
        return nn.relu(y + _shortcut(self, x, train))


def _shortcut(block: BasicBlock | Bottleneck, x: jax.Array, train: bool) -> jax.Array:
    """Identity, or a strided 1x1 conv + BN when the shape changes (torchvision 'B')."""
    out = block.features * block.expansion
    if block.strides == 1 and x.shape[-1] == out:
        return x
    # called inside the block's compact __call__
    x = nn.Conv(out, (1, 1), block.strides, use_bias=False, dtype=block.dtype,
                param_dtype=block.param_dtype, kernel_init=conv_init,
                conv_general_dilated=window_conv, name="downsample_conv")(x)
    return batch_norm(train, block.dtype, block.param_dtype, name="downsample_bn")(x)


BLOCKS = {"basic": BasicBlock, "bottleneck": Bottleneck}
NO_DILATION = (False, False, False)


def stage_dilations(num_stages: int, replace_stride_with_dilation: Sequence[bool]
                    ) -> list[tuple[int, int, int]]:
    """(stride, dilation of the first block, dilation of the later blocks) of each stage.

    torchvision's rule: entry i stands for stage i + 2 (missing entries are False); where it
    is True the stage keeps stride 1 and doubles the dilation, its first block still using the
    previous dilation.
    """
    replace = tuple(replace_stride_with_dilation)
    plan, dilation = [], 1
    for s in range(num_stages):
        stride, previous = (2 if s > 0 else 1), dilation
        if 0 < s <= len(replace) and replace[s - 1]:
            dilation, stride = dilation * stride, 1
        plan.append((stride, previous, dilation))
    return plan


def check_dilation(replace_stride_with_dilation: Sequence[bool], stage_sizes: Sequence[int],
                   block: str) -> None:
    """Fails in one line for a dilation the ResNet cannot take."""
    replace = tuple(replace_stride_with_dilation)
    extra = [i + 2 for i, r in enumerate(replace) if r and i + 2 > len(stage_sizes)]
    if extra:
        raise ConfigError(f"config.model.replace_stride_with_dilation={replace} dilates stage "
                          f"{extra[0]}, but the ResNet has {len(stage_sizes)} stages; set it False")
    if any(replace) and block != "bottleneck":
        raise ConfigError(f"config.model.replace_stride_with_dilation={replace} needs "
                          "block='bottleneck' (torchvision's BasicBlock has no dilation)")


def resnet_plan(stem: str, stage_sizes: Sequence[int], block: str,
                replace_stride_with_dilation: Sequence[bool] = NO_DILATION) -> list[Window]:
    """The convolutions and pools of a ResNet (stem, then each block's strided path).

    A dilated 3x3 conv with padding = dilation keeps the map size, as a 3x3/1 pad 1 does.
    """
    windows = [Window(7, 2, 3), Window(3, 2, 1)] if stem == "imagenet" else [Window(3, 1, 1)]
    strides = [stride for stride, _, _ in
               stage_dilations(len(stage_sizes), replace_stride_with_dilation)]
    for num_blocks, stride in zip(stage_sizes, strides, strict=True):
        for b in range(num_blocks):
            strided = Window(3, stride if b == 0 else 1, 1)
            windows += ([strided, Window(3, 1, 1)] if block == "basic"
                        else [Window(1), strided, Window(1)])
    return windows


def resnet_trunk(module: nn.Module, x_BHWC: jax.Array, train: bool, *, stage_sizes: Sequence[int],
                 block: str, stem: str, width: int,
                 replace_stride_with_dilation: Sequence[bool] = NO_DILATION,
                 what: str = "resnet") -> list[jax.Array]:
    """The stem and residual stages, built inside `module`'s compact `__call__`.

    Their parameters therefore sit at the top level of `module` (`conv1`, `bn1`,
    `layer{stage}_{block}`) whatever the model around them (classifier, detector backbone,
    segmenter), so weights move between them by path. Reads `module.dtype` and
    `module.param_dtype`; returns every stage's output (also sown as `layer{stage}`).
    """
    check_stem(stem, what)
    if block not in BLOCKS:
        raise ConfigError(f"config.model.block='{block}'; use basic or bottleneck")
    check_dilation(replace_stride_with_dilation, stage_sizes, block)
    check_images(x_BHWC, what, functools.partial(
        resnet_plan, stage_sizes=stage_sizes, block=block,
        replace_stride_with_dilation=replace_stride_with_dilation), stem)
    dtype, param_dtype = module.dtype, module.param_dtype
    conv = functools.partial(nn.Conv, width, use_bias=False, dtype=dtype, param_dtype=param_dtype,
                             kernel_init=conv_init, conv_general_dilated=window_conv,
                             name="conv1")
    x = jnp.asarray(x_BHWC, dtype)
    if stem == "imagenet":
        x = conv((7, 7), strides=2, padding=3)(x)
    else:
        x = conv((3, 3), padding=1)(x)
    x = nn.relu(batch_norm(train, dtype, param_dtype, name="bn1")(x))
    if stem == "imagenet":
        x = max_pool(x, 3, 2, padding=1)
    dilations = stage_dilations(len(stage_sizes), replace_stride_with_dilation)
    stages = []
    for s, (num_blocks, (stride, first, later)) in enumerate(
            zip(stage_sizes, dilations, strict=True)):
        for b in range(num_blocks):
            x = BLOCKS[block](width * 2**s, strides=stride if b == 0 else 1,
                              dilation=first if b == 0 else later, dtype=dtype,
                              param_dtype=param_dtype, name=f"layer{s + 1}_{b}")(x, train)
        module.sow("intermediates", f"layer{s + 1}", x)
        stages.append(x)
    return stages


class ResNet(nn.Module):
    """Stem, four stages of residual blocks (`layer{stage}_{block}`), global pool, head.

    stem="imagenet": 7x7/2 conv + 3x3/2 max pool; stem="small": one 3x3/1 conv (CIFAR).
    """

    stage_sizes: Sequence[int] = (2, 2, 2, 2)  # residual blocks per stage (channels double per stage)
    block: str = "basic"  # basic | bottleneck
    num_classes: int = 1000  # classes of the head
    stem: str = "imagenet"  # imagenet: 7x7/2 conv + 3x3/2 max pool | small: one 3x3/1 conv (CIFAR)
    width: int = 64  # channels of the stem and of the first stage
    replace_stride_with_dilation: tuple[bool, bool, bool] = NO_DILATION  # stages 2-4: dilate, not stride
    dtype: Any = jnp.float32
    param_dtype: Any = jnp.float32

    field_checks: ClassVar[dict[str, dict[str, Any]]] = {
        **STEM_CHECKS, "block": dict(choices=tuple(BLOCKS))}

    def plan(self, stem: str) -> list[Window]:
        """The convolutions and pools that shrink the image."""
        return resnet_plan(stem, self.stage_sizes, self.block, self.replace_stride_with_dilation)

    @nn.compact
    def __call__(self, x_BHWC: jax.Array, *, train: bool = False) -> jax.Array:
        x = resnet_trunk(self, x_BHWC, train, stage_sizes=self.stage_sizes, block=self.block,
                         stem=self.stem, width=self.width,
                         replace_stride_with_dilation=self.replace_stride_with_dilation)[-1]
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
