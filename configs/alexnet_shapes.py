"""AlexNet (narrow, CIFAR stem) on the procedural `shapes` images: offline.

    python launch.py --config=configs/alexnet_shapes.py --workdir=runs/alexnet_shapes
    python launch.py --config=configs/alexnet_shapes.py:smoke --workdir=/tmp/alexnet_smoke
    python launch.py --config=configs/alexnet_shapes.py:data=/data/my_images --workdir=runs/alexnet_mine

`data=PATH`: your images instead of `shapes` (configs/cnn_shapes.py: own_images).
"""

from __future__ import annotations

import ml_collections

from configs.base import parse_options
from configs.cnn_shapes import cnn_shapes_config


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    opts = parse_options(arg, image_size=32, num_classes=6, steps=800, lr=1e-3, data="")
    return cnn_shapes_config(
        opts,
        model=dict(name="alexnet", stem="small", features=(32, 64, 96, 64, 64),
                   classifier_width=256, dropout_rate=0.1),
        # conv widths 1/2-1/4 of the paper's, lighter dropout (docs/results/tuning_notes.md)
        smoke_model=dict(name="alexnet_tiny"),
        visualize_layers=("stage1", "stage3"))
