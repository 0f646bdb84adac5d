"""2-D point sets that no straight line separates: xor, two spirals, concentric circles.

The classic demonstration that a single-layer perceptron is limited to linearly
separable problems while a hidden layer is enough to solve them.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np

from dl_arch.config.fields import Field
from dl_arch.data.batching import Batch
from dl_arch.data.lane_draws import raw_uniform
from dl_arch.data.sources.procedural import SPLIT_FIELDS, BatchDefinedSource, split_length
from dl_arch.data.sources.seeding import raw_coin, raw_then_normal
from dl_arch.registry import register_dataset

NOISE = Field(0.05, "std of the Gaussian jitter added to each point", low=0.0)


class PointSet(BatchDefinedSource):
    """Labelled points in [-1, 1]^2; `kind` picks the geometry, `noise` jitters the points."""

    RAW_DRAWS = {"xor": 3, "circles": 2, "spirals": 1}  # raw outputs a point takes

    def __init__(self, kind: str, noise: float, length: int, seed: int, split: str):
        super().__init__(length, seed, split)
        self.kind = kind
        self.noise = float(noise)

    def make_batch(self, rngs: Iterable[np.random.Generator], indices: np.ndarray) -> Batch:
        """Each example's generator read once for its raw outputs (the point, see `_points`)
        and once for its Gaussian jitter; the arithmetic then runs on the whole batch."""
        raw, jitter = raw_then_normal(rngs, len(indices), self.RAW_DRAWS[self.kind],
                                      self.noise, 2)
        return {"inputs": (self._points(raw, indices % 2) + jitter).astype(np.float32),
                "label": (np.asarray(indices, np.int64) % 2).astype(np.int32)}

    def _points(self, raw: np.ndarray, label: np.ndarray) -> np.ndarray:
        """The points before their jitter (float64 [N, 2]) from each example's raw outputs:
        the draws of `Generator.uniform` and `integers` (`lane_draws.raw_uniform`, `seeding.raw_coin`)."""
        if self.kind == "xor":
            x = raw_uniform(raw[:, :2], 0.1, 1.0)  # a margin around the axes keeps labels clean
            # quadrant signs (integers(2): -1 or 1): label 0 same signs, label 1 opposite
            s = np.where(raw_coin(raw[:, 2]), 1.0, -1.0)
            return x * np.stack([s, np.where(label == 0, s, -s)], axis=1)
        if self.kind == "circles":  # inner disc (label 0) or outer ring
            r = np.where(label == 0, raw_uniform(raw[:, 0], 0.0, 0.45),
                         raw_uniform(raw[:, 0], 0.65, 1.0))
            a = raw_uniform(raw[:, 1], 0, 2 * np.pi)
            return r[:, None] * np.stack([np.cos(a), np.sin(a)], axis=1)
        # spirals; sqrt: uniform density along an arm
        t = np.sqrt(raw_uniform(raw[:, 0], 0.02, 1.0)) * 3 * np.pi
        a = t + label * np.pi
        return (t / (3 * np.pi))[:, None] * np.stack([np.cos(a), np.sin(a)], axis=1)


def _factory(kind: str):
    def factory(dataset_config: Any, split: str, seed: int) -> PointSet:
        return PointSet(kind, dataset_config.noise,
                        split_length(dataset_config, split), seed, split)

    factory.__doc__ = f"The `{kind}` point set."
    return factory


for _kind in ("xor", "circles", "spirals"):
    register_dataset(_kind, _factory(_kind), fields={"noise": NOISE, **SPLIT_FIELDS})


class Function1D(BatchDefinedSource):
    """Regression target y = sin(3x) + x/2 + noise for x uniform in [-1, 1]."""

    def __init__(self, noise: float, length: int, seed: int, split: str):
        super().__init__(length, seed, split)
        self.noise = float(noise)

    def make_batch(self, rngs: Iterable[np.random.Generator], indices: np.ndarray) -> Batch:
        """x = uniform(-1, 1) from each generator's raw output, then its Gaussian noise; the
        arithmetic runs on the whole batch."""
        raw, noise = raw_then_normal(rngs, len(indices), 1, self.noise, 1)
        x = raw_uniform(raw, -1.0, 1.0)
        y = np.sin(3 * x) + 0.5 * x + noise
        return {"inputs": x.astype(np.float32), "targets": y.astype(np.float32)}


@register_dataset("function1d", fields={
    "noise": Field(0.0, "std of the Gaussian noise added to the target", low=0.0),
    **SPLIT_FIELDS})
def function1d(dataset_config: Any, split: str, seed: int) -> Function1D:
    """A smooth 1-D regression problem."""
    return Function1D(dataset_config.noise, split_length(dataset_config, split), seed, split)
