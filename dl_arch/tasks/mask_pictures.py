"""Pictures of class maps: a fixed colour per class, overlays, and input | truth | prediction
grids with a legend (the `segmentation_masks` evaluator and `--sample` of `segmentation`).

Class 0 (background) is near-black, classes 1.. take well-separated saturated colours (the
same colour for the same class in every picture and run), and every value outside the
classes, such as IGNORE_LABEL, is drawn in a light neutral grey no class ever gets.
"""

from __future__ import annotations

import colorsys
from collections.abc import Sequence

import numpy as np

from dl_arch.tasks.image_grids import make_grid

BACKGROUND_COLOUR = (24, 24, 24)
IGNORE_COLOUR = (200, 200, 200)
# classes 1..12; further classes get hues spaced by the golden ratio (saturated, never grey)
_CLASS_COLOURS = ((230, 25, 75), (60, 180, 75), (0, 130, 200), (255, 225, 25), (245, 130, 48),
                  (145, 30, 180), (70, 240, 240), (240, 50, 230), (210, 245, 60), (0, 128, 128),
                  (170, 110, 40), (128, 0, 0))
PANELS = "input | ground truth | prediction"


def class_palette(num_classes: int) -> np.ndarray:
    """uint8 [num_classes, 3]: the colour of each class (module doc)."""
    colours = [BACKGROUND_COLOUR, *_CLASS_COLOURS][:num_classes]
    for k in range(len(colours), num_classes):
        hue = (k * 0.618033988749895) % 1.0
        value = 0.95 if (k // 8) % 2 == 0 else 0.7
        colours.append(tuple(round(255 * c) for c in colorsys.hsv_to_rgb(hue, 0.8, value)))
    return np.asarray(colours, np.uint8).reshape(num_classes, 3)


def colourise(mask_HW: np.ndarray, palette: np.ndarray) -> np.ndarray:
    """uint8 [H, W, 3] of a class map; values outside [0, len(palette)) in IGNORE_COLOUR."""
    mask = np.asarray(mask_HW).astype(np.int64)
    inside = (mask >= 0) & (mask < len(palette))
    out = np.empty(mask.shape + (3,), np.uint8)
    out[...] = IGNORE_COLOUR
    out[inside] = palette[mask[inside]]
    return out


def displayable(image_HWC: np.ndarray) -> np.ndarray:
    """float32 RGB [H, W, 3] in [0, 1] of an image; one outside [0, 1] is stretched to it."""
    image = np.asarray(image_HWC, np.float32)
    if image.ndim == 2:
        image = image[..., None]
    if image.shape[-1] == 1:
        image = np.repeat(image, 3, axis=-1)
    image = image[..., :3]
    lo, hi = float(image.min(initial=0.0)), float(image.max(initial=0.0))
    if lo < -1e-3 or hi > 1.0 + 1e-3:
        image = (image - lo) / max(hi - lo, 1e-6)
    return np.clip(image, 0.0, 1.0)


def overlay(image_HWC: np.ndarray, mask_HW: np.ndarray, palette: np.ndarray,
            alpha: float) -> np.ndarray:
    """uint8 [H, W, 3]: the class colours blended over the image with opacity `alpha`."""
    colours = colourise(mask_HW, palette).astype(np.float32) / 255.0
    mixed = (1.0 - alpha) * displayable(image_HWC) + alpha * colours
    return (np.clip(mixed, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)


def legend_image(entries: Sequence[tuple[str, Sequence[int]]], width: int,
                 title: str = "") -> np.ndarray:
    """uint8 RGB strip `width` pixels wide: a colour swatch and its name per (name, RGB) entry."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.patches import Patch

    labels = [name for name, _ in entries] or ["(no pixels)"]
    colours = [tuple(c / 255.0 for c in colour) for _, colour in entries] or [(1.0, 1.0, 1.0)]
    ncol = max(1, min(len(labels), width // 110))
    rows = -(-len(labels) // ncol)
    dpi, top = 100, 18 if title else 2
    height = 16 * rows + top + 6
    fig = Figure(figsize=(width / dpi, height / dpi), dpi=dpi)
    canvas = FigureCanvasAgg(fig)
    if title:
        fig.text(0.5, 1 - 3 / height, title, fontsize=8, ha="center", va="top")
    handles = [Patch(facecolor=c, edgecolor="black", linewidth=0.5) for c in colours]
    fig.legend(handles, labels, loc="upper center", bbox_to_anchor=(0.5, 1 - top / height),
               ncol=ncol, frameon=False, fontsize=8, handlelength=1.2, columnspacing=1.0,
               borderaxespad=0.0, borderpad=0.0, labelspacing=0.3)
    canvas.draw()
    return np.asarray(canvas.buffer_rgba())[..., :3].copy()


def mask_comparison(images_NHWC: np.ndarray, truths_NHW: np.ndarray, preds_NHW: np.ndarray,
                    names: Sequence[str], per_row: int = 2) -> np.ndarray:
    """uint8 RGB: each example as input | ground truth | prediction (`per_row` examples side
    by side), over a legend of the classes drawn (so 150 classes do not make a poster); the
    grid's mask pixels are exact palette colours."""
    palette = class_palette(len(names))
    drawn = np.unique(np.concatenate([np.ravel(truths_NHW), np.ravel(preds_NHW)]))
    entries = [(names[k], palette[k]) for k in drawn if 0 <= k < len(names)]
    if np.any((drawn < 0) | (drawn >= len(names))):
        entries.append(("ignore", IGNORE_COLOUR))
    panels = []
    for image, truth, pred in zip(images_NHWC, truths_NHW, preds_NHW, strict=True):
        panels += [displayable(image), colourise(truth, palette) / 255.0,
                   colourise(pred, palette) / 255.0]
    grid = make_grid(np.stack(panels), ncols=3 * max(1, min(per_row, len(images_NHWC))))
    legend = legend_image(entries, max(grid.shape[1], 360), f"each example: {PANELS}")
    width = max(grid.shape[1], legend.shape[1])
    parts = [np.pad(p, ((0, 0), (0, width - p.shape[1]), (0, 0)), constant_values=255)
             for p in (grid, legend)]
    return np.concatenate(parts, axis=0)
