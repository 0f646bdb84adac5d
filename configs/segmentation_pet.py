"""Oxford-IIIT Pet trimaps (TFDS `oxford_iiit_pet`): background, pet and border pixels.

The family's models at their published sizes (a GPU job): `model` = unet | fcn8s |
fcn_resnet50 | deeplabv3 | vit (configs/segmentation_tfds.py); `border=ignore` scores two
classes, leaving the annotators' uncertain border band out. Needs the dataset prepared once
(`pip install 'dl_arch[tfds]'`, with network); `init_from` starts the encoder from a
classification run or converted torchvision weights (dl_arch/interop/torchvision.py).

    python launch.py --config=configs/segmentation_pet.py --workdir=runs/unet_pet
    python launch.py --config=configs/segmentation_pet.py:model=deeplabv3 --workdir=runs/dl_pet
    python launch.py --config=configs/segmentation_pet.py:smoke --workdir=/tmp/pet_smoke
"""

from __future__ import annotations

import ml_collections

from configs.base import parse_options
from configs.segmentation_tfds import segmentation_tfds_config
from dl_arch.data.sources.segmentation_tfds import pet_classes


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    opts = parse_options(arg, model="unet", image_size=224, steps=20000, border="class",
                         init_from="")
    classes = pet_classes(opts.border)
    return segmentation_tfds_config(
        opts, dict(name="oxford_iiit_pet", border=opts.border, class_names=classes,
                   train_split="train", eval_split="test"),
        len(classes))
