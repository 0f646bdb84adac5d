"""MobileNetV2 (CIFAR stem: stride 1 in the stem and second group) on TFDS cifar10.

    python launch.py --config=configs/mobilenet_v2_cifar10.py --workdir=runs/mnv2_cifar10
    python launch.py --config=configs/mobilenet_v2_cifar10.py:width_multiplier=0.5 --workdir=...
    python launch.py --config=configs/mobilenet_v2_cifar10.py:smoke --workdir=/tmp/mnv2_smoke
"""

from __future__ import annotations

import ml_collections

from configs.base import parse_options
from configs.resnet18_cifar10 import cifar10_config


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    opts = parse_options(arg, steps=39_000, lr=0.1, width_multiplier=1.0)
    return cifar10_config(
        dict(name="mobilenet_v2", stem="small", width_multiplier=opts.width_multiplier),
        dict(name="mobilenet_v2_tiny"), opts.smoke, opts.steps, opts.lr,
        weight_decay=4e-5,  # the paper's: depthwise filters have few parameters to regularise
        visualize_layers=("group1", "group3"))
