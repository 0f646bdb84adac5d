"""DeepLabV3 (Chen et al. 2017) segmenting offline `shapes` scenes, at CPU size.

A dilated bottleneck ResNet (one block per stage, width 16; output stride 8) and the ASPP
head with atrous rates scaled to the 8x8 feature map of 64x64 images (the paper's 12/24/36
suit 512x512 crops).

    python launch.py --config=configs/deeplabv3_shapes.py --workdir=runs/deeplabv3_shapes
    python launch.py --config=configs/deeplabv3_shapes.py:smoke --workdir=/tmp/deeplab_smoke
    python launch.py --config=configs/deeplabv3_shapes.py:data=/data/mine/images --workdir=runs/dl_mine

`data=PATH`: your images and masks (configs/unet_shapes.py says how).
"""

from __future__ import annotations

import ml_collections

from configs.base import parse_options
from configs.segmentation_shapes import segmentation_shapes_config


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    opts = parse_options(arg, image_size=64, num_classes=4, num_objects=3, steps=1000, lr=3e-3,
                         data="")
    return segmentation_shapes_config(
        opts,
        model=dict(name="deeplabv3_resnet50", stage_sizes=(1, 1, 1, 1), width=16,
                   output_stride=8, aspp_width=64, atrous_rates=(2, 4, 6)),
        smoke_model=dict(name="deeplabv3_tiny"))
