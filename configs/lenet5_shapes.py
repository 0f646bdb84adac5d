"""LeNet-5 on grayscale 32x32 `shapes` (the classic 61,7xx-parameter layout): offline.

    python launch.py --config=configs/lenet5_shapes.py --workdir=runs/lenet5_shapes
    python launch.py --config=configs/lenet5_shapes.py:smoke --workdir=/tmp/lenet5_shapes_smoke
    python launch.py --config=configs/lenet5_shapes.py:data=/data/my_images --workdir=runs/lenet5_mine

`data=PATH`: your images instead of `shapes` (configs/cnn_shapes.py: own_images).
"""

from __future__ import annotations

import ml_collections

from configs.base import parse_options
from configs.cnn_shapes import cnn_shapes_config


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    opts = parse_options(arg, image_size=32, num_classes=6, steps=600, lr=2e-3, data="")
    return cnn_shapes_config(
        opts,
        model=dict(name="lenet5", stem="imagenet"),  # classic valid convs on 32x32
        smoke_model=dict(name="lenet5_tiny", stem="imagenet"),
        visualize_layers=("stage1", "stage2"),
        channels=1)
