"""2-D point sets that no straight line separates: xor, two spirals, concentric circles.

The classic demonstration that a single-layer perceptron is limited to linearly
separable problems while a hidden layer is enough to solve them.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np

from dl_arch.config.fields import Field
from dl_arch.data.batching import Batch
from dl_arch.data.sources.procedural import SPLIT_FIELDS, ProceduralSource, split_length
from dl_arch.data.sources.seeding import raw_uniform
from dl_arch.registry import register_dataset

NOISE = Field(0.05, "std of the Gaussian jitter added to each point", low=0.0)


class PointSet(ProceduralSource):
    """Labelled points in [-1, 1]^2; `kind` picks the geometry, `noise` jitters the points."""

    RAW_DRAWS = {"xor": 3, "circles": 2, "spirals": 1}  # raw outputs of `_draw` before the jitter

    def __init__(self, kind: str, noise: float, length: int, seed: int, split: str):
        super().__init__(length, seed, split)
        self.kind = kind
        self.noise = float(noise)

    def make(self, rng: np.random.Generator, index: int) -> dict[str, Any]:
        """Example `index` through the Generator's own calls: this defines the example."""
        point, jitter = self._draw(rng, index)
        batch = self._assemble(point[None], jitter[None], np.array([index]))
        return {k: v[0] for k, v in batch.items()}

    def make_batch(self, rngs: Iterator[np.random.Generator], indices: np.ndarray) -> Batch:
        """The same examples with each generator read once for its raw outputs and once for
        its jitter; the points' arithmetic then runs on the whole batch."""
        k = self.RAW_DRAWS[self.kind]
        raw = np.empty((len(indices), k), np.uint64)
        jitter = np.empty((len(indices), 2))
        for j, rng in enumerate(rngs):
            raw[j] = rng.bit_generator.random_raw(k)
            jitter[j] = rng.normal(0.0, self.noise, size=2)
        return self._assemble(self._points(raw, indices % 2), jitter, indices)

    def _draw(self, rng: np.random.Generator, index: int) -> tuple[np.ndarray, np.ndarray]:
        """The point before its jitter, and the jitter (float64 [2] each)."""
        label = index % 2  # balanced classes
        if self.kind == "xor":
            x = rng.uniform(0.1, 1.0, size=2)  # a margin around the axes keeps labels clean
            # quadrant signs: label 0 -> same signs, label 1 -> opposite signs
            s = (-1.0, 1.0)[rng.integers(2)]
            x = x * np.array([s, s if label == 0 else -s])
        elif self.kind == "circles":
            r = rng.uniform(0.0, 0.45) if label == 0 else rng.uniform(0.65, 1.0)
            a = rng.uniform(0, 2 * np.pi)
            x = r * np.array([np.cos(a), np.sin(a)])
        elif self.kind == "spirals":
            t = np.sqrt(rng.uniform(0.02, 1.0)) * 3 * np.pi  # sqrt: uniform density along arm
            a = t + label * np.pi
            x = (t / (3 * np.pi)) * np.array([np.cos(a), np.sin(a)])
        else:  # pragma: no cover - guarded in factory
            raise AssertionError(self.kind)
        return x, rng.normal(0.0, self.noise, size=2)

    def _points(self, raw: np.ndarray, label: np.ndarray) -> np.ndarray:
        """`_draw`'s points (before the jitter) of a batch from each example's raw outputs."""
        if self.kind == "xor":
            x = raw_uniform(raw[:, :2], 0.1, 1.0)
            s = np.where((raw[:, 2] & np.uint64(0xFFFFFFFF)) >> np.uint64(31), 1.0, -1.0)
            return x * np.stack([s, np.where(label == 0, s, -s)], axis=1)
        if self.kind == "circles":
            r = np.where(label == 0, raw_uniform(raw[:, 0], 0.0, 0.45),
                         raw_uniform(raw[:, 0], 0.65, 1.0))
            a = raw_uniform(raw[:, 1], 0, 2 * np.pi)
            return r[:, None] * np.stack([np.cos(a), np.sin(a)], axis=1)
        t = np.sqrt(raw_uniform(raw[:, 0], 0.02, 1.0)) * 3 * np.pi
        a = t + label * np.pi
        return (t / (3 * np.pi))[:, None] * np.stack([np.cos(a), np.sin(a)], axis=1)

    @staticmethod
    def _assemble(points: np.ndarray, jitter: np.ndarray, indices: np.ndarray) -> Batch:
        """Jitter added, cast: the arrays of the examples."""
        return {"inputs": (points + jitter).astype(np.float32),
                "label": (np.asarray(indices, np.int64) % 2).astype(np.int32)}


def _factory(kind: str):
    def factory(dataset_config: Any, split: str, seed: int) -> PointSet:
        return PointSet(kind, dataset_config.noise,
                        split_length(dataset_config, split), seed, split)

    factory.__doc__ = f"The `{kind}` point set."
    return factory


for _kind in ("xor", "circles", "spirals"):
    register_dataset(_kind, _factory(_kind), fields={"noise": NOISE, **SPLIT_FIELDS})


class Function1D(ProceduralSource):
    """Regression target y = sin(3x) + x/2 + noise for x uniform in [-1, 1]."""

    def __init__(self, noise: float, length: int, seed: int, split: str):
        super().__init__(length, seed, split)
        self.noise = float(noise)

    def make(self, rng: np.random.Generator, index: int) -> dict[str, Any]:
        x = rng.uniform(-1.0, 1.0, size=1)
        y = np.sin(3 * x) + 0.5 * x + rng.normal(0.0, self.noise, size=1)
        return {"inputs": x.astype(np.float32), "targets": y.astype(np.float32)}

    def make_batch(self, rngs: Iterator[np.random.Generator], indices: np.ndarray) -> Batch:
        """`make` of every example, x from each generator's raw output, the rest at once."""
        raw, noise = np.empty((len(indices), 1), np.uint64), np.empty((len(indices), 1))
        for j, rng in enumerate(rngs):
            raw[j] = rng.bit_generator.random_raw(1)
            noise[j] = rng.normal(0.0, self.noise, size=1)
        x = raw_uniform(raw, -1.0, 1.0)
        y = np.sin(3 * x) + 0.5 * x + noise
        return {"inputs": x.astype(np.float32), "targets": y.astype(np.float32)}


@register_dataset("function1d", fields={
    "noise": Field(0.0, "std of the Gaussian noise added to the target", low=0.0),
    **SPLIT_FIELDS})
def function1d(dataset_config: Any, split: str, seed: int) -> Function1D:
    """A smooth 1-D regression problem."""
    return Function1D(dataset_config.noise, split_length(dataset_config, split), seed, split)
