"""GoogLeNet (paper layout: 5x5 branches, no BatchNorm; CIFAR stem) on TFDS cifar10.

    python launch.py --config=configs/googlenet_cifar10.py --workdir=runs/googlenet_cifar10
    python launch.py --config=configs/googlenet_cifar10.py:layout=torchvision --workdir=...
    python launch.py --config=configs/googlenet_cifar10.py:smoke --workdir=/tmp/goog_smoke

`aux_logits=True` adds the two auxiliary classifiers (0.3 x their loss in training).
"""

from __future__ import annotations

import ml_collections

from configs.base import parse_options
from configs.resnet18_cifar10 import cifar10_config


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    opts = parse_options(arg, steps=39_000, lr=0.05, layout="paper", aux_logits=False)
    # No BatchNorm in the paper layout: a lower learning rate keeps early steps stable.
    lr = opts.lr if opts.layout == "torchvision" else min(opts.lr, 0.02)
    c = cifar10_config(
        dict(name="googlenet", stem="small", layout=opts.layout, aux_logits=opts.aux_logits),
        dict(name="googlenet_tiny", layout=opts.layout, aux_logits=opts.aux_logits),
        opts.smoke, opts.steps, lr, visualize_layers=("stem", "inception4e_output"))
    c.task.aux_loss_weight = 0.3  # weight of each auxiliary head's loss (paper: 0.3)
    c.optimizer.clip_norm = 5.0  # guards the no-BatchNorm layout against early spikes
    return c
