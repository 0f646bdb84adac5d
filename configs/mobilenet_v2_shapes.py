"""MobileNetV2 (width multiplier 0.5, strided ImageNet stem) on the procedural `shapes`: offline.

    python launch.py --config=configs/mobilenet_v2_shapes.py --workdir=runs/mnv2_shapes
    python launch.py --config=configs/mobilenet_v2_shapes.py:smoke --workdir=/tmp/mnv2_smoke
"""

from __future__ import annotations

import ml_collections

from configs.base import parse_options
from configs.cnn_shapes import cnn_shapes_config


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    opts = parse_options(arg, image_size=32, num_classes=6, steps=400, lr=2e-3,
                         width_multiplier=0.5, stem="imagenet")
    return cnn_shapes_config(
        opts,
        # The strided stem keeps a step ~4 GFLOPs (the CIFAR stem costs 16x more on a CPU).
        model=dict(name="mobilenet_v2", stem=opts.stem, width_multiplier=opts.width_multiplier),
        smoke_model=dict(name="mobilenet_v2_tiny"),
        visualize_layers=("group1", "group3"))
