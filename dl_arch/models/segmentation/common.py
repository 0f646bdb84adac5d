"""Checks and encoder plumbing shared by the segmenters."""

from __future__ import annotations

from collections.abc import Sequence

import flax.linen as nn
import jax

from dl_arch.config.errors import ConfigError
from dl_arch.models.cnn.common import check_images
from dl_arch.models.cnn.resnet import resnet_trunk

# replace_stride_with_dilation of ResNet stages 2-4 for each output stride (torchvision).
OUTPUT_STRIDES = {8: (False, True, True), 16: (False, False, True)}


def check_sides(x_BHWC: jax.Array, multiple: int, what: str) -> None:
    """Fails in one line unless `x` is an image batch whose sides are multiples of `multiple`."""
    check_images(x_BHWC, what)
    _, h, w, _ = x_BHWC.shape
    if h % multiple or w % multiple or h < multiple or w < multiple:
        raise ConfigError(f"{what} needs image sides that are multiples of {multiple} (got "
                          f"{h}x{w}); set config.dataset.image_size to a multiple of {multiple}")


def dilated_resnet(module: nn.Module, x_BHWC: jax.Array, train: bool, what: str
                   ) -> tuple[jax.Array, jax.Array]:
    """(layer3, layer4) of a bottleneck ResNet with the ImageNet stem, dilated to
    `module.output_stride`, built in `module`'s compact scope (the classifier's parameter
    paths `conv1`, `bn1`, `layer{s}_{b}` at its top level). Reads `module.stage_sizes`,
    `module.width`, `module.output_stride`, `module.dtype` and `module.param_dtype`."""
    stage_sizes: Sequence[int] = module.stage_sizes
    if len(stage_sizes) != 4:
        raise ConfigError(f"config.model.stage_sizes={tuple(stage_sizes)}: {what} needs the four "
                          "ResNet stages (layer3 feeds the auxiliary head, layer4 the head)")
    if module.output_stride not in OUTPUT_STRIDES:
        raise ConfigError(f"config.model.output_stride={module.output_stride}; use 8 or 16")
    stages = resnet_trunk(module, x_BHWC, train, stage_sizes=stage_sizes, block="bottleneck",
                          stem="imagenet", width=module.width,
                          replace_stride_with_dilation=OUTPUT_STRIDES[module.output_stride],
                          what=what)
    return stages[2], stages[3]
