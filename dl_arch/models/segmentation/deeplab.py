"""DeepLabV3 (Chen et al. 2017) on a dilated ResNet, torchvision's `deeplabv3_resnet50` layout.

Layout: ResNet trunk (ImageNet stem, bottleneck stages `layer{s}_{b}`, output stride 8:
stages 3 and 4 dilated, or 16: stage 4 dilated) -> `classifier` = DeepLabHead:
  `aspp`: five parallel branches of `aspp_width` (256) channels, each conv (no bias) + BN +
    ReLU: a 1x1 conv, three 3x3 atrous convs at rates (12, 24, 36) for output stride 8 or
    (6, 12, 18) for 16, and image pooling (global mean, 1x1 conv, broadcast back);
    concatenated, projected by a 1x1 conv + BN + ReLU, dropout 0.5;
  then a 3x3 conv (no bias) + BN + ReLU and a 1x1 conv to the classes
-> bilinear upsampling to the input. `aux_head`: FCNHead(1024) on layer3 as in FCN-ResNet.
deeplabv3_resnet50 at 21 classes: 39,638,869 parameters without the auxiliary head,
42,004,074 with it (torchvision: 42.0M).
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any, ClassVar

import flax.linen as nn
import jax
import jax.numpy as jnp

from dl_arch.config.errors import ConfigError
from dl_arch.config.fields import Field
from dl_arch.models.cnn.common import batch_norm, check_images, conv_init
from dl_arch.models.segmentation.common import OUTPUT_STRIDES, dilated_resnet
from dl_arch.models.segmentation.fcn_resnet import FCNHead
from dl_arch.models.segmentation.upsample import resize_bilinear
from dl_arch.registry import register_model

# The paper's atrous rates of the three 3x3 ASPP branches for each output stride.
ATROUS_RATES = {8: (12, 24, 36), 16: (6, 12, 18)}


class ASPP(nn.Module):
    """Atrous spatial pyramid pooling: 1x1, three dilated 3x3 and an image-pooling branch,
    concatenated and projected (module doc)."""

    width: int
    rates: Sequence[int]
    dropout_rate: float = 0.5
    dtype: Any = jnp.float32
    param_dtype: Any = jnp.float32

    def _conv_bn_relu(self, x: jax.Array, kernel: int, name: str, train: bool,
                      rate: int = 1) -> jax.Array:
        x = nn.Conv(self.width, (kernel, kernel), padding=rate * (kernel // 2),
                    kernel_dilation=rate, use_bias=False, dtype=self.dtype,
                    param_dtype=self.param_dtype, kernel_init=conv_init, name=f"{name}_conv")(x)
        return nn.relu(batch_norm(train, self.dtype, self.param_dtype, name=f"{name}_bn")(x))

    @nn.compact
    def __call__(self, x_BHWC: jax.Array, train: bool) -> jax.Array:
        b, h, w, _ = x_BHWC.shape
        branches = [self._conv_bn_relu(x_BHWC, 1, "branch0", train)]
        branches += [self._conv_bn_relu(x_BHWC, 3, f"branch{i + 1}", train, rate)
                     for i, rate in enumerate(self.rates)]
        pooled_B11C = jnp.mean(x_BHWC, axis=(1, 2), keepdims=True)
        pooled_B11C = self._conv_bn_relu(pooled_B11C, 1, "pool", train)
        branches.append(jnp.broadcast_to(pooled_B11C, (b, h, w, self.width)))
        x = self._conv_bn_relu(jnp.concatenate(branches, axis=-1), 1, "project", train)
        return nn.Dropout(self.dropout_rate, deterministic=not train)(x)


class DeepLabHead(nn.Module):
    """torchvision's DeepLabHead: ASPP, 3x3 conv + BN + ReLU, 1x1 conv to the classes."""

    num_classes: int
    width: int
    rates: Sequence[int]
    dtype: Any = jnp.float32
    param_dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x_BHWC: jax.Array, train: bool) -> jax.Array:
        x = ASPP(self.width, tuple(self.rates), dtype=self.dtype, param_dtype=self.param_dtype,
                 name="aspp")(x_BHWC, train)
        x = nn.Conv(self.width, (3, 3), padding=1, use_bias=False, dtype=self.dtype,
                    param_dtype=self.param_dtype, kernel_init=conv_init, name="conv")(x)
        x = nn.relu(batch_norm(train, self.dtype, self.param_dtype, name="bn")(x))
        return nn.Conv(self.num_classes, (1, 1), dtype=jnp.float32, param_dtype=self.param_dtype,
                       name="out")(x)


class DeepLabV3(nn.Module):
    """DeepLabV3 on a dilated ResNet: logits [B, H, W, num_classes] (module doc)."""

    num_classes: int = 21  # classes of the per-pixel logits (background included)
    stage_sizes: Sequence[int] = (3, 4, 6, 3)  # bottleneck blocks per ResNet stage (ResNet-50)
    width: int = 64  # channels of the ResNet stem and first stage
    output_stride: int = 8  # 8: stages 3 and 4 dilated (torchvision) | 16: stage 4 dilated
    aspp_width: int = 256  # channels of every ASPP branch, its projection and the head conv
    atrous_rates: Sequence[int] = ()  # 3x3 ASPP rates; (): (12, 24, 36) at output stride 8, (6, 12, 18) at 16
    aux_head: bool = False  # FCNHead on layer3, its logits sown as aux_logits/aux
    dtype: Any = jnp.float32
    param_dtype: Any = jnp.float32

    field_checks: ClassVar[dict[str, dict[str, Any]]] = {
        "output_stride": dict(choices=tuple(OUTPUT_STRIDES)),
        "aspp_width": dict(low=1),
        "atrous_rates": dict(each=Field(1, "a dilation rate", low=1))}

    @nn.compact
    def __call__(self, x_BHWC: jax.Array, *, train: bool = False) -> jax.Array:
        check_images(x_BHWC, "deeplabv3")
        _, h, w, _ = x_BHWC.shape
        layer3, layer4 = dilated_resnet(self, x_BHWC, train, "deeplabv3")
        rates = tuple(self.atrous_rates) or ATROUS_RATES[self.output_stride]
        if len(rates) != 3:
            raise ConfigError(f"config.model.atrous_rates={rates}: ASPP has three atrous "
                              "branches; give three rates or () for the paper's")
        if self.aux_head:
            aux = FCNHead(self.num_classes, 0.1, self.dtype, self.param_dtype,
                          name="aux_classifier")(layer3, train)
            self.sow("aux_logits", "aux", resize_bilinear(aux, h, w))
        logits = DeepLabHead(self.num_classes, self.aspp_width, rates, self.dtype,
                             self.param_dtype, name="classifier")(layer4, train)
        return resize_bilinear(logits, h, w)


register_model("deeplabv3_resnet50", DeepLabV3)
register_model("deeplabv3_resnet101", functools.partial(DeepLabV3, stage_sizes=(3, 4, 23, 3)))
register_model("deeplabv3_tiny", functools.partial(
    DeepLabV3, stage_sizes=(1, 1, 1, 1), width=8, aspp_width=32, atrous_rates=(1, 2, 3)))
