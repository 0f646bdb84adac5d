"""A ViT segmenter (the linear-decoder Segmenter / SETR-naive design) on offline `shapes`.

The project's ViT encoder on 8x8 patches of 64x64 images (64 tokens, the 8x8 grid of
DeepLabV3's output stride 8; hidden 64, 4 layers, 4 heads), a linear map of every patch
token to class scores, bilinear upsampling to pixels: the Transformer against the CNN
segmenters on the same data. `patch=4` gives a 16x16 grid at about 4x the cost.

    python launch.py --config=configs/vit_segmenter_shapes.py --workdir=runs/vitseg_shapes
    python launch.py --config=configs/vit_segmenter_shapes.py:smoke --workdir=/tmp/vitseg_smoke

`data=PATH`: your images and masks (configs/unet_shapes.py says how).
"""

from __future__ import annotations

import ml_collections

from configs.base import parse_options
from configs.segmentation_shapes import segmentation_shapes_config


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    opts = parse_options(arg, image_size=64, num_classes=4, num_objects=3, steps=1000, lr=1e-3,
                         patch=8, data="")
    return segmentation_shapes_config(
        opts,
        model=dict(name="vit_segmenter", patch_size=opts.patch, hidden=64, num_layers=4, num_heads=4,
                   mlp_dim=128),
        smoke_model=dict(name="vit_segmenter_tiny"))
