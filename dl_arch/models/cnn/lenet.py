"""LeNet-5: conv(6,5x5)-pool-conv(16,5x5)-pool-fc120-fc84-head, for 32x32 (or 28x28) images."""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any, ClassVar

import flax.linen as nn
import jax
import jax.numpy as jnp

from dl_arch.config.errors import ConfigError
from dl_arch.config.fields import Field
from dl_arch.models.cnn.common import STEM_CHECKS, Window, check_images, check_stem, head, max_pool
from dl_arch.models.cnn.taps import window_conv
from dl_arch.registry import register_model

_ACTIVATIONS = {"relu": nn.relu, "tanh": jnp.tanh}


class LeNet5(nn.Module):
    """LeCun et al. 1998 layout; 61,706 parameters with 10 classes and one input channel.

    stem="imagenet" is the classic valid-padded layout for 32x32 inputs; stem="small" pads the
    first convolution by 2 so 28x28 MNIST digits reach the same 5x5x16 map (same parameters).
    """

    num_classes: int = 10  # classes of the head
    stem: str = "imagenet"  # imagenet: valid conv1 (32x32 inputs) | small: conv1 padded by 2 (28x28)
    features: Sequence[int] = (6, 16)  # channels of the two convolutions
    hidden: Sequence[int] = (120, 84)  # widths of the fully connected layers
    activation: str = "relu"  # relu | tanh (the 1998 paper's squashing function)
    pooling: str = "max"  # max | avg (the paper's subsampling is an average)
    dtype: Any = jnp.float32
    param_dtype: Any = jnp.float32

    field_checks: ClassVar[dict[str, dict[str, Any]]] = {
        **STEM_CHECKS, "hidden": dict(each=Field(1, "a layer width", low=1)),
        "activation": dict(choices=tuple(_ACTIVATIONS)), "pooling": dict(choices=("max", "avg"))}

    @staticmethod
    def plan(stem: str) -> list[Window]:
        """The convolutions and pools that shrink the image: conv 5x5, pool 2, conv 5x5, pool 2."""
        return [Window(5, padding=2 if stem == "small" else 0), Window(2, 2), Window(5),
                Window(2, 2)]

    @nn.compact
    def __call__(self, x_BHWC: jax.Array, *, train: bool = False) -> jax.Array:
        check_stem(self.stem, "lenet5")
        if self.activation not in _ACTIVATIONS:
            raise ConfigError(f"config.model.activation='{self.activation}'; use relu or tanh")
        if self.pooling not in ("max", "avg"):
            raise ConfigError(f"config.model.pooling='{self.pooling}'; use max or avg")
        check_images(x_BHWC, "lenet5", self.plan, self.stem)
        act = _ACTIVATIONS[self.activation]
        pool = (lambda y: max_pool(y, 2, 2)) if self.pooling == "max" else \
            (lambda y: nn.avg_pool(y, (2, 2), (2, 2)))
        conv = functools.partial(nn.Conv, kernel_size=(5, 5), dtype=self.dtype,
                                 param_dtype=self.param_dtype, conv_general_dilated=window_conv)
        x = jnp.asarray(x_BHWC, self.dtype)
        x = act(conv(self.features[0], padding=2 if self.stem == "small" else 0, name="conv1")(x))
        x = pool(x)
        self.sow("intermediates", "stage1", x)
        x = act(conv(self.features[1], padding=0, name="conv2")(x))
        x = pool(x)
        self.sow("intermediates", "stage2", x)
        x = x.reshape(x.shape[0], -1)
        for i, width in enumerate(self.hidden):
            x = act(nn.Dense(width, dtype=self.dtype, param_dtype=self.param_dtype,
                             name=f"fc{i + 1}")(x))
        return head(self.num_classes, self.param_dtype)(x)


register_model("lenet5", LeNet5)
register_model("lenet5_tiny", functools.partial(LeNet5, features=(4, 8), hidden=(32, 16)))
