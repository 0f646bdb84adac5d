"""ResNet-18 with the CIFAR stem on TFDS cifar10 (prepare it once: pip install 'dl_arch[tfds]').

    python launch.py --config=configs/resnet18_cifar10.py --workdir=runs/resnet18_cifar10
    python launch.py --config=configs/resnet18_cifar10.py:smoke --workdir=/tmp/r18_c10_smoke

Recipe: SGD with Nesterov momentum, lr 0.1 (batch 128), weight decay 5e-4, cosine decay
over ~100 epochs, random crop (pad 4) + horizontal flip.
"""

from __future__ import annotations

import ml_collections

from configs.base import base_config, parse_options, shrink_for_smoke

CIFAR10_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR10_STD = (0.2470, 0.2435, 0.2616)
CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse",
                   "ship", "truck")


def cifar10_config(model: dict, smoke_model: dict, smoke: bool, steps: int = 39_000,
                   lr: float = 0.1, weight_decay: float = 5e-4,
                   visualize_layers: tuple[str, ...] = ()) -> ml_collections.ConfigDict:
    """The shared CIFAR-10 recipe of the CNN configs (model fields differ)."""
    c = base_config()
    c.task = dict(name="image_classification", top_k=5)
    c.model = dict(model, num_classes=10)
    c.dataset.name = "tfds:cifar10"
    c.dataset.train_split = "train"
    c.dataset.eval_split = "test"
    c.dataset.class_names = CIFAR10_CLASSES
    c.dataset.augment = ("random_crop", "flip_lr")  # train only
    c.dataset.crop_padding = 4
    c.dataset.normalize_mean = CIFAR10_MEAN  # train and eval
    c.dataset.normalize_std = CIFAR10_STD
    c.batch_size = 128
    c.num_train_steps = steps  # 39k steps = 100 epochs at batch 128
    c.log_every_steps = 100
    c.eval_every_steps = 2000
    c.checkpoint_every_steps = 2000
    c.optimizer.name = "nesterov"
    c.optimizer.learning_rate = lr
    c.optimizer.momentum = 0.9
    c.optimizer.weight_decay = weight_decay  # decoupled, on kernels only
    c.optimizer.schedule = "warmup_cosine"
    c.optimizer.warmup_steps = 400
    if visualize_layers:  # filters and these layers' feature maps at the end (regexes)
        c.evaluators = ("confusion_matrix", "feature_maps")
        c.feature_maps = ml_collections.ConfigDict({"layers": visualize_layers, "num_images": 4})
    if smoke:
        c.model = dict(smoke_model, num_classes=10)
        shrink_for_smoke(c, steps=6)
        c.batch_size = 8
        c.eval_batch_size = 8
    return c


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    opts = parse_options(arg, steps=39_000, lr=0.1)
    return cifar10_config(dict(name="resnet18", stem="small"), dict(name="resnet_tiny"),
                          opts.smoke, opts.steps, opts.lr,
                          visualize_layers=("layer1", "layer2"))
