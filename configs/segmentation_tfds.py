"""The shared recipe of the segmentation configs on TFDS datasets (`segmentation_pet.py`,
`segmentation_scenes.py`): the family's models at their published sizes (GPU-sized), one
chosen by the `model` option, with joint scale/crop/flip augmentation."""

from __future__ import annotations

from typing import Any

import ml_collections

from configs.base import base_config, shrink_for_smoke

# `model` option -> (published-size model, its tiny stand-in for :smoke, learning rate)
MODELS: dict[str, tuple[dict[str, Any], dict[str, Any], float]] = {
    "unet": ({"name": "unet", "batch_norm": True}, {"name": "unet_tiny"}, 1e-3),
    "fcn8s": ({"name": "fcn8s_vgg16", "batch_norm": True}, {"name": "fcn8s_tiny"}, 1e-3),
    "fcn_resnet50": ({"name": "fcn_resnet50", "aux_head": True},
                     {"name": "fcn_resnet_tiny", "aux_head": True}, 1e-3),
    "deeplabv3": ({"name": "deeplabv3_resnet50", "aux_head": True},
                  {"name": "deeplabv3_tiny", "aux_head": True}, 1e-3),
    "vit": ({"name": "vit_segmenter"}, {"name": "vit_segmenter_tiny"}, 3e-4),
}


def segmentation_tfds_config(opts: ml_collections.ConfigDict, dataset: dict[str, Any],
                             num_classes: int) -> ml_collections.ConfigDict:
    """`opts.model` on the TFDS `dataset` section (its masks have `num_classes` classes)."""
    if opts.model not in MODELS:
        raise ValueError(f"option model='{opts.model}'; use one of {', '.join(MODELS)}")
    model, smoke_model, lr = MODELS[opts.model]
    c = base_config()
    c.task.name = "segmentation"
    c.model = dict(model, num_classes=num_classes)
    c.dataset = ml_collections.ConfigDict(dataset)
    c.dataset.image_size = opts.image_size  # images and masks are resized to this square
    c.dataset.augment = True  # random scale 0.5-2, crop and flip of image and mask together
    c.dataset.normalize_mean = (0.485, 0.456, 0.406)  # ImageNet statistics (torchvision weights)
    c.dataset.normalize_std = (0.229, 0.224, 0.225)
    c.dataset.num_workers = 8  # grain worker processes: decoding and augmentation
    c.init_from = opts.init_from  # a classification run or converted torchvision weights
    c.batch_size = 16
    c.num_train_steps = opts.steps
    c.log_every_steps = 100
    c.eval_every_steps = max(opts.steps // 5, 1)
    c.eval_max_batches = 0  # the whole eval split
    c.checkpoint_every_steps = max(opts.steps // 5, 1)
    c.optimizer.name = "adamw"
    c.optimizer.learning_rate = lr
    c.optimizer.weight_decay = 1e-4
    c.optimizer.schedule = "warmup_cosine"
    c.optimizer.warmup_steps = max(opts.steps // 50, 1)
    if opts.smoke:
        c.model = dict(smoke_model, num_classes=num_classes)
        shrink_for_smoke(c, steps=4)
        c.batch_size = 4
        c.eval_batch_size = 4
        c.eval_max_batches = 1
        c.dataset.num_workers = 0
        c.dataset.image_size = 64
    return c
