"""Segmentation masks: the ignore label, nearest-neighbour resizing, PNG reading and writing,
and the value check every mask source shares.

A mask is int32 [H, W] of class indices; `IGNORE_LABEL` (255, the VOC convention) marks
pixels that count for no class (object borders, padding added by augmentation). PNG masks
hold indices directly: mode L (grey levels) or P (palette images, as VOC ships them: the
palette only colours the indices), or 16-bit grey for more than 255 classes.
"""

from __future__ import annotations

import numpy as np

from dl_arch.config.errors import ConfigError

IGNORE_LABEL = 255
_INDEX_MODES = ("L", "P", "1", "I", "I;16", "I;16B", "I;16L")  # PIL modes that hold indices


def nearest_indices(size_in: int, size_out: int) -> np.ndarray:
    """For each of `size_out` output pixels, the input pixel whose centre is nearest to its
    centre (half-pixel centres, as bilinear resizing places them): floor((i + 1/2) * in / out),
    in exact integer arithmetic, so ties always fall the same way."""
    i = np.arange(size_out, dtype=np.int64)
    return np.minimum((2 * i + 1) * size_in // (2 * size_out), size_in - 1)


def resize_nearest(mask_HW: np.ndarray, height: int, width: int) -> np.ndarray:
    """`mask_HW` resampled to height x width by nearest neighbour: every output value is a
    value of the input (no blending of class indices); the dtype is kept."""
    h, w = mask_HW.shape[:2]
    if (h, w) == (height, width):
        return mask_HW
    return mask_HW[nearest_indices(h, height)[:, None], nearest_indices(w, width)[None, :]]


def check_mask_values(mask_HW: np.ndarray, num_classes: int, where: str) -> None:
    """One line, starting with `where`, when the mask holds a value that is neither a class
    (0..num_classes-1) nor IGNORE_LABEL, naming the value and the fix."""
    mask_HW = np.asarray(mask_HW)
    bad = ((mask_HW < 0) | (mask_HW >= num_classes)) & (mask_HW != IGNORE_LABEL)
    if bad.any():
        value = int(mask_HW[bad].max())
        raise ConfigError(
            f"{where} holds mask value {value}, but config.dataset.num_classes={num_classes} "
            f"allows 0..{num_classes - 1} ({IGNORE_LABEL} = ignore); raise "
            f"config.dataset.num_classes and config.model.num_classes to at least {value + 1}, "
            f"or fix the mask")


def read_mask(file: str, where: str) -> np.ndarray:
    """The class indices of a mask image as int32 [H, W]; a picture that does not hold indices
    (RGB, alpha) or cannot be read is a one-line error starting with `where`."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(file) as image:
            mode = image.mode
            if mode in _INDEX_MODES:
                values = np.asarray(image)
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as e:
        raise ConfigError(f"{where} ({file}) is not a readable image: {e}; fix or remove the "
                          f"file") from None
    if mode not in _INDEX_MODES:
        raise ConfigError(f"{where} ({file}) is a {mode} picture; a mask holds one class index "
                          f"per pixel: save it as a single-channel PNG (mode L, or P with a "
                          f"palette)")
    return values.astype(np.int32)


def palette(n: int = 256) -> np.ndarray:
    """uint8 [n, 3]: the VOC colour map (index bits spread over the high bits of R, G and B),
    so neighbouring classes get distinct colours; index 255 gets VOC's pale ignore colour."""
    index = np.arange(n)
    colours = np.zeros((n, 3), np.int64)
    for bit in range(8):
        for channel in range(3):
            colours[:, channel] |= ((index >> (3 * bit + channel)) & 1) << (7 - bit)
    if n > IGNORE_LABEL:
        colours[IGNORE_LABEL] = (224, 224, 192)
    return colours.astype(np.uint8)


def write_mask(file: str, mask_HW: np.ndarray) -> None:
    """Writes class indices as a PNG that reads back unchanged: a palette (P) image coloured
    with `palette()` for values 0..255, a 16-bit grey image for larger ones."""
    from PIL import Image

    mask_HW = np.asarray(mask_HW)
    if mask_HW.ndim != 2 or (mask_HW.size and mask_HW.min() < 0):
        raise ValueError(f"a mask is [H, W] of non-negative indices, got shape {mask_HW.shape}")
    if mask_HW.size == 0 or mask_HW.max() <= 255:
        image = Image.fromarray(np.ascontiguousarray(mask_HW, np.uint8))
        image.putpalette(palette().reshape(-1).tolist())  # mode L -> P, same indices
    else:
        image = Image.fromarray(np.ascontiguousarray(mask_HW, np.uint16))  # mode I;16
    image.save(file, format="PNG")
