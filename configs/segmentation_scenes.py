"""Scene parsing on TFDS: `scene_parse150` (ADE20K scenes, 100 object categories as TFDS
builds them) or `cityscapes` (19 street classes; its files are downloaded by hand).

The family's models at their published sizes (a GPU job): `model` = deeplabv3 (default) |
fcn_resnet50 | fcn8s | unet | vit (configs/segmentation_tfds.py), 512x512 crops. See
dl_arch/data/sources/segmentation_tfds.py for the label mappings.

    python launch.py --config=configs/segmentation_scenes.py --workdir=runs/dl_ade
    python launch.py --config=configs/segmentation_scenes.py:dataset=cityscapes --workdir=runs/dl_city
    python launch.py --config=configs/segmentation_scenes.py:smoke --workdir=/tmp/scenes_smoke
"""

from __future__ import annotations

import ml_collections

from configs.base import parse_options
from configs.segmentation_tfds import segmentation_tfds_config
from dl_arch.data.sources.segmentation_tfds import CITYSCAPES_CLASSES, ade_classes


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    opts = parse_options(arg, model="deeplabv3", dataset="scene_parse150", image_size=512,
                         steps=80000, init_from="")
    if opts.dataset == "scene_parse150":
        classes = ade_classes("ignore")
        dataset = dict(name="scene_parse150", other="ignore", eval_split="test")
    elif opts.dataset == "cityscapes":
        classes = CITYSCAPES_CLASSES
        dataset = dict(name="cityscapes")
    else:
        raise ValueError(f"option dataset='{opts.dataset}'; use scene_parse150 or cityscapes")
    return segmentation_tfds_config(opts, dict(dataset, class_names=classes), len(classes))
