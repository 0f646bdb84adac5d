"""ResNet-50 v1.5 on TFDS imagenet2012 (download it manually, then prepare once with TFDS).

    python launch.py --config=configs/resnet50_imagenet.py --workdir=runs/resnet50_imagenet
    python launch.py --config=configs/resnet50_imagenet.py:smoke --workdir=/tmp/r50_smoke

Recipe (Goyal et al. 2017): SGD momentum 0.9, lr 0.1 x batch/256 with 5 warm-up epochs and
cosine decay, weight decay 1e-4, label smoothing 0.1, 90 epochs; Inception crops in
training, 224 centre crop of the 256-resized image in evaluation. Fine-tune from
torchvision weights: convert them with `python -m dl_arch.interop.torchvision` and pass
`--config.init_from=<the converted directory>`.
"""

from __future__ import annotations

import ml_collections

from configs.base import base_config, parse_options, shrink_for_smoke

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def imagenet_config(model: dict, smoke_model: dict, smoke: bool, batch_size: int, epochs: int,
                    lr: float, weight_decay: float, optimizer: str = "momentum",
                    label_smoothing: float = 0.0, warmup_epochs: int = 5,
                    visualize_layers: tuple[str, ...] = ()) -> ml_collections.ConfigDict:
    """The shared ImageNet recipe of the CNN configs (model and schedule differ)."""
    steps_per_epoch = 1_281_167 // batch_size
    c = base_config()
    c.task = dict(name="image_classification", top_k=5, label_smoothing=label_smoothing)
    c.model = dict(model, num_classes=1000)
    c.dataset.name = "tfds:imagenet2012"
    c.dataset.train_split = "train"
    c.dataset.eval_split = "validation"
    c.dataset.num_workers = 8  # JPEG decoding and resizing are the input bottleneck
    c.dataset.resize_to = 224  # every image leaves the pipeline at 224x224
    c.dataset.crop_fraction = 0.875  # eval: 224 centre crop of the 256-resized image
    c.dataset.augment = ("random_resized_crop", "flip_lr")  # train only
    c.dataset.normalize_mean = IMAGENET_MEAN
    c.dataset.normalize_std = IMAGENET_STD
    c.batch_size = batch_size
    c.num_train_steps = epochs * steps_per_epoch
    c.log_every_steps = 100
    c.eval_every_steps = 5 * steps_per_epoch
    c.checkpoint_every_steps = steps_per_epoch
    c.optimizer.name = optimizer
    c.optimizer.learning_rate = lr
    c.optimizer.momentum = 0.9
    c.optimizer.weight_decay = weight_decay
    c.optimizer.schedule = "warmup_cosine"
    c.optimizer.warmup_steps = warmup_epochs * steps_per_epoch
    if visualize_layers:  # filters and these layers' feature maps at the end (regexes)
        c.evaluators = ("confusion_matrix", "feature_maps")
        c.feature_maps = ml_collections.ConfigDict({"layers": visualize_layers, "num_images": 4})
    if smoke:  # tiny model on 32x32 crops, so mock data runs in seconds on a CPU
        c.model = dict(smoke_model, num_classes=1000)
        c.dataset.resize_to = 32
        c.dataset.num_workers = 0
        shrink_for_smoke(c, steps=4)
        c.batch_size = 8
        c.eval_batch_size = 8
    return c


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    opts = parse_options(arg, batch_size=256, epochs=90)
    return imagenet_config(
        dict(name="resnet50", stem="imagenet"), dict(name="resnet_bottleneck_tiny"), opts.smoke,
        opts.batch_size, opts.epochs, lr=0.1 * opts.batch_size / 256, weight_decay=1e-4,
        label_smoothing=0.1, visualize_layers=("layer1", "layer2"))
