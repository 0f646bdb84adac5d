"""Image preprocessing and augmentation, applied in the grain pipeline.

`preprocess(example, rng, dataset_config, train)` defines it for one example; `rng` is a
numpy Generator that is deterministic per (seed, index), so augmentation is reproducible.
`preprocess_batch` gives the same result for a whole stacked batch at once.
Fields read from `config.dataset`:
  augment         tuple of op names applied in order when training: random_crop, flip_lr,
                  random_resized_crop (Inception-style area/aspect crop, to `resize_to`)
  crop_padding    zero padding on each side before a random crop back to the input size
  resize_to       0 = keep the size; else every image leaves square at this side: in eval
                  (and in training without random_resized_crop) by resizing the shorter
                  side to resize_to / crop_fraction and taking the central crop
  crop_fraction   the central crop's share of the shorter side (0.875: 224 of 256)
  normalize_mean  per-channel (or scalar) mean subtracted in train and eval; () = off
  normalize_std   per-channel (or scalar) std divided by in train and eval; () = off
uint8 images (TFDS) become float32 in [0, 1] first; everything stays channels-last (HWC).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from dl_arch.config.errors import ConfigError
from dl_arch.config.fields import Field, Fields, filled

AUGMENT_OPS = ("random_crop", "flip_lr", "random_resized_crop")

# The dataset fields that the default image preprocessing reads (declared by the tasks that
# use it, so they appear in config.dataset of image runs only).
AUGMENT_FIELDS: Fields = {
    "augment": Field((), "training augmentations applied in order",
                     each=Field("flip_lr", "an augmentation", choices=AUGMENT_OPS)),
    "crop_padding": Field(4, "random_crop: pixels of zero padding before the crop", low=0),
    "resize_to": Field(0, "resize images to this square size (0: keep their size)", low=0),
    "crop_fraction": Field(0.875, "eval: central crop fraction before resizing", low=0.0,
                           high=1.0, low_open=True),
    "normalize_mean": Field((), "per-channel (or scalar) mean subtracted (empty: none)"),
    "normalize_std": Field((), "per-channel (or scalar) std divided by (empty: none)",
                           each=Field(1.0, "a std", low=0.0, low_open=True)),
}


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
    top, left = rng.integers(0, 2 * padding + 1, size=2)
    # the window of the padded image, copied straight from the image (np.pad costs 10x)
    (y0, y1), (x0, x1) = _overlap(int(top) - padding, h), _overlap(int(left) - padding, w)
    out = np.zeros_like(image_HWC)
    out[y0:y1, x0:x1] = image_HWC[y0 + top - padding:y1 + top - padding,
                                  x0 + left - padding:x1 + left - padding]
    return out


def _overlap(shift: int, size: int) -> tuple[int, int]:
    """Output rows [lo, hi) that read input row (row + shift) inside [0, size)."""
    lo = min(size, max(0, -shift))
    return lo, max(lo, min(size, size - shift))


def flip_lr(image_HWC: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Mirrors the image left-right with probability 1/2."""
    return image_HWC[:, ::-1] if rng.random() < 0.5 else image_HWC


def resize(image_HWC: np.ndarray, height: int, width: int) -> np.ndarray:
    """Bilinear resize of a float image (PIL, per channel, antialiased when shrinking)."""
    from PIL import Image

    if image_HWC.shape[:2] == (height, width):
        return image_HWC
    channels = [np.asarray(Image.fromarray(np.ascontiguousarray(image_HWC[..., c]), mode="F")
                           .resize((width, height), Image.BILINEAR))
                for c in range(image_HWC.shape[2])]
    return np.stack(channels, axis=-1)


def center_resize(image_HWC: np.ndarray, size: int, crop_fraction: float) -> np.ndarray:
    """Shorter side to size / crop_fraction, then the central size x size crop (eval)."""
    h, w = image_HWC.shape[:2]
    short = int(round(size / crop_fraction))
    nh, nw = (short, max(short, round(w * short / h))) if h <= w else (
        max(short, round(h * short / w)), short)
    image_HWC = resize(image_HWC, nh, nw)
    top, left = (nh - size) // 2, (nw - size) // 2
    return image_HWC[top:top + size, left:left + size]


def random_resized_crop(image_HWC: np.ndarray, rng: np.random.Generator, size: int,
                        scale: tuple[float, float] = (0.08, 1.0),
                        ratio: tuple[float, float] = (3 / 4, 4 / 3)) -> np.ndarray:
    """A random crop of 8-100% of the area and aspect 3/4-4/3, resized to size x size."""
    h, w = image_HWC.shape[:2]
    for _ in range(10):
        area = h * w * rng.uniform(*scale)
        aspect = np.exp(rng.uniform(np.log(ratio[0]), np.log(ratio[1])))
        cw, ch = int(round(np.sqrt(area * aspect))), int(round(np.sqrt(area / aspect)))
        if 0 < cw <= w and 0 < ch <= h:
            top, left = rng.integers(0, h - ch + 1), rng.integers(0, w - cw + 1)
            return resize(image_HWC[top:top + ch, left:left + cw], size, size)
    return center_resize(image_HWC, size, 1.0)  # fallback: the central square


def _augment(name: str, image_HWC: np.ndarray, rng: np.random.Generator, padding: int,
             size: int) -> np.ndarray:
    """Training op `name` (one of AUGMENT_OPS) applied to one image."""
    if name == "random_crop":
        return random_crop(image_HWC, rng, padding)
    if name == "flip_lr":
        return flip_lr(image_HWC, rng)
    return random_resized_crop(image_HWC, rng, size or image_HWC.shape[0])


def normalize(image_HWC: np.ndarray, mean: Any, std: Any) -> np.ndarray:
    """(image - mean) / std with per-channel or scalar statistics; empty means skip."""
    if mean is not None and len(np.atleast_1d(mean)):
        image_HWC = image_HWC - np.asarray(mean, np.float32)
    if std is not None and len(np.atleast_1d(std)):
        std = np.asarray(std, np.float32)
        if np.any(std <= 0):
            raise ConfigError(f"config.dataset.normalize_std={std.tolist()} must be > 0")
        image_HWC = image_HWC / std
    return image_HWC


def _augment_names(dataset_config: Any) -> tuple[str, ...]:
    names = tuple(dataset_config.augment)
    for name in names:
        if name not in AUGMENT_OPS:
            raise ConfigError(f"config.dataset.augment has unknown op '{name}'; known: "
                              f"{', '.join(AUGMENT_OPS)}")
    return names


def preprocess(example: dict[str, Any], rng: np.random.Generator, dataset_config: Any,
               train: bool) -> dict[str, Any]:
    """Converts `example['image']` to float32, augments it (train only) and normalises it."""
    if "image" not in example:
        return example
    dataset_config = filled(dataset_config, AUGMENT_FIELDS)
    image = to_float(example["image"])
    names = _augment_names(dataset_config)
    size = int(dataset_config.resize_to)
    if size and not (train and "random_resized_crop" in names):
        image = center_resize(image, size, float(dataset_config.crop_fraction))
    if train and names:
        padding = int(dataset_config.crop_padding)
        for name in names:
            image = _augment(name, image, rng, padding, size)
    image = normalize(image, dataset_config.normalize_mean, dataset_config.normalize_std)
    out = dict(example)
    out["image"] = np.ascontiguousarray(image, dtype=np.float32)
    return out


def preprocess_batch(batch: dict[str, Any], rng_at: Callable[[int], np.random.Generator],
                     dataset_config: Any, train: bool) -> dict[str, Any] | None:
    """`preprocess` of every example of a stacked batch at once (example j's generator is
    `rng_at(j)`), equal to stacking the per-example results; None where it has no batched
    form (resizing, random_resized_crop): the caller then goes example by example.

    Each example's random numbers are drawn in its own op order, as `preprocess` draws them,
    then every crop is one gather over the zero-padded batch and every flip one `where`.
    """
    if "image" not in batch:
        return batch
    dataset_config = filled(dataset_config, AUGMENT_FIELDS)
    names = _augment_names(dataset_config) if train else ()
    if int(dataset_config.resize_to) or "random_resized_crop" in names:
        return None
    image = to_float(batch["image"])
    padding = int(dataset_config.crop_padding)
    ops = [n for n in names if n != "random_crop" or padding > 0]  # an unpadded crop: no draw
    draws = _batch_draws(ops, padding, rng_at, len(image))
    for name, drawn in zip(ops, draws):
        if name == "random_crop":
            image = _crop_windows(image, drawn, padding)
        else:
            flipped = image.copy()
            flipped[drawn] = image[drawn, :, ::-1]
            image = flipped
    image = normalize(image, dataset_config.normalize_mean, dataset_config.normalize_std)
    return dict(batch, image=np.ascontiguousarray(image, dtype=np.float32))


def _draws(ops: list[str], padding: int, rng: np.random.Generator) -> list[Any]:
    """One example's draws for `ops`, in order: (top, left) of a crop, whether it flips."""
    return [rng.integers(0, 2 * padding + 1, size=2) if name == "random_crop"
            else rng.random() < 0.5 for name in ops]


def _batch_draws(ops: list[str], padding: int, rng_at: Callable[[int], np.random.Generator],
                 count: int) -> list[np.ndarray]:
    """`_draws` of `count` examples, per op: int64 [N, 2] crop corners or bool [N] flips.

    All examples at once where `rng_at` has `lanes` (the loader's `BatchRngs`); an example
    whose bounded integer numpy would redraw (about 1 in 10^9), or a plain `rng_at`, draws
    through `_draws` itself."""
    lanes = getattr(rng_at, "lanes", None)
    draws = lanes(count) if lanes is not None and count and ops else None
    if draws is None:
        per_op = list(zip(*[_draws(ops, padding, rng_at(j)) for j in range(count)]))
        return [np.array(values, np.int64).reshape(count, 2) if name == "random_crop"
                else np.array(values, bool).reshape(count)
                for name, values in zip(ops, per_op or [()] * len(ops))]
    out = [draws.integers(2 * padding + 1, size=2) if name == "random_crop"
           else draws.random()[:, 0] < 0.5 for name in ops]
    for j in np.flatnonzero(~draws.exact).tolist():
        for drawn, value in zip(out, _draws(ops, padding, rng_at(j))):
            drawn[j] = value
    return out


def _crop_windows(image_NHWC: np.ndarray, corners_N2: np.ndarray, padding: int) -> np.ndarray:
    """Image n's window at `corners_N2[n]` (top, left) of its zero-padded copy: `random_crop`
    with those draws, for the whole batch (one gather of whole windows: 4x faster than
    indexing every pixel)."""
    n, h, w = image_NHWC.shape[:3]
    padded = np.zeros((n, h + 2 * padding, w + 2 * padding) + image_NHWC.shape[3:],
                      image_NHWC.dtype)
    padded[:, padding:padding + h, padding:padding + w] = image_NHWC
    windows = np.lib.stride_tricks.sliding_window_view(padded, (h, w), axis=(1, 2))
    return np.moveaxis(windows[np.arange(n), corners_N2[:, 0], corners_N2[:, 1]], (-2, -1),
                       (1, 2))
