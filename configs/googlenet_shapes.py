"""GoogLeNet (channels / 4, CIFAR stem, BatchNorm layout) on the procedural `shapes`: offline.

    python launch.py --config=configs/googlenet_shapes.py --workdir=runs/googlenet_shapes
    python launch.py --config=configs/googlenet_shapes.py:smoke --workdir=/tmp/googlenet_smoke
    python launch.py --config=configs/googlenet_shapes.py:data=/data/my_images --workdir=runs/googlenet_mine

`data=PATH`: your images instead of `shapes` (configs/cnn_shapes.py: own_images).
"""

from __future__ import annotations

import ml_collections

from configs.base import parse_options
from configs.cnn_shapes import cnn_shapes_config


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    opts = parse_options(arg, image_size=32, num_classes=6, steps=300, lr=2e-3,
                         layout="torchvision", aux_logits=True, data="")
    return cnn_shapes_config(
        opts,
        model=dict(name="googlenet", stem="small", width_multiplier=0.25, layout=opts.layout,
                   aux_logits=opts.aux_logits),  # aux heads: +0.3 x their CE in training
        smoke_model=dict(name="googlenet_tiny", layout=opts.layout, aux_logits=opts.aux_logits),
        visualize_layers=("stem", "inception4e_output"))
