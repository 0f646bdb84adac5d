"""AlexNet (torchvision's single-GPU layout) on TFDS imagenet2012 (manual download, prepare once).

    python launch.py --config=configs/alexnet_imagenet.py --workdir=runs/alexnet_imagenet
    python launch.py --config=configs/alexnet_imagenet.py:smoke --workdir=/tmp/alexnet_smoke

Recipe (Krizhevsky et al. 2012): SGD momentum 0.9, batch 128, lr 0.01, weight decay 5e-4,
90 epochs (cosine here instead of the paper's manual /10 steps), dropout 0.5.
"""

from __future__ import annotations

import ml_collections

from configs.base import parse_options
from configs.resnet50_imagenet import imagenet_config


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    opts = parse_options(arg, batch_size=128, epochs=90, lr=0.01)
    return imagenet_config(
        dict(name="alexnet", stem="imagenet"), dict(name="alexnet_tiny"), opts.smoke,
        opts.batch_size, opts.epochs, lr=opts.lr, weight_decay=5e-4, warmup_epochs=1,
        visualize_layers=("stage1", "stage2"))
