"""VGG 11/13/16/19 (Simonyan & Zisserman 2014), with or without BatchNorm, torchvision layout.

`vgg_trunk` builds the convolution stages inside the caller's compact scope, so the
classifier and FCN (`dl_arch.models.segmentation.fcn`) share one layout (`conv{s}_{i}`,
`bn{s}_{i}`) and weights move between them by path.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any, ClassVar

import flax.linen as nn
import jax
import jax.numpy as jnp

from dl_arch.config.fields import Field
from dl_arch.models.cnn.common import (
    STEM_CHECKS,
    Window,
    adaptive_avg_pool,
    as_tuple,
    batch_norm,
    check_images,
    check_stem,
    conv_init,
    flatten_hwc,
    head,
    max_pool,
)
from dl_arch.registry import register_model

# Channels of the 3x3 convolutions per stage; every stage ends with a 2x2 max pool.
VGG_STAGES = {
    11: ((64,), (128,), (256, 256), (512, 512), (512, 512)),
    13: ((64, 64), (128, 128), (256, 256), (512, 512), (512, 512)),
    16: ((64, 64), (128, 128), (256, 256, 256), (512, 512, 512), (512, 512, 512)),
    19: ((64, 64), (128, 128), (256,) * 4, (512,) * 4, (512,) * 4),
}

_dense_init = nn.initializers.normal(0.01)  # torchvision's Linear init for VGG


def vgg_trunk(module: nn.Module, x_BHWC: jax.Array, train: bool, *,
              stages: Sequence[Sequence[int]], bn: bool) -> list[jax.Array]:
    """The 3x3 conv (+BN when `bn`) + ReLU stages, each ended by a 2x2 max pool, built in `module`'s
    compact `__call__` (parameters `conv{s}_{i}`, `bn{s}_{i}` at its top level).

    Reads `module.dtype` and `module.param_dtype`; returns every pooled stage output (also
    sown as `stage{s}`).
    """
    dtype, param_dtype = module.dtype, module.param_dtype
    x = jnp.asarray(x_BHWC, dtype)
    pooled = []
    for s, stage in enumerate(as_tuple(stages)):
        for i, channels in enumerate(stage):
            x = nn.Conv(channels, (3, 3), padding=1, dtype=dtype, param_dtype=param_dtype,
                        kernel_init=conv_init, name=f"conv{s + 1}_{i + 1}")(x)
            if bn:
                x = batch_norm(train, dtype, param_dtype, name=f"bn{s + 1}_{i + 1}")(x)
            x = nn.relu(x)
        x = max_pool(x, 2, 2)
        module.sow("intermediates", f"stage{s + 1}", x)
        pooled.append(x)
    return pooled


class VGG(nn.Module):
    """Stages of 3x3 convolutions (+BatchNorm) and max pools, then fc1-fc2-head.

    Parameters are named `conv{stage}_{layer}`, `bn{stage}_{layer}`, `fc1`, `fc2`, `head`.
    stem="small" defaults `pooled_size` to 1 and `classifier_width` to 512 (CIFAR VGG).
    """

    stages: Sequence[Sequence[int]] = VGG_STAGES[16]  # channels of the 3x3 convs, per pooled stage
    batch_norm: bool = False  # BatchNorm after every convolution (the *_bn variants)
    num_classes: int = 1000  # classes of the head
    stem: str = "imagenet"  # imagenet: 7x7 pool, fc 4096 | small: 1x1 pool, fc 512 (CIFAR)
    classifier_width: int | None = None  # hidden width of fc1/fc2 (None: 4096 or 512)
    pooled_size: int | None = None  # adaptive average pool side before fc1 (None: 7 or 1)
    dropout_rate: float = 0.5  # dropout after fc1 and fc2 in training
    dtype: Any = jnp.float32
    param_dtype: Any = jnp.float32

    field_checks: ClassVar[dict[str, dict[str, Any]]] = {
        **STEM_CHECKS,
        "stages": dict(each=Field((64,), "channels of a stage", each=Field(1, "channels", low=1)))}

    def plan(self, stem: str) -> list[Window]:
        """The convolutions and pools that shrink the image: each stage ends with a 2x2 pool."""
        windows = []
        for stage in as_tuple(self.stages):
            windows += [Window(3, 1, 1)] * len(stage) + [Window(2, 2)]
        return windows

    @nn.compact
    def __call__(self, x_BHWC: jax.Array, *, train: bool = False) -> jax.Array:
        check_stem(self.stem, "vgg")
        check_images(x_BHWC, "vgg", self.plan, self.stem)
        small = self.stem == "small"
        x = vgg_trunk(self, x_BHWC, train, stages=self.stages, bn=self.batch_norm)[-1]
        pooled = self.pooled_size or (1 if small else 7)
        width = self.classifier_width or (512 if small else 4096)
        x = flatten_hwc(adaptive_avg_pool(x, pooled))
        dense = functools.partial(nn.Dense, dtype=self.dtype, param_dtype=self.param_dtype,
                                  kernel_init=_dense_init)
        x = nn.relu(dense(width, name="fc1")(x))
        x = nn.Dropout(self.dropout_rate, deterministic=not train)(x)
        x = nn.relu(dense(width, name="fc2")(x))
        x = nn.Dropout(self.dropout_rate, deterministic=not train)(x)
        return head(self.num_classes, self.param_dtype, kernel_init=_dense_init)(x)


for _depth, _stages in VGG_STAGES.items():
    register_model(f"vgg{_depth}", functools.partial(VGG, stages=_stages, batch_norm=False))
    register_model(f"vgg{_depth}_bn", functools.partial(VGG, stages=_stages, batch_norm=True))
_TINY = ((8,), (16,), (16, 16))
register_model("vgg_tiny", functools.partial(
    VGG, stages=_TINY, batch_norm=False, classifier_width=32, stem="small"))
register_model("vgg_bn_tiny", functools.partial(
    VGG, stages=_TINY, batch_norm=True, classifier_width=32, stem="small"))
