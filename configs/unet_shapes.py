"""U-Net (Ronneberger et al. 2015) segmenting offline `shapes` scenes, at CPU width.

The paper's layout (4 down steps, two 3x3 convs each, up-convolutions, skip connections),
64x64 images, a width of 8 channels (the paper: 64) and BatchNorm for fast training.

    python launch.py --config=configs/unet_shapes.py --workdir=runs/unet_shapes
    python launch.py --config=configs/unet_shapes.py:smoke --workdir=/tmp/unet_smoke
    python launch.py --config=configs/unet_shapes.py:skips=False --workdir=runs/unet_noskip
    python launch.py --config=configs/unet_shapes.py:data=/data/mine/images --workdir=runs/unet_mine

`data=PATH`: your images (PATH) and their masks (PNGs of class indices, same names, in the
folder `masks` beside PATH); the model gets one class per mask value.
"""

from __future__ import annotations

import ml_collections

from configs.base import parse_options
from configs.segmentation_shapes import segmentation_shapes_config


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    opts = parse_options(arg, image_size=64, num_classes=4, num_objects=3, steps=1000, lr=3e-3,
                         width=8, skips=True, data="")
    return segmentation_shapes_config(
        opts,
        model=dict(name="unet", width=opts.width, depth=4, batch_norm=True,
                   skip_connections=opts.skips),
        smoke_model=dict(name="unet_tiny", skip_connections=opts.skips))
