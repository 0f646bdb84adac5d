"""FCN on a dilated ResNet, torchvision's `fcn_resnet50` / `fcn_resnet101` layout.

Layout: ResNet trunk (ImageNet stem, bottleneck stages `layer{s}_{b}`; stages 3 and 4 dilated
instead of strided, output stride 8) -> `classifier` = FCNHead(2048): 3x3 conv to 512 (no
bias), BN, ReLU, dropout 0.1, 1x1 conv to the classes -> bilinear upsampling to the input.
`aux_head`: torchvision's auxiliary classifier, FCNHead(1024) on layer3, upsampled alike and
sown as `aux_logits/aux` (the task adds its loss in training; torchvision weights it 0.5).
fcn_resnet50 at 21 classes: 32,957,013 parameters without the auxiliary head, 35,322,218
with it (torchvision: 35.3M).
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any, ClassVar

import flax.linen as nn
import jax
import jax.numpy as jnp

from dl_arch.models.cnn.common import batch_norm, check_images, conv_init
from dl_arch.models.segmentation.common import OUTPUT_STRIDES, dilated_resnet
from dl_arch.models.segmentation.upsample import resize_bilinear
from dl_arch.registry import register_model


class FCNHead(nn.Module):
    """torchvision's FCNHead: 3x3 conv to in/4 channels (no bias), BN, ReLU, dropout, then a
    1x1 conv to the classes (float32 logits at the feature map's resolution)."""

    num_classes: int
    dropout_rate: float = 0.1
    dtype: Any = jnp.float32
    param_dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x_BHWC: jax.Array, train: bool) -> jax.Array:
        x = nn.Conv(x_BHWC.shape[-1] // 4, (3, 3), padding=1, use_bias=False, dtype=self.dtype,
                    param_dtype=self.param_dtype, kernel_init=conv_init, name="conv")(x_BHWC)
        x = nn.relu(batch_norm(train, self.dtype, self.param_dtype, name="bn")(x))
        x = nn.Dropout(self.dropout_rate, deterministic=not train)(x)
        return nn.Conv(self.num_classes, (1, 1), dtype=jnp.float32, param_dtype=self.param_dtype,
                       name="out")(x)


class FCNResNet(nn.Module):
    """FCN head on a dilated ResNet: logits [B, H, W, num_classes] (module doc)."""

    num_classes: int = 21  # classes of the per-pixel logits (background included)
    stage_sizes: Sequence[int] = (3, 4, 6, 3)  # bottleneck blocks per ResNet stage (ResNet-50)
    width: int = 64  # channels of the ResNet stem and first stage
    output_stride: int = 8  # 8: stages 3 and 4 dilated (torchvision) | 16: stage 4 dilated
    aux_head: bool = False  # FCNHead on layer3, its logits sown as aux_logits/aux
    dropout_rate: float = 0.1  # dropout in the heads before their 1x1 classifier conv
    dtype: Any = jnp.float32
    param_dtype: Any = jnp.float32

    field_checks: ClassVar[dict[str, dict[str, Any]]] = {
        "output_stride": dict(choices=tuple(OUTPUT_STRIDES))}

    @nn.compact
    def __call__(self, x_BHWC: jax.Array, *, train: bool = False) -> jax.Array:
        check_images(x_BHWC, "fcn_resnet")
        _, h, w, _ = x_BHWC.shape
        layer3, layer4 = dilated_resnet(self, x_BHWC, train, "fcn_resnet")
        head = functools.partial(FCNHead, self.num_classes, self.dropout_rate, self.dtype,
                                 self.param_dtype)
        if self.aux_head:
            self.sow("aux_logits", "aux",
                     resize_bilinear(head(name="aux_classifier")(layer3, train), h, w))
        return resize_bilinear(head(name="classifier")(layer4, train), h, w)


register_model("fcn_resnet50", FCNResNet)
register_model("fcn_resnet101", functools.partial(FCNResNet, stage_sizes=(3, 4, 23, 3)))
register_model("fcn_resnet_tiny", functools.partial(FCNResNet, stage_sizes=(1, 1, 1, 1), width=8))
