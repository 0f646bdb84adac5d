"""One training batch from its example indices: a batched read, then the preprocessing.

The pipeline computes the example *indices* of batch `b` (`StreamIndices`) and calls
`LoadBatch(b, indices)`: the source is read with one `get_batch` where it has one
(vectorised procedural data, text windows, cached splits; others example by example, as
their shapes may differ until preprocessed), then the task's preprocessing runs, on the
whole batch where it has a batched form (`Task.preprocess_batch`) and else on each
example, with the generator that grain's `random_map(seed)` would give the example at
stream position `b * batch_size + j`; so every batch equals the one that reading,
preprocessing and stacking example by example gives.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from dl_arch.data.batching import Batch, read_examples, stack_examples
from dl_arch.data.lane_draws import LaneDraws
from dl_arch.data.philox_lanes import position_draws

Example = dict[str, Any]
Preprocess = Callable[[Example, np.random.Generator, bool], Example]


def standardize(example: Example) -> Example:
    """uint8 images become float32 in [0, 1], so every model sees the same convention."""
    image = example["image"] if "image" in example else None
    if image is not None and np.asarray(image).dtype == np.uint8:
        example = dict(example, image=np.asarray(image, np.float32) / 255.0)
    return example


class PositionRngs:
    """`rng(position)`: the generator grain's `random_map(..., seed)` hands the element at
    `position` (Philox keyed by the seed, counter [0, 0, 0, position]); one object, reset
    for each call, so use it before the next call and from one thread."""

    def __init__(self, seed: int):
        self._seed = seed
        self._bit_generator: np.random.Philox | None = None  # built at the first call

    def __call__(self, position: int) -> np.random.Generator:
        if self._bit_generator is None:  # (a batch without random draws never builds it)
            self._bit_generator = np.random.Philox(self._seed)
            self._generator = np.random.Generator(self._bit_generator)
            self._state = self._bit_generator.state
        self._state["state"]["counter"] = np.array([0, 0, 0, position], np.uint64)
        self._state["buffer"] = np.zeros(4, np.uint64)
        self._state["buffer_pos"], self._state["has_uint32"], self._state["uinteger"] = 4, 0, 0
        self._bit_generator.state = self._state
        return self._generator


class BatchRngs:
    """`rng_at(j)` of one batch: example j sits at stream position `first + j` and gets
    `PositionRngs(seed)` of it; `lanes(count)` gives the first `count` examples' draws all
    at once (`philox_lanes`), None where numpy's Philox is not reproduced."""

    def __init__(self, seed: int, first: int):
        self._rngs, self._seed, self._first = PositionRngs(seed), seed, first

    def __call__(self, j: int) -> np.random.Generator:
        return self._rngs(self._first + j)

    def lanes(self, count: int) -> LaneDraws | None:
        return position_draws(self._seed, self._first + np.arange(count))


def batched_form(preprocess: Preprocess) -> Callable[..., Batch | None] | None:
    """The batched form of `preprocess`: a task's `preprocess_batch` when `preprocess` is
    that task's bound `preprocess` method, else None (plain functions go example by example)."""
    owner = getattr(preprocess, "__self__", None)
    return getattr(owner, "preprocess_batch", None)


def load_batch(source: Any, preprocess: Preprocess, indices: np.ndarray,
               rng_at: Callable[[int], np.random.Generator], train: bool) -> Batch:
    """Examples `indices` of `source`, preprocessed (example j with `rng_at(j)`) and stacked:
    the whole batch at once where the source reads batches and the preprocessing has a
    batched form, else example by example; the same arrays either way."""
    if hasattr(source, "get_batch"):
        batched = batched_form(preprocess)
        if batched is not None:
            out = batched(standardize(source.get_batch(indices)), rng_at, train)
            if out is not None:
                return out
    return stack_examples([preprocess(standardize(dict(example)), rng_at(j), train)
                           for j, example in enumerate(read_examples(source, indices))])


class LoadBatch:
    """(batch number, example indices) -> the training batch (`load_batch`, each example
    with the generator grain's `random_map(seed)` gives its stream position)."""

    def __init__(self, source: Any, preprocess: Preprocess, seed: int, batch_size: int):
        self.source, self.preprocess = source, preprocess
        self.seed, self.batch_size = int(seed), int(batch_size)

    def __call__(self, batch_index: int, indices: np.ndarray) -> Batch:
        # per call: grain may run batches in several threads
        rng_at = BatchRngs(self.seed, batch_index * self.batch_size)
        return load_batch(self.source, self.preprocess, indices, rng_at, True)


class LoadStreamBatch:
    """grain `map` transform: batch number -> the batch (its indices from `indices`)."""

    def __init__(self, indices: Callable[..., np.ndarray], load: LoadBatch):
        self.indices, self.load = indices, load

    def __call__(self, batch_index: int) -> Batch:
        return self.load(int(batch_index), self.indices(batch_index))

    def many(self, first: int, count: int) -> Batch:
        """Batches `first .. first + count - 1` stacked along a new leading axis, read and
        preprocessed as one batch of `count` x the rows (their stream positions follow on)."""
        rows = self.load(int(first), self.indices(first, count))
        return _split_rows(rows, count)


class KeepKeys:
    """`LoadStreamBatch` whose batches hold only `keys`: the others are dropped where the
    batch is made, before a worker process hands it over or the loop places it."""

    def __init__(self, load: LoadStreamBatch, keys: tuple[str, ...]):
        self.load, self.keys = load, tuple(keys)

    def __call__(self, batch_index: int) -> Batch:
        return self._kept(self.load(batch_index))

    def many(self, first: int, count: int) -> Batch:
        return self._kept(self.load.many(first, count))

    def _kept(self, batch: Batch) -> Batch:
        return {k: batch[k] for k in self.keys}


def _split_rows(batch: Any, count: int) -> Any:
    """[count * B, ...] arrays (nested dicts) -> [count, B, ...]."""
    if isinstance(batch, dict):
        return {k: _split_rows(v, count) for k, v in batch.items()}
    batch = np.asarray(batch)
    return batch.reshape((count, batch.shape[0] // count) + batch.shape[1:])
