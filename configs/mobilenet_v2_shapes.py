"""MobileNetV2 (width multiplier 0.35, CIFAR stem) on the procedural `shapes` images: offline.

    python launch.py --config=configs/mobilenet_v2_shapes.py --workdir=runs/mnv2_shapes
    python launch.py --config=configs/mobilenet_v2_shapes.py:smoke --workdir=/tmp/mnv2_smoke
    python launch.py --config=configs/mobilenet_v2_shapes.py:data=/data/my_images --workdir=runs/mnv2_mine

`data=PATH`: your images instead of `shapes` (configs/cnn_shapes.py: own_images).
"""

from __future__ import annotations

import ml_collections

from configs.base import parse_options
from configs.cnn_shapes import cnn_shapes_config


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    opts = parse_options(arg, image_size=32, num_classes=6, steps=300, lr=2e-3,
                         width_multiplier=0.35, stem="small", data="")
    return cnn_shapes_config(
        opts,
        # stem "small": the CIFAR stem (stride 1, then 32x32 through group 2); the strided
        # ImageNet stem leaves 1x1 features at 32x32 input (costs: docs/results/tuning_notes.md)
        model=dict(name="mobilenet_v2", stem=opts.stem, width_multiplier=opts.width_multiplier),
        smoke_model=dict(name="mobilenet_v2_tiny"),
        visualize_layers=("group1", "group3"))
