"""VGG-11 (BatchNorm by default, CIFAR head: 512-512-10) on TFDS cifar10.

    python launch.py --config=configs/vgg11_cifar10.py --workdir=runs/vgg11_cifar10
    python launch.py --config=configs/vgg11_cifar10.py:batch_norm=False --workdir=runs/vgg11_nobn
    python launch.py --config=configs/vgg11_cifar10.py:smoke --workdir=/tmp/vgg11_c10_smoke
"""

from __future__ import annotations

import ml_collections

from configs.base import parse_options
from configs.resnet18_cifar10 import cifar10_config


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    opts = parse_options(arg, steps=39_000, lr=0.05, batch_norm=True)
    name = "vgg11_bn" if opts.batch_norm else "vgg11"
    # Without BatchNorm the learning rate is capped at 0.01 (why: docs/results/tuning_notes.md).
    lr = opts.lr if opts.batch_norm else min(opts.lr, 0.01)
    return cifar10_config(dict(name=name, stem="small"), dict(name="vgg_bn_tiny"), opts.smoke,
                          opts.steps, lr, visualize_layers=("stage1", "stage3"))
