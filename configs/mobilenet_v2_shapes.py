"""MobileNetV2 (width multiplier 0.5, CIFAR stem) on the procedural `shapes`: offline.

    python launch.py --config=configs/mobilenet_v2_shapes.py --workdir=runs/mnv2_shapes
    python launch.py --config=configs/mobilenet_v2_shapes.py:smoke --workdir=/tmp/mnv2_smoke
"""

from __future__ import annotations

import ml_collections

from configs.base import parse_options
from configs.resnet_shapes import cnn_shapes_config


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    opts = parse_options(arg, image_size=32, num_classes=6, steps=400, lr=2e-3,
                         width_multiplier=0.5)
    return cnn_shapes_config(
        opts,
        model=dict(name="mobilenet_v2", stem="small", width_multiplier=opts.width_multiplier),
        smoke_model=dict(name="mobilenet_v2_tiny"),
        visualize_layers=("group1", "group3"))
