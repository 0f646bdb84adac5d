"""VGG-11 with BatchNorm (channels / 8, CIFAR head) on the procedural `shapes`: offline.

    python launch.py --config=configs/vgg_shapes.py --workdir=runs/vgg_shapes
    python launch.py --config=configs/vgg_shapes.py:smoke --workdir=/tmp/vgg_shapes_smoke
    python launch.py --config=configs/vgg_shapes.py:data=/data/my_images --workdir=runs/vgg_mine

`data=PATH`: your images instead of `shapes` (configs/cnn_shapes.py: own_images).
"""

from __future__ import annotations

import ml_collections

from configs.base import parse_options
from configs.cnn_shapes import cnn_shapes_config


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    opts = parse_options(arg, image_size=32, num_classes=6, steps=1200, lr=2e-3, data="")
    return cnn_shapes_config(
        opts,
        model=dict(name="vgg11_bn", stem="small",
                   stages=((8,), (16,), (32, 32), (64, 64), (64, 64)),  # vgg11 widths / 8
                   classifier_width=128, dropout_rate=0.1),  # light dropout: 128-wide fc
        smoke_model=dict(name="vgg_bn_tiny"),
        visualize_layers=("stage1", "stage3"))
