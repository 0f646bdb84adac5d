"""Base class for procedural datasets: deterministic `index -> example` functions of a seed."""

from __future__ import annotations

import zlib
from collections.abc import Iterable
from typing import Any

import numpy as np

from dl_arch.config.fields import Field, Fields
from dl_arch.data.batching import Batch, stack_examples
from dl_arch.data.sources.seeding import ExampleGenerators

INFINITE = 2**31 - 1  # length of an "endless" procedural training split


def split_salt(split: str) -> int:
    """A stable integer per split name, so train and test examples never coincide."""
    return zlib.crc32(split.encode())


class ProceduralSource:
    """Random-access source whose example `i` is drawn from `default_rng([seed, salt, i])`.

    Subclasses implement `make(rng, index) -> dict`; the same (seed, split, index) always
    gives the same example, on any machine and in any worker process. Examples of a source
    have one shape (pad what varies), so `get_batch(indices)` returns them stacked; a
    subclass whose examples vectorise overrides `make_batch` to build them all at once,
    equal to stacking `make` (or writes `make_batch` alone: `BatchDefinedSource`).
    """

    def __init__(self, length: int, seed: int, split: str):
        self._length = int(length)
        self._seed = int(seed)
        self._salt = split_salt(split)

    def __len__(self) -> int:
        return self._length

    def __getitem__(self, index: int) -> dict[str, Any]:
        if not 0 <= index < self._length:
            raise IndexError(index)
        rng = np.random.default_rng([self._seed, self._salt, int(index)])
        return self.make(rng, int(index))

    def make(self, rng: np.random.Generator, index: int) -> dict[str, Any]:
        raise NotImplementedError

    def get_batch(self, indices: np.ndarray) -> Batch:
        """Examples `indices` stacked along a new first axis (the same as `self[i]` each)."""
        indices = np.asarray(indices, np.int64)
        if len(indices) and not (0 <= indices.min() and indices.max() < self._length):
            raise IndexError(f"indices out of range [0, {self._length})")
        return self.make_batch(ExampleGenerators(self._seed, self._salt, indices), indices)

    def make_batch(self, rngs: Iterable[np.random.Generator], indices: np.ndarray) -> Batch:
        """Example `indices[j]` from `rngs`' j-th generator (each valid until the next is
        drawn), stacked; this default calls `make` once per example."""
        return stack_examples([self.make(rng, i) for rng, i in zip(rngs, indices.tolist())])


class BatchDefinedSource(ProceduralSource):
    """A procedural source written as `make_batch` alone: an example is its batch of one."""

    def make(self, rng: np.random.Generator, index: int) -> dict[str, Any]:
        return {k: v[0] for k, v in self.make_batch(iter([rng]), np.array([index])).items()}


# Sizes of a procedural source's splits: declared by every procedural dataset.
SPLIT_FIELDS: Fields = {
    "num_train_examples": Field(None, "training examples (None: an endless stream of fresh "
                                      "ones)", kind=int, low=1),
    "num_eval_examples": Field(1000, "examples in the eval split", low=1),
}


def split_length(dataset_config: Any, split: str) -> int:
    """`num_train_examples` (None -> endless) or `num_eval_examples` of a dataset config."""
    if split == dataset_config.train_split:
        n = dataset_config.num_train_examples
        return INFINITE if n is None else int(n)
    return int(dataset_config.num_eval_examples)
