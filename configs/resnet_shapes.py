"""ResNet-18 (narrow, CIFAR stem) on the procedural `shapes` images: offline, minutes on a CPU.

    python launch.py --config=configs/resnet_shapes.py --workdir=runs/resnet_shapes
    python launch.py --config=configs/resnet_shapes.py:smoke --workdir=/tmp/resnet_shapes_smoke
    python launch.py --config=configs/resnet_shapes.py:data=/data/my_images --workdir=runs/resnet_mine

`data=PATH`: your images instead of `shapes` (configs/cnn_shapes.py: own_images).
"""

from __future__ import annotations

import ml_collections

from configs.base import parse_options
from configs.cnn_shapes import cnn_shapes_config


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    opts = parse_options(arg, image_size=32, num_classes=6, steps=400, lr=2e-3, width=16, data="")
    return cnn_shapes_config(
        opts,
        model=dict(name="resnet18", stem="small", width=opts.width),  # width 16: 0.7M params
        smoke_model=dict(name="resnet_tiny"),
        visualize_layers=("layer1", "layer2"))
