"""Per-example image preprocessing and augmentation, applied in the grain pipeline.

`preprocess(example, rng, dataset_config, train)` is called for every example; `rng` is a
numpy Generator that is deterministic per (seed, index), so augmentation is reproducible.
Fields read from `config.dataset`:
  augment         tuple of op names applied in order when training: random_crop, flip_lr
  crop_padding    zero padding on each side before a random crop back to the input size
  normalize_mean  per-channel (or scalar) mean subtracted in train and eval; () = off
  normalize_std   per-channel (or scalar) std divided by in train and eval; () = off
uint8 images (TFDS) become float32 in [0, 1] first; everything stays channels-last (HWC).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np


def to_float(image: np.ndarray) -> np.ndarray:
    """uint8 [0, 255] -> float32 [0, 1]; float images are only cast to float32."""
    image = np.asarray(image)
    if image.dtype == np.uint8:
        return image.astype(np.float32) / np.float32(255.0)
    return image.astype(np.float32, copy=False)


def random_crop(image_HWC: np.ndarray, rng: np.random.Generator, padding: int) -> np.ndarray:
    """Zero-pads `padding` pixels on each side, then crops a random HxW window."""
    if padding <= 0:
        return image_HWC
    h, w = image_HWC.shape[:2]
    pad = [(padding, padding), (padding, padding)] + [(0, 0)] * (image_HWC.ndim - 2)
    padded = np.pad(image_HWC, pad)
    top, left = rng.integers(0, 2 * padding + 1, size=2)
    return padded[top:top + h, left:left + w]


def flip_lr(image_HWC: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Mirrors the image left-right with probability 1/2."""
    return image_HWC[:, ::-1] if rng.random() < 0.5 else image_HWC


def _ops(dataset_config: Any) -> dict[str, Callable[[np.ndarray, np.random.Generator], Any]]:
    padding = int(dataset_config.get("crop_padding", 4))
    return {
        "random_crop": lambda im, rng: random_crop(im, rng, padding),
        "flip_lr": flip_lr,
    }


def normalize(image_HWC: np.ndarray, mean: Any, std: Any) -> np.ndarray:
    """(image - mean) / std with per-channel or scalar statistics; empty means skip."""
    if mean is not None and len(np.atleast_1d(mean)):
        image_HWC = image_HWC - np.asarray(mean, np.float32)
    if std is not None and len(np.atleast_1d(std)):
        std = np.asarray(std, np.float32)
        if np.any(std <= 0):
            raise ValueError(f"config.dataset.normalize_std={std.tolist()} must be > 0")
        image_HWC = image_HWC / std
    return image_HWC


def preprocess(example: dict[str, Any], rng: np.random.Generator, dataset_config: Any,
               train: bool) -> dict[str, Any]:
    """Converts `example['image']` to float32, augments it (train only) and normalises it."""
    if "image" not in example:
        return example
    image = to_float(example["image"])
    ops = _ops(dataset_config)
    names = tuple(dataset_config.get("augment", ()) or ())
    for name in names:
        if name not in ops:
            raise ValueError(
                f"config.dataset.augment has unknown op '{name}'; known: {', '.join(ops)}"
            )
    if train:
        for name in names:
            image = ops[name](image, rng)
    image = normalize(image, dataset_config.get("normalize_mean", ()),
                      dataset_config.get("normalize_std", ()))
    out = dict(example)
    out["image"] = np.ascontiguousarray(image, dtype=np.float32)
    return out
