"""Joint preprocessing of an image and its segmentation mask: resize, random scale, crop,
flip, normalise, with the mask resampled by nearest neighbour (never a blended class).

`preprocess_pair(example, rng, dataset_config, train)` runs per example in the grain
pipeline (numpy; `rng` is deterministic per stream position). In:
`image` uint8 or float HWC of any size, `mask` int [H, W] (or [H, W, 1]) of class indices
with `IGNORE_LABEL` for pixels that count nowhere. Out: `image` float32 HWC normalised,
`mask` int32 [H, W], both `image_size` square (or the source's size when it is 0). Other
keys pass through (a class `label`; `boxes`/`box_labels`, in [0, 1], stay true under a
resize, so they are kept in eval and dropped only by the training crop and flip).

Eval: one deterministic resize of both sides to image_size (every pixel is kept, the aspect
ratio is not). Training with `augment`: one resize to image_size x a random scale (so no
pixel is resampled twice), a random image_size window of that (where the scaled picture is
smaller, the window reaches past it: padding that is the mean colour in the image, 0 after
normalisation, and IGNORE_LABEL in the mask), then a horizontal flip with `flip_prob`.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from dl_arch.config.errors import ConfigError
from dl_arch.config.fields import Field, Fields
from dl_arch.data.augment import AUGMENT_FIELDS, normalize, resize, to_float
from dl_arch.data.masks import IGNORE_LABEL, resize_nearest

# The dataset fields the segmentation task's preprocessing reads (a source may declare its own
# image_size, which then wins: the size its images already have).
MASK_AUGMENT_FIELDS: Fields = {
    "image_size": Field(0, "side of the square images and masks the task makes (0: keep the "
                           "source's size)", low=0),
    "augment": Field(False, "random scale, crop and horizontal flip of image and mask together "
                            "(train only)"),
    "flip_prob": Field(0.5, "augment: probability of a horizontal flip", low=0.0, high=1.0),
    "min_scale": Field(0.5, "augment: smallest random zoom before the image_size crop", low=0.0,
                       low_open=True),
    "max_scale": Field(2.0, "augment: largest random zoom before the image_size crop", low=0.0,
                       low_open=True),
    "normalize_mean": AUGMENT_FIELDS["normalize_mean"],
    "normalize_std": AUGMENT_FIELDS["normalize_std"],
}
_BOX_KEYS = ("boxes", "box_labels")  # dropped by augmentation: a crop or flip falsifies them


def window(array: np.ndarray, top: int, left: int, height: int, width: int, fill: Any
           ) -> np.ndarray:
    """The height x width window of `array` whose corner is at (top, left), which may lie
    outside it: rows and columns past the array's edges are `fill`."""
    h, w = array.shape[:2]
    out = np.empty((height, width) + array.shape[2:], array.dtype)
    out[...] = fill
    y0, y1 = max(0, -top), min(height, h - top)
    x0, x1 = max(0, -left), min(width, w - left)
    if y0 < y1 and x0 < x1:
        out[y0:y1, x0:x1] = array[y0 + top:y1 + top, x0 + left:x1 + left]
    return out


def random_offset(rng: np.random.Generator, size_in: int, size_out: int) -> int:
    """Where a window of size_out starts in size_in: uniform over the positions that keep the
    window inside (a crop) or, when it is larger, the picture inside it (a pad)."""
    slack = size_in - size_out
    return int(rng.integers(min(0, slack), max(0, slack) + 1))


def mask_options(dataset_config: Any) -> dict[str, Any]:
    """The MASK_AUGMENT_FIELDS of a dataset section (a ConfigDict or a plain dict), each
    checked; the declared default stands in for a field the section lacks."""
    options = {k: f.check(dataset_config[k] if k in dataset_config else f.default, f"dataset.{k}")
               for k, f in MASK_AUGMENT_FIELDS.items()}
    if options["min_scale"] > options["max_scale"]:
        raise ConfigError(f"config.dataset.min_scale={options['min_scale']} exceeds max_scale="
                          f"{options['max_scale']}; make min_scale <= max_scale")
    return options


def _pair(example: dict[str, Any], dataset_config: Any) -> tuple[np.ndarray, np.ndarray]:
    """The example's image (float32 HWC) and mask (int [H, W]), checked to agree in size."""
    if "mask" not in example:
        name = dataset_config["name"] if "name" in dataset_config else "?"
        raise ConfigError(f"config.dataset.name={name!r} gives no 'mask' (keys: "
                          f"{', '.join(sorted(example))}); segmentation needs masks: pick a "
                          f"dataset with masks (for shapes set config.dataset.masks=True)")
    image = to_float(example["image"])
    if image.ndim == 2:
        image = image[..., None]
    mask = np.asarray(example["mask"])
    if mask.ndim == 3 and mask.shape[-1] == 1:
        mask = mask[..., 0]
    if mask.shape != image.shape[:2]:
        raise ConfigError(f"config.dataset: an image is {image.shape[0]}x{image.shape[1]} but its "
                          f"mask is {'x'.join(map(str, mask.shape))}; a mask must have its "
                          f"image's height and width")
    return image, mask


def preprocess_pair(example: dict[str, Any], rng: np.random.Generator, dataset_config: Any,
                    train: bool) -> dict[str, Any]:
    """Image and mask resized (eval) or scaled, cropped and flipped together (train with
    `augment`), then the image normalised; see the module doc."""
    o = mask_options(dataset_config)
    image, mask = _pair(example, dataset_config)
    size = o["image_size"]
    out_h, out_w = (size, size) if size else image.shape[:2]
    mean = np.asarray(o["normalize_mean"], np.float32)
    if train and o["augment"]:
        scale = rng.uniform(o["min_scale"], o["max_scale"])
        scaled_h, scaled_w = max(1, round(out_h * scale)), max(1, round(out_w * scale))
        image = resize(image, scaled_h, scaled_w)
        mask = resize_nearest(mask, scaled_h, scaled_w)
        top = random_offset(rng, scaled_h, out_h)
        left = random_offset(rng, scaled_w, out_w)
        fill = mean if mean.size else 0.0  # the mean colour: 0 once normalised
        image = window(image, top, left, out_h, out_w, fill)
        mask = window(mask, top, left, out_h, out_w, IGNORE_LABEL)
        if rng.uniform() < o["flip_prob"]:
            image, mask = image[:, ::-1], mask[:, ::-1]
    else:
        image = resize(image, out_h, out_w)
        mask = resize_nearest(mask, out_h, out_w)
    image = normalize(image, o["normalize_mean"], o["normalize_std"])
    augmented = train and o["augment"]
    out = {k: v for k, v in example.items() if not (augmented and k in _BOX_KEYS)}
    out["image"] = np.ascontiguousarray(image, np.float32)
    out["mask"] = np.ascontiguousarray(mask, np.int32)
    return out
