"""The shared recipe of every segmentation `configs/<model>_shapes.py` config: offline
`shapes` scenes with per-pixel class masks, or the user's images and masks with
`:data=PATH` (a folder of images with a folder `masks` beside it: see
dl_arch/data/sources/mask_folder.py)."""

from __future__ import annotations

from typing import Any

import ml_collections

from configs.base import base_config, own_data, shrink_for_smoke
from dl_arch.data.sources.mask_folder import count_mask_classes
from dl_arch.data.sources.shapes import mask_class_names


def segmentation_shapes_config(opts: ml_collections.ConfigDict, model: dict[str, Any],
                               smoke_model: dict[str, Any]) -> ml_collections.ConfigDict:
    """`model` segments `shapes` scenes (image_size x image_size, `num_objects` shapes of
    `num_classes` kinds; mask classes: background + one per kind), or the user's data."""
    classes = count_mask_classes(opts.data) if opts.data else opts.num_classes + 1
    c = base_config()
    c.task.name = "segmentation"
    c.model = dict(model, num_classes=classes)
    c.dataset.name = "shapes"
    c.dataset.masks = True  # per-pixel classes: 0 background, shape kind k -> k + 1
    c.dataset.image_size = opts.image_size  # square RGB images
    c.dataset.num_classes = opts.num_classes  # first k of circle, square, triangle, star, ...
    c.dataset.class_names = mask_class_names(opts.num_classes)
    c.dataset.num_objects = opts.num_objects  # shapes per image (the last drawn wins overlaps)
    c.dataset.max_objects = opts.num_objects  # their boxes (iou_by_size reads them)
    c.dataset.min_size = 0.15  # object diameters from 15% to 50% of the image side
    c.dataset.max_size = 0.5
    c.dataset.num_train_examples = None  # endless: every batch is fresh, so no augmentation
    c.dataset.num_eval_examples = 512
    c.dataset.normalize_mean = (0.5, 0.5, 0.5)
    c.dataset.normalize_std = (0.25, 0.25, 0.25)
    # input | truth | prediction pictures at each eval; IoU of small, medium and large objects
    c.evaluators = ("segmentation_masks", "iou_by_size")
    c.batch_size = 32
    c.num_train_steps = opts.steps
    c.log_every_steps = 50
    c.eval_every_steps = max(opts.steps // 4, 1)
    c.checkpoint_every_steps = max(opts.steps // 4, 1)
    c.optimizer.name = "adamw"
    c.optimizer.learning_rate = opts.lr
    c.optimizer.weight_decay = 1e-4
    c.optimizer.schedule = "warmup_cosine"
    c.optimizer.warmup_steps = max(opts.steps // 20, 1)
    if opts.smoke:
        c.model = dict(smoke_model, num_classes=classes)
        shrink_for_smoke(c, steps=6)
        c.batch_size = 8
        c.eval_batch_size = 8
        c.dataset.image_size = 32
        c.dataset.num_eval_examples = 16
    if opts.data:
        c.evaluators = ("segmentation_masks",)  # object sizes need shapes' boxes
        own_data(c, opts.data, {"folder": "mask_folder"}, num_classes=classes,
                 image_size=c.dataset.image_size, class_names=None)
        c.dataset.augment = True  # random scale, crop and flip of image and mask together
    return c
