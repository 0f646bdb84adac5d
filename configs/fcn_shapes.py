"""FCN (Long et al. 2015) on a VGG-16-shaped encoder segmenting offline `shapes` scenes.

The paper's VGG-16 stages (2, 2, 3, 3, 3 convs) at a sixteenth of its channels with
BatchNorm, fc6/fc7 as convolutions, and the `stride` option: 32 (FCN-32s: upsample the
coarsest scores), 16 (+ pool4 scores) or 8 (+ pool3 scores, FCN-8s).

    python launch.py --config=configs/fcn_shapes.py --workdir=runs/fcn8s_shapes
    python launch.py --config=configs/fcn_shapes.py:stride=32 --workdir=runs/fcn32s_shapes
    python launch.py --config=configs/fcn_shapes.py:smoke --workdir=/tmp/fcn_smoke
    python launch.py --config=configs/fcn_shapes.py:data=/data/mine/images --workdir=runs/fcn_mine

`data=PATH`: your images and masks (configs/unet_shapes.py says how).
"""

from __future__ import annotations

import ml_collections

from configs.base import parse_options
from configs.segmentation_shapes import segmentation_shapes_config


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    opts = parse_options(arg, image_size=64, num_classes=4, num_objects=3, steps=1000, lr=3e-3,
                         stride=8, data="")
    if opts.stride not in (8, 16, 32):
        raise ValueError(f"option stride={opts.stride}; use 8, 16 or 32")
    return segmentation_shapes_config(
        opts,
        model=dict(name=f"fcn{opts.stride}s_vgg16", batch_norm=True, fc_width=256, fc_kernel=3,
                   stages=((4, 4), (8, 8), (16, 16, 16), (32, 32, 32), (32, 32, 32))),
        smoke_model=dict(name=f"fcn{opts.stride}s_tiny"))
