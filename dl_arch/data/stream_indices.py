"""The example indices of each training batch, computed per batch rather than per example.

The training stream is defined by a grain chain over example indices:
`MapDataset.range(n) -> shuffle(seed) -> repeat(None) (finite n) -> [process::count] ->
batch(local, drop_remainder=True)`. Asking that chain for one batch costs a Python call per
example and per transformation (about 20 us an example); `StreamIndices(...)(b)` gives the
same indices for batch `b` with one `index_shuffle` call per example (grain's own cipher,
so the permutation is grain's) and numpy arithmetic for the rest; the tests compare it with
the chain itself.
"""

from __future__ import annotations

import sys

import grain
import grain.experimental
import numpy as np

_ROUNDS = 4  # grain's shuffle uses 4 rounds of its cipher


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

    def __call__(self, batch: int) -> np.ndarray:
        epoch, within = divmod(int(batch), self.num_batches)  # grain batches epoch by epoch
        start = within * self.batch_size + epoch * self.shard_length
        slots = range(start, start + self.batch_size)
        # the slice: shard position i -> stream position (wrapping past the stream's end)
        positions = [self.process_index + (i % self.shard_length) * self.process_count
                     + (i // self.shard_length) * self.stream_length for i in slots]
        if not self.shuffle:
            return np.array([p % self.length for p in positions], np.int64)
        n = self.length
        return np.array([grain.experimental.index_shuffle(
            p % n, max_index=n - 1, seed=(self.seed + p // n) % 2**32, rounds=_ROUNDS)
            for p in positions], np.int64)

