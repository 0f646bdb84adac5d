"""Box-aware image augmentation for detection: random scale-crop, horizontal flip, resize.

Works on one example in the grain pipeline (numpy, deterministic per-example rng):
`image` float32 HWC in [0, 1] of any size, `boxes` `[G, 4]` corner (ymin, xmin, ymax, xmax)
normalised to [0, 1], `box_labels` `[G]` with -1 for padding. The output image is
`dataset.image_size` square and boxes stay normalised, padded to `dataset.max_objects`.

The fields of config.dataset it reads are BOX_AUGMENT_FIELDS (declared by the detection
task, so they appear in config.dataset of detection runs; a source may declare its own
image_size / max_objects, which then win).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from dl_arch.config.fields import Field, Fields

BOX_AUGMENT_FIELDS: Fields = {
    "image_size": Field(0, "side of the square images the task resizes to (0: the image's own "
                           "height)", low=0),
    "max_objects": Field(0, "box slots per example, padded with label -1 (0: the example's "
                            "own count)", low=0),
    "augment": Field(False, "random scale-crop and horizontal flip (train only)"),
    "flip_prob": Field(0.5, "augment: probability of a horizontal flip", low=0.0, high=1.0),
    "crop_prob": Field(0.5, "augment: probability of a random scale-crop", low=0.0, high=1.0),
    "min_crop_scale": Field(0.5, "augment: smallest crop side, as a fraction of the image",
                            low=0.0, high=1.0, low_open=True),
    "max_crop_aspect": Field(1.5, "augment: crop aspect ratios jitter within [1/x, x]",
                             low=1.0),
}


def box_options(dataset_config: Any) -> dict[str, Any]:
    """The BOX_AUGMENT_FIELDS of a dataset section, each checked; the declared default stands
    in for a field the section lacks (library callers may pass a partial dict)."""
    return {k: f.check(dataset_config[k] if k in dataset_config else f.default, f"dataset.{k}")
            for k, f in BOX_AUGMENT_FIELDS.items()}


def crop_and_resize(image_HWC: np.ndarray, window: tuple[float, float, float, float],
                    out_hw: tuple[int, int]) -> np.ndarray:
    """Bilinear resample of `window` (normalised ymin, xmin, ymax, xmax) to `out_hw` pixels.

    Half-pixel centres (align_corners=False) with edge clamping, like `jax.image.resize`.
    """
    h, w = image_HWC.shape[:2]
    y0, x0, y1, x1 = window
    oh, ow = out_hw
    ys = (y0 + (y1 - y0) * (np.arange(oh) + 0.5) / oh) * h - 0.5
    xs = (x0 + (x1 - x0) * (np.arange(ow) + 0.5) / ow) * w - 0.5
    ys, xs = np.clip(ys, 0, h - 1), np.clip(xs, 0, w - 1)
    iy, ix = np.floor(ys).astype(int), np.floor(xs).astype(int)
    iy1, ix1 = np.minimum(iy + 1, h - 1), np.minimum(ix + 1, w - 1)
    fy, fx = (ys - iy)[:, None, None], (xs - ix)[None, :, None]
    img = np.asarray(image_HWC, np.float32)
    top = img[iy][:, ix] * (1 - fx) + img[iy][:, ix1] * fx
    bottom = img[iy1][:, ix] * (1 - fx) + img[iy1][:, ix1] * fx
    return (top * (1 - fy) + bottom * fy).astype(np.float32)


def crop_boxes(boxes_G4: np.ndarray, labels_G: np.ndarray,
               window: tuple[float, float, float, float]) -> tuple[np.ndarray, np.ndarray]:
    """Boxes in the coordinates of a crop window; boxes whose centre leaves it are dropped (SSD)."""
    y0, x0, y1, x1 = window
    scale = np.array([y1 - y0, x1 - x0, y1 - y0, x1 - x0])
    shifted = (boxes_G4 - np.array([y0, x0, y0, x0])) / scale
    cy, cx = (shifted[:, 0] + shifted[:, 2]) / 2, (shifted[:, 1] + shifted[:, 3]) / 2
    inside = (cy > 0) & (cy < 1) & (cx > 0) & (cx < 1)
    labels = np.where(inside & (labels_G >= 0), labels_G, -1)
    return np.clip(shifted, 0.0, 1.0).astype(np.float32), labels.astype(np.int32)


def flip_boxes(boxes_G4: np.ndarray) -> np.ndarray:
    """Boxes of the horizontally mirrored image: x -> 1 - x, with xmin and xmax swapped."""
    return np.stack([boxes_G4[:, 0], 1 - boxes_G4[:, 3], boxes_G4[:, 2], 1 - boxes_G4[:, 1]], -1)


def pad_boxes(boxes_G4: np.ndarray, labels_G: np.ndarray, max_objects: int
              ) -> tuple[np.ndarray, np.ndarray]:
    """Real boxes first, zero boxes with label -1 after, exactly `max_objects` rows."""
    keep = np.flatnonzero(labels_G >= 0)[:max_objects]
    boxes = np.zeros((max_objects, 4), np.float32)
    labels = np.full((max_objects,), -1, np.int32)
    boxes[: len(keep)] = boxes_G4[keep]
    labels[: len(keep)] = labels_G[keep]
    return boxes, labels


def random_window(rng: np.random.Generator, min_scale: float, max_aspect: float
                  ) -> tuple[float, float, float, float]:
    """A crop window inside the unit square: side scale in [min_scale, 1], jittered aspect."""
    scale = rng.uniform(min_scale, 1.0)
    aspect = np.exp(rng.uniform(-np.log(max_aspect), np.log(max_aspect)))
    h = min(1.0, scale * np.sqrt(aspect))
    w = min(1.0, scale / np.sqrt(aspect))
    y0, x0 = rng.uniform(0, 1 - h), rng.uniform(0, 1 - w)
    return (y0, x0, y0 + h, x0 + w)


def augment_boxes(example: dict[str, Any], rng: np.random.Generator, dataset_config: Any,
                  train: bool) -> dict[str, Any]:
    """Scale-crop and flip (train, if `augment`), then resize and pad; see the module doc."""
    o = box_options(dataset_config)
    image = np.asarray(example["image"], np.float32)
    boxes = np.asarray(example["boxes"], np.float32).reshape(-1, 4)
    labels = np.asarray(example["box_labels"], np.int32).reshape(-1)
    size = o["image_size"] or image.shape[0]
    max_objects = o["max_objects"] or len(labels)
    window = (0.0, 0.0, 1.0, 1.0)
    if train and o["augment"]:
        if rng.uniform() < o["crop_prob"]:
            for _ in range(10):  # retry crops that would lose every object
                cand = random_window(rng, o["min_crop_scale"], o["max_crop_aspect"])
                new_boxes, new_labels = crop_boxes(boxes, labels, cand)
                if (new_labels >= 0).any() or not (labels >= 0).any():
                    window, boxes, labels = cand, new_boxes, new_labels
                    break
        if rng.uniform() < o["flip_prob"]:
            image = image[:, ::-1]
            window = (window[0], 1 - window[3], window[2], 1 - window[1])
            boxes = flip_boxes(boxes)
    if window != (0.0, 0.0, 1.0, 1.0) or image.shape[:2] != (size, size):
        image = crop_and_resize(image, window, (size, size))
    boxes, labels = pad_boxes(boxes, labels, max_objects)
    out = dict(example, image=np.ascontiguousarray(image), boxes=boxes, box_labels=labels)
    return out
