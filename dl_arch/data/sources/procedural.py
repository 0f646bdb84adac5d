"""Base class for procedural datasets: deterministic `index -> example` functions of a seed."""

from __future__ import annotations

import zlib
from typing import Any

import numpy as np

from dl_arch.config.fields import Field, Fields

INFINITE = 2**31 - 1  # length of an "endless" procedural training split


def split_salt(split: str) -> int:
    """A stable integer per split name, so train and test examples never coincide."""
    return zlib.crc32(split.encode())


class ProceduralSource:
    """Random-access source whose example `i` is drawn from `default_rng([seed, salt, i])`.

    Subclasses implement `make(rng, index) -> dict`; the same (seed, split, index) always
    gives the same example, on any machine and in any worker process.
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
