"""`shapes`: procedural images of coloured geometric shapes, with class labels and boxes.

Offline stand-in for image datasets: every example is drawn from (seed, split, index), so
it needs no download and is identical on every machine. Used for classification (label =
class of the first, largest object), detection (`boxes`, `box_labels`) and generation.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from dl_arch.config.errors import ConfigError
from dl_arch.config.fields import Field
from dl_arch.data.sources.procedural import SPLIT_FIELDS, ProceduralSource, split_length
from dl_arch.registry import register_dataset

SHAPE_NAMES = ("circle", "square", "triangle", "star", "cross", "diamond", "hexagon", "ring")
# random: background and shape any colour (at least 0.45 apart in some channel);
# light_on_dark: black background, each shape channel in [0.5, 1] (MNIST-like contrast)
PALETTES = ("random", "light_on_dark")


def shape_mask(kind: int, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Boolean mask of shape `kind` on coordinates normalised to the object's radius."""
    au, av = np.abs(u), np.abs(v)
    rho = np.sqrt(u * u + v * v)
    if kind == 0:  # circle
        return rho <= 1.0
    if kind == 1:  # square
        return np.maximum(au, av) <= 0.8
    if kind == 2:  # triangle, apex up
        return (v <= 0.75) & (au <= (v + 1.0) * 0.55)
    if kind == 3:  # five-pointed star
        theta = np.arctan2(v, u)
        return rho <= 0.42 + 0.58 * ((np.cos(5 * theta + np.pi / 2) + 1) / 2) ** 3
    if kind == 4:  # cross
        return ((au <= 0.3) & (av <= 0.95)) | ((av <= 0.3) & (au <= 0.95))
    if kind == 5:  # diamond
        return au + av <= 1.0
    if kind == 6:  # hexagon
        return (av <= 0.866) & (au + av * 0.577 <= 1.0)
    if kind == 7:  # ring
        return (rho <= 1.0) & (rho >= 0.55)
    raise ValueError(f"shape kind {kind} out of range")


class Shapes(ProceduralSource):
    """Images of `num_objects` random shapes (first `num_classes` kinds) over a plain background."""

    def __init__(self, image_size: int, num_classes: int, num_objects: int, max_objects: int,
                 channels: int, noise: float, min_size: float, max_size: float,
                 length: int, seed: int, split: str, palette: str = "random"):
        super().__init__(length, seed, split)
        if palette not in PALETTES:
            raise ConfigError(f"config.dataset.palette='{palette}': use one of {PALETTES}")
        self.palette = palette
        if not 1 <= num_classes <= len(SHAPE_NAMES):
            raise ConfigError(
                f"config.dataset.num_classes={num_classes}: shapes has 1..{len(SHAPE_NAMES)} classes"
            )
        if channels not in (1, 3):
            raise ConfigError(f"config.dataset.channels={channels}: use 1 or 3")
        self.image_size, self.num_classes = int(image_size), int(num_classes)
        self.num_objects, self.channels, self.noise = int(num_objects), int(channels), float(noise)
        self.max_objects = max(int(max_objects), self.num_objects)
        self.min_size, self.max_size = float(min_size), float(max_size)

    def _colour(self, rng: np.random.Generator, avoid: np.ndarray | None) -> np.ndarray:
        if self.palette == "light_on_dark":
            if avoid is None:  # the background
                return np.zeros(self.channels)
            return rng.uniform(0.5, 1.0, size=self.channels)
        for _ in range(20):
            c = rng.uniform(0.0, 1.0, size=self.channels)
            if avoid is None or np.abs(c - avoid).max() > 0.45:
                return c
        return 1.0 - avoid

    def make(self, rng: np.random.Generator, index: int) -> dict[str, Any]:
        s = self.image_size
        background = self._colour(rng, None)
        image = np.broadcast_to(background, (s, s, self.channels)).astype(np.float32).copy()
        yy, xx = np.mgrid[0:s, 0:s].astype(np.float32) + 0.5
        boxes = np.zeros((self.max_objects, 4), np.float32)
        labels = np.full((self.max_objects,), -1, np.int32)
        # radii drawn first and sorted, so the first object is the largest (the class label)
        radii = np.sort(rng.uniform(self.min_size, self.max_size, self.num_objects))[::-1] * s / 2
        centres: list[tuple[float, float, float]] = []
        for k, r in enumerate(radii):
            kind = int(rng.integers(self.num_classes))
            for _ in range(10):  # a few tries to limit overlap between objects
                cy, cx = rng.uniform(r, s - r, size=2)
                if all(np.hypot(cy - py, cx - px) > 0.8 * (r + pr) for py, px, pr in centres):
                    break
            centres.append((cy, cx, r))
            mask = shape_mask(kind, (xx - cx) / r, (yy - cy) / r)
            image[mask] = self._colour(rng, background)
            ys, xs = np.nonzero(mask)
            boxes[k] = [ys.min() / s, xs.min() / s, (ys.max() + 1) / s, (xs.max() + 1) / s]
            labels[k] = kind
        image += rng.normal(0.0, self.noise, size=image.shape).astype(np.float32)
        return {"image": np.clip(image, 0.0, 1.0), "label": labels[0],
                "boxes": boxes, "box_labels": labels}


@register_dataset("shapes", fields={
    "image_size": Field(32, "side of the square images in pixels", low=8),
    "num_classes": Field(4, f"shape kinds drawn (the first N of {', '.join(SHAPE_NAMES)})",
                         low=1, high=len(SHAPE_NAMES)),
    "num_objects": Field(1, "shapes per image", low=1),
    "max_objects": Field(1, "box slots per example (detection pads to this)", low=1),
    "channels": Field(3, "image channels", choices=(1, 3)),
    "noise": Field(0.05, "std of the Gaussian pixel noise", low=0.0),
    "min_size": Field(0.35, "smallest shape, as a fraction of the image side", low=0.0,
                      high=1.0, low_open=True),
    "max_size": Field(0.8, "largest shape, as a fraction of the image side", low=0.0, high=1.0,
                      low_open=True),
    "palette": Field("random", "colours: random, or light shapes on black", choices=PALETTES),
    **SPLIT_FIELDS})
def shapes(dataset_config: Any, split: str, seed: int) -> Shapes:
    """Images of random shapes with their class and boxes, drawn on the fly."""
    c = dataset_config
    return Shapes(c.image_size, c.num_classes, c.num_objects, c.max_objects, c.channels, c.noise,
                  c.min_size, c.max_size, split_length(c, split), seed, split, c.palette)
