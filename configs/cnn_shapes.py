"""The shared recipe of every CNN `configs/<model>_shapes.py` config (offline `shapes`, or
the user's images with `:data=PATH`: see `configs.base.own_images`)."""

from __future__ import annotations

from typing import Any

import ml_collections

from configs.base import base_config, own_images, shrink_for_smoke
from dl_arch.data.image_files import data_classes


def cnn_shapes_config(opts: ml_collections.ConfigDict, model: dict[str, Any],
                      smoke_model: dict[str, Any], visualize_layers: tuple[str, ...],
                      channels: int = 3) -> ml_collections.ConfigDict:
    """A CNN trained on `shapes` (image_size x image_size, `num_classes` shape kinds), or on
    the user's images at `opts.data` (then `num_classes` is the data's)."""
    classes = data_classes(opts.data)  # the model's outputs follow the user's classes
    num_classes = len(classes) if classes else opts.num_classes
    c = base_config()
    c.task = dict(name="image_classification", top_k=2)  # top-2 with few classes
    c.model = dict(model, num_classes=num_classes)
    c.dataset.name = "shapes"
    c.dataset.image_size = opts.image_size  # square images
    c.dataset.num_classes = opts.num_classes  # first k of circle, square, triangle, star, ...
    c.dataset.channels = channels  # 3 = RGB, 1 = grayscale
    c.dataset.num_objects = 1  # one shape per image: its kind is the label
    c.dataset.num_train_examples = None  # endless: every batch is fresh
    c.dataset.num_eval_examples = 512
    c.dataset.augment = ("random_crop", "flip_lr")  # train only
    c.dataset.crop_padding = 2  # pixels of zero padding before the random crop
    c.dataset.normalize_mean = (0.5,) * channels  # applied in train and eval
    c.dataset.normalize_std = (0.25,) * channels
    c.batch_size = 64
    c.num_train_steps = opts.steps
    c.log_every_steps = 50
    c.eval_every_steps = max(opts.steps // 2, 1)
    c.checkpoint_every_steps = opts.steps
    c.optimizer.name = "adamw"
    c.optimizer.learning_rate = opts.lr
    c.optimizer.weight_decay = 1e-4
    c.optimizer.schedule = "warmup_cosine"
    c.optimizer.warmup_steps = max(opts.steps // 20, 1)
    if visualize_layers:  # filters and these layers' feature maps at the end (regexes)
        c.evaluators = ("confusion_matrix", "feature_maps")
        c.feature_maps = ml_collections.ConfigDict({"layers": visualize_layers, "num_images": 4})
    if opts.smoke:
        c.model = dict(smoke_model, num_classes=num_classes)
        shrink_for_smoke(c, steps=6)
        c.batch_size = 8
        c.eval_batch_size = 8
        c.dataset.num_eval_examples = 16
    if opts.data:
        own_images(c, opts.data, classes, opts.image_size, channels, num_classes=num_classes)
    return c
