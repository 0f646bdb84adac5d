"""The example indices of each training batch, computed per batch rather than per example.

The training stream is defined by a grain chain over example indices:
`MapDataset.range(n) -> shuffle(seed) -> repeat(None) (finite n) -> [process::count] ->
batch(local, drop_remainder=True)`. Asking that chain for one batch costs a Python call per
example and per transformation (about 20 us an example); `StreamIndices(...)(b)` gives the
same indices for batch `b` with numpy arithmetic and grain's own cipher run over arrays
(`dl_arch.data.index_shuffle`, a chunk of the permutation at a time), so the permutation
is grain's; the tests compare it with the chain itself.
"""

from __future__ import annotations

import functools
import sys
from typing import Any

import numpy as np

from dl_arch.data.index_shuffle import index_shuffle

_ROUNDS = 4  # grain's shuffle uses 4 rounds of its cipher
_CHUNK = 1 << 16  # indices whose shuffled positions are computed together (0.5 MiB)


class StreamIndices:
    """`indices(b)`: the source indices of local batch `b` of one process, in order."""

    def __init__(self, length: int, shuffle: bool, seed: int, repeat: bool,
                 process_index: int, process_count: int, batch_size: int):
        self.length, self.shuffle, self.seed = int(length), bool(shuffle), int(seed)
        self.process_index, self.process_count = int(process_index), int(process_count)
        self.batch_size = int(batch_size)
        # the chain's lengths: after repeat (grain: sys.maxsize) and after this process's slice
        self.stream_length = sys.maxsize if repeat else self.length
        self.shard_length = len(range(self.process_index, self.stream_length, self.process_count))
        self.num_batches = self.shard_length // self.batch_size

    def __len__(self) -> int:
        return self.num_batches

    def _start(self, batch: Any) -> Any:
        """Slot of the first row of batch `batch` (an int or an array of them): grain batches
        epoch by epoch, dropping each epoch's last partial batch."""
        return (batch % self.num_batches) * self.batch_size + \
            (batch // self.num_batches) * self.shard_length

    def __call__(self, batch: int, count: int = 1) -> np.ndarray:
        """The indices of batch `batch` (of `count` batches from it, one after the other)."""
        last = self._start(int(batch) + count - 1)
        # past the end of a repeated stream positions pass 2**63: Python ints, as grain's
        top = ((last + self.batch_size) // self.shard_length + 1) * self.stream_length
        dtype = np.int64 if top < 2**62 else object
        starts = self._start(int(batch) + np.arange(count, dtype=dtype))
        slots = (starts[:, None] + np.arange(self.batch_size, dtype=dtype)).reshape(-1)
        # the slice: shard position i -> stream position (wrapping past the stream's end)
        positions = (self.process_index + (slots % self.shard_length) * self.process_count
                     + (slots // self.shard_length) * self.stream_length)
        index, cycle = (positions % self.length).astype(np.int64), positions // self.length
        if not self.shuffle:
            return index
        if cycle[0] == cycle[-1]:  # one pass (nearly every batch): no per-pass masks
            return _permuted(index, self.length, (self.seed + int(cycle[0])) % 2**32)
        out = np.empty_like(index)
        for c in np.unique(cycle).tolist():  # grain reshuffles each pass with seed + pass
            rows = cycle == c
            out[rows] = _permuted(index[rows], self.length, (self.seed + c) % 2**32)
        return out


def _permuted(index: np.ndarray, length: int, seed: int) -> np.ndarray:
    """Where grain's shuffle of [0, length) with `seed` puts each of `index`: looked up in
    chunks of the permutation computed a chunk at a time (the cipher vectorises well over
    thousands of indices, poorly over one batch) and kept for the next batches."""
    chunk = min(length, _CHUNK)
    first = index // chunk
    if first.min() == first.max():  # one chunk: a single lookup
        c = int(first[0])
        return _permutation_chunk(length, seed, c * chunk, chunk)[index - c * chunk]
    out = np.empty_like(index)
    for c in np.unique(first).tolist():
        rows = first == c
        out[rows] = _permutation_chunk(length, seed, c * chunk, chunk)[index[rows] - c * chunk]
    return out


@functools.lru_cache(maxsize=8)
def _permutation_chunk(length: int, seed: int, start: int, size: int) -> np.ndarray:
    """grain's shuffled positions of indices [start, start + size) (clipped to `length`)."""
    values = index_shuffle(np.arange(start, min(start + size, length), dtype=np.int64),
                           length - 1, seed, _ROUNDS)
    values.flags.writeable = False  # shared by every caller of the cache
    return values
