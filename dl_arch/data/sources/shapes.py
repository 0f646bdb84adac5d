"""`shapes`: procedural images of coloured geometric shapes, with class labels and boxes.

Offline stand-in for image datasets: every example is drawn from (seed, split, index), so
it needs no download and is identical on every machine. Used for classification (label =
class of the first, largest object), detection (`boxes`, `box_labels`), generation, and
semantic segmentation (`masks=True`: a per-pixel class map `mask`, 0 = background and
shape kind k = class k + 1, painted from the very pixels each shape colours).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from typing import Any

import numpy as np

from dl_arch.config.errors import ConfigError
from dl_arch.config.fields import Field
from dl_arch.data.batching import Batch
from dl_arch.data.lane_draws import LaneDraws
from dl_arch.data.sources.pcg64_lanes import Pcg64Lanes
from dl_arch.data.sources.procedural import SPLIT_FIELDS, ProceduralSource, split_length
from dl_arch.data.sources.seeding import lanes_of
from dl_arch.registry import register_dataset

SHAPE_NAMES = ("circle", "square", "triangle", "star", "cross", "diamond", "hexagon", "ring")
# random: background and shape any colour (at least 0.45 apart in some channel);
# light_on_dark: black background, each shape channel in [0.5, 1] (MNIST-like contrast)
PALETTES = ("random", "light_on_dark")
_RENDER_PIXELS = 1 << 21  # pixels rendered at once (float64 temporaries of 16 MiB each)


def mask_class_names(num_classes: int) -> tuple[str, ...]:
    """The classes of `mask` for `num_classes` shape kinds: background, then the kinds."""
    return ("background",) + SHAPE_NAMES[:num_classes]


def shape_mask(kind: int, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Boolean mask of shape `kind` on coordinates normalised to the object's radius.

    `u` and `v` broadcast against each other (the renderer passes a row of `u` and a column
    of `v`): every pixel's value is the same arithmetic on the same numbers as on full grids.
    """
    au, av = np.abs(u), np.abs(v)
    if kind == 0:  # circle
        return np.sqrt(u * u + v * v) <= 1.0
    if kind == 1:  # square
        return np.maximum(au, av) <= 0.8
    if kind == 2:  # triangle, apex up
        return (v <= 0.75) & (au <= (v + 1.0) * 0.55)
    if kind == 3:  # five-pointed star
        # full contiguous grids: numpy's arctan2/cos may round differently on strided input
        u, v = (np.ascontiguousarray(x) for x in np.broadcast_arrays(u, v))
        theta = np.arctan2(v, u)
        rho = np.sqrt(u * u + v * v)
        return rho <= 0.42 + 0.58 * ((np.cos(5 * theta + np.pi / 2) + 1) / 2) ** 3
    if kind == 4:  # cross
        return ((au <= 0.3) & (av <= 0.95)) | ((av <= 0.3) & (au <= 0.95))
    if kind == 5:  # diamond
        return au + av <= 1.0
    if kind == 6:  # hexagon
        return (av <= 0.866) & (au + av * 0.577 <= 1.0)
    if kind == 7:  # ring
        rho = np.sqrt(u * u + v * v)
        return (rho <= 1.0) & (rho >= 0.55)
    raise ValueError(f"shape kind {kind} out of range")


@dataclasses.dataclass
class _Draws:
    """The random numbers of N examples: colours float64 [N, C] and [N, objects, C], kinds
    int64 [N, objects], centres (cy, cx, r) float64 [N, objects, 3], noise float32
    [N, H, W, C]."""

    background: np.ndarray
    kinds: np.ndarray
    centres: np.ndarray
    colours: np.ndarray
    noise: np.ndarray

    def rows(self, rows: Any) -> _Draws:
        return _Draws(*(getattr(self, f.name)[rows] for f in dataclasses.fields(self)))

    @staticmethod
    def concatenate(parts: list[_Draws]) -> _Draws:
        return _Draws(*(np.concatenate([getattr(p, f.name) for p in parts])
                        for f in dataclasses.fields(_Draws)))


class Shapes(ProceduralSource):
    """Images of `num_objects` random shapes (first `num_classes` kinds) over a plain background."""

    def __init__(self, image_size: int, num_classes: int, num_objects: int, max_objects: int,
                 channels: int, noise: float, min_size: float, max_size: float,
                 length: int, seed: int, split: str, palette: str = "random",
                 masks: bool = False):
        super().__init__(length, seed, split)
        self.masks = bool(masks)
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
        far = None if avoid is None else avoid.tolist()
        for _ in range(20):
            c = rng.uniform(0.0, 1.0, size=self.channels)
            # max |c - avoid| > 0.45, in Python floats: the same doubles, no numpy overhead
            if far is None or max(abs(x - y) for x, y in zip(c.tolist(), far)) > 0.45:
                return c
        return 1.0 - avoid

    def make(self, rng: np.random.Generator, index: int) -> dict[str, Any]:
        batch = self._render(self._draw(rng))
        return {k: v[0] for k, v in batch.items()}

    def make_batch(self, rngs: Iterable[np.random.Generator], indices: np.ndarray) -> Batch:
        """Every example's random numbers (all generators at once where `rngs` has lanes,
        else one example at a time), then all images rendered at once (in chunks of about
        `_RENDER_PIXELS` pixels, which bounds the float64 temporaries)."""
        lanes = lanes_of(rngs)
        draws = (self._draw_lanes(lanes) if lanes is not None
                 else _Draws.concatenate([self._draw(rng) for rng in rngs]))
        chunk = max(1, _RENDER_PIXELS // (self.image_size * self.image_size))
        parts = [self._render(draws.rows(slice(i, i + chunk)))
                 for i in range(0, len(draws.kinds), chunk)]
        if len(parts) == 1:
            return parts[0]
        return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}

    def _draw(self, rng: np.random.Generator) -> _Draws:
        """One example's random numbers, in the order that defines the example."""
        s = self.image_size
        background = self._colour(rng, None)
        # radii drawn first and sorted, so the first object is the largest (the class label)
        radii = np.sort(rng.uniform(self.min_size, self.max_size, self.num_objects))[::-1] * s / 2
        kinds, centres, colours = [], [], []
        for r in radii:
            kinds.append(int(rng.integers(self.num_classes)))
            for _ in range(10):  # a few tries to limit overlap between objects
                cy, cx = rng.uniform(r, s - r, size=2)
                if all(np.hypot(cy - py, cx - px) > 0.8 * (r + pr) for py, px, pr in centres):
                    break
            centres.append((cy, cx, r))
            colours.append(self._colour(rng, background))
        noise = rng.normal(0.0, self.noise, size=(s, s, self.channels)).astype(np.float32)
        return _Draws(background[None], np.array([kinds]), np.array([centres]),
                      np.stack(colours)[None], noise[None])

    def _colours(self, draws: LaneDraws, avoid: np.ndarray | None) -> np.ndarray:
        """`_colour` of every lane: float64 [N, C]."""
        if self.palette == "light_on_dark":
            if avoid is None:
                return np.zeros((len(draws.position), self.channels))
            return draws.uniform(0.5, 1.0, self.channels)
        if avoid is None:
            return draws.uniform(0.0, 1.0, self.channels)
        # the 20 tries of `_colour` at once: each lane reads up to its first colour far enough
        n, c = avoid.shape
        tries = draws.peek_uniform(0.0, 1.0, 20 * c).reshape(n, 20, c)
        far = np.abs(tries - avoid[:, None]).max(axis=2) > 0.45
        found, first = far.any(axis=1), far.argmax(axis=1)
        draws.skip(np.where(found, first + 1, 20) * c)
        return np.where(found[:, None], tries[np.arange(n), first], 1.0 - avoid)

    def _draw_lanes(self, lanes: Pcg64Lanes) -> _Draws:
        """`_draw` of every lane at once, each rejection loop running until its last lane
        leaves it; the few lanes whose bounded integer numpy would redraw go through
        `_draw` itself."""
        s, n, objects = self.image_size, len(lanes.state_hi), self.num_objects
        most = self.channels + objects * (22 + 20 * self.channels)  # every loop to its end
        draws = LaneDraws(lanes.raw, n, expected=most)
        background = self._colours(draws, None)
        radii = np.sort(draws.uniform(self.min_size, self.max_size, objects), axis=1)
        radii = radii[:, ::-1] * s / 2
        kinds = np.zeros((n, objects), np.int64)
        centres = np.zeros((n, objects, 3))
        colours = np.zeros((n, objects, self.channels))
        for k in range(objects):
            r = radii[:, k:k + 1]
            kinds[:, k] = draws.integers(self.num_classes)[:, 0]
            # the 10 placement tries at once: a lane keeps its first centre far enough from
            # the objects before it, or its last try
            cy, cx = draws.peek_uniform(r, s - r, 20).reshape(n, 10, 2).transpose(2, 0, 1)
            placed = np.ones((n, 10), bool)
            for py, px, pr in centres[:, :k].transpose(1, 2, 0):
                placed &= np.hypot(cy - py[:, None], cx - px[:, None]) > 0.8 * (r + pr[:, None])
            tries = np.where(placed.any(axis=1), placed.argmax(axis=1), 9)
            draws.skip(2 * (tries + 1))
            rows = np.arange(n)
            centres[:, k] = np.stack([cy[rows, tries], cx[rows, tries], r[:, 0]], axis=1)
            colours[:, k] = self._colours(draws, background)
        # rng.normal(0, noise) is noise * standard_normal(), each in float64: the same
        # numbers, with one scaling and one cast for the batch instead of one per example
        noise = np.empty((n, s, s, self.channels))
        for row, rng in zip(noise, lanes.advanced(draws.position).generators()):
            rng.standard_normal(out=row)
        noise *= self.noise
        out = _Draws(background, kinds, centres, colours, noise.astype(np.float32))
        redraw = np.flatnonzero(~draws.exact)
        for j, rng in zip(redraw.tolist(), lanes.generators(redraw)):
            one = self._draw(rng)
            for field in dataclasses.fields(_Draws):
                getattr(out, field.name)[j] = getattr(one, field.name)[0]
        return out

    def _render(self, draws: _Draws) -> Batch:
        """The examples of `draws` as one batch: objects painted in order, boxes from their
        pixels, then the noise; elementwise the same arithmetic for any batch size. With
        `masks`, each object's pixels also take its class (kind + 1) in `mask`, so where
        objects overlap the one painted last wins, as in the image."""
        s, n = self.image_size, len(draws.kinds)
        background = draws.background
        image = np.broadcast_to(background[:, None, None, :], (n, s, s, self.channels))
        image = image.astype(np.float32)
        # pixel centres: u depends on the column only and v on the row only
        x_1S = np.arange(s).astype(np.float32)[None, :] + 0.5
        y_S1 = x_1S.reshape(s, 1)
        boxes = np.zeros((n, self.max_objects, 4), np.float32)
        labels = np.full((n, self.max_objects), -1, np.int32)
        # uint8 arithmetic below costs a tenth of a masked int32 write (classes <= 8)
        classes = np.zeros((n, s, s), np.uint8) if self.masks else None
        for k in range(self.num_objects):
            kinds = draws.kinds[:, k]
            centre = draws.centres[:, k, :, None, None]
            cy, cx, r = centre[:, 0], centre[:, 1], centre[:, 2]
            u, v = (x_1S - cx) / r, (y_S1 - cy) / r  # [n, 1, S] and [n, S, 1]
            mask = np.zeros((n, s, s), bool)
            for kind in np.unique(kinds).tolist():
                rows = kinds == kind
                mask[rows] = shape_mask(kind, u[rows], v[rows])
            colour = draws.colours[:, k].astype(np.float32)
            image = np.where(mask[..., None], colour[:, None, None, :], image)
            if classes is not None:
                classes *= ~mask
                classes += mask * (kinds + 1).astype(np.uint8)[:, None, None]
            rows_any, cols_any = mask.any(axis=2), mask.any(axis=1)
            if not rows_any.any(axis=1).all():
                raise ConfigError(f"config.dataset.min_size={self.min_size} draws shapes too "
                                  f"small to cover a pixel of {s}x{s} images; raise min_size "
                                  f"or image_size")
            y0, x0 = rows_any.argmax(axis=1), cols_any.argmax(axis=1)
            y1, x1 = s - rows_any[:, ::-1].argmax(axis=1), s - cols_any[:, ::-1].argmax(axis=1)
            boxes[:, k] = np.stack([y0 / s, x0 / s, y1 / s, x1 / s], axis=1)
            labels[:, k] = kinds
        image += draws.noise
        batch = {"image": np.clip(image, 0.0, 1.0), "label": labels[:, 0],
                 "boxes": boxes, "box_labels": labels}
        if classes is not None:
            batch["mask"] = classes.astype(np.int32)
        return batch


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
    "masks": Field(False, "also give `mask`, int32 [S, S]: 0 background, shape kind k -> k + 1 "
                          "(the shape drawn last wins where shapes overlap)"),
    **SPLIT_FIELDS})
def shapes(dataset_config: Any, split: str, seed: int) -> Shapes:
    """Images of random shapes with their class and boxes (and masks), drawn on the fly."""
    c = dataset_config
    return Shapes(c.image_size, c.num_classes, c.num_objects, c.max_objects, c.channels, c.noise,
                  c.min_size, c.max_size, split_length(c, split), seed, split, c.palette,
                  c.masks)
