"""AlexNet in torchvision's single-GPU layout (61,100,840 parameters at 224x224, 1000 classes)."""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any, ClassVar

import flax.linen as nn
import jax
import jax.numpy as jnp

from dl_arch.models.cnn.common import (
    STEM_CHECKS,
    Window,
    adaptive_avg_pool,
    check_images,
    check_stem,
    conv_init_fan_in,
    flatten_hwc,
    head,
    max_pool,
)
from dl_arch.registry import register_model


class AlexNet(nn.Module):
    """Five convolutions (11x11/4, 5x5, 3x3 x3), three max pools, three dense layers.

    stem="small" (28x28/32x32) makes conv1 3x3 stride 1 and the pools 2x2; `pooled_size` and
    `classifier_width` default to 6 / 4096 (imagenet) or 2 / 1024 (small).
    """

    num_classes: int = 1000  # classes of the head
    stem: str = "imagenet"  # imagenet: conv1 11x11/4, 3x3/2 pools | small: conv1 3x3/1, 2x2 pools
    features: Sequence[int] = (64, 192, 384, 256, 256)  # channels of conv1..conv5
    classifier_width: int | None = None  # hidden width of fc1/fc2 (None: by stem)
    pooled_size: int | None = None  # adaptive average pool side before fc1 (None: by stem)
    dropout_rate: float = 0.5  # dropout before fc1 and fc2 in training
    dtype: Any = jnp.float32
    param_dtype: Any = jnp.float32

    field_checks: ClassVar[dict[str, dict[str, Any]]] = STEM_CHECKS

    @staticmethod
    def plan(stem: str) -> list[Window]:
        """The convolutions and pools that shrink the image (conv1, pool, pool, conv3-5, pool)."""
        small = stem == "small"
        pool = Window(2, 2) if small else Window(3, 2)
        conv1 = Window(3, 1, 1) if small else Window(11, 4, 2)
        same = Window(3, 1, 1)
        return [conv1, pool, Window(5, 1, 2), pool, same, same, same, pool]

    @nn.compact
    def __call__(self, x_BHWC: jax.Array, *, train: bool = False) -> jax.Array:
        check_stem(self.stem, "alexnet")
        check_images(x_BHWC, "alexnet", self.plan, self.stem)
        small = self.stem == "small"
        # fan-in He init: with no BatchNorm, fan-out init shrinks activations layer by layer
        conv = functools.partial(nn.Conv, dtype=self.dtype, param_dtype=self.param_dtype,
                                 kernel_init=conv_init_fan_in)
        pool = (lambda y: max_pool(y, 2, 2)) if small else (lambda y: max_pool(y, 3, 2))
        f = self.features
        x = jnp.asarray(x_BHWC, self.dtype)
        if small:
            x = nn.relu(conv(f[0], (3, 3), padding=1, name="conv1")(x))
        else:
            x = nn.relu(conv(f[0], (11, 11), strides=4, padding=2, name="conv1")(x))
        x = pool(x)
        self.sow("intermediates", "stage1", x)
        x = pool(nn.relu(conv(f[1], (5, 5), padding=2, name="conv2")(x)))
        self.sow("intermediates", "stage2", x)
        x = nn.relu(conv(f[2], (3, 3), padding=1, name="conv3")(x))
        x = nn.relu(conv(f[3], (3, 3), padding=1, name="conv4")(x))
        x = pool(nn.relu(conv(f[4], (3, 3), padding=1, name="conv5")(x)))
        self.sow("intermediates", "stage3", x)
        pooled = self.pooled_size or (2 if small else 6)
        width = self.classifier_width or (1024 if small else 4096)
        x = flatten_hwc(adaptive_avg_pool(x, pooled))
        dense = functools.partial(nn.Dense, dtype=self.dtype, param_dtype=self.param_dtype)
        x = nn.Dropout(self.dropout_rate, deterministic=not train)(x)
        x = nn.relu(dense(width, name="fc1")(x))
        x = nn.Dropout(self.dropout_rate, deterministic=not train)(x)
        x = nn.relu(dense(width, name="fc2")(x))
        return head(self.num_classes, self.param_dtype)(x)


register_model("alexnet", AlexNet)
register_model("alexnet_tiny", functools.partial(
    AlexNet, features=(8, 16, 16, 16, 16), classifier_width=32, stem="small"))
