"""The training batches of one process read in the calling thread, one or several at a time.

Without grain worker processes the loop's prefetch thread already reads ahead, so batches
come straight from the batch loader (`LoadStreamBatch`): no grain iterator between, and
`read(count)` gives `count` consecutive batches stacked from one index computation, one
source read and one preprocessing, which is what a chunk of steps (`config.steps_per_call`)
takes. Batches under `BLOCK_BYTES` are read `BLOCK_BATCHES` at a time even one a call, and
handed out one by one: a tiny batch's reading is mostly the fixed cost of its numpy calls,
which a block pays once (about 3x less Python a batch of `mlp_xor`'s, whose input thread
otherwise holds the interpreter lock most of the loop's time); a read of several batches
past the last block starts a new block at its first missing batch. Every batch is a function of
its position alone, so a block's batches equal those read one at a time. The state is
grain's (`{"next_index": i}`, the batches handed out), so checkpoints hold the same position
with or without workers, blocks or not.
"""

from __future__ import annotations

from typing import Any

import grain

from dl_arch.data.batching import Batch, batch_bytes, concatenate_batches, example_at
from dl_arch.data.loader import KeepKeys, LoadStreamBatch

BLOCK_BYTES = 64 << 10  # batches smaller than this are read in blocks ...
BLOCK_BATCHES = 16  # ... of this many


def block_size(nbytes: int) -> int:
    """Batches one read takes at once, for batches of `nbytes` bytes: `BLOCK_BATCHES` under
    `BLOCK_BYTES`, else 1. A consumer that reads ahead should still hold a whole block when
    a block's read starts, or it waits for it: the loop's prefetch queue, refilled once half
    of it is left, holds two blocks and one."""
    return BLOCK_BATCHES if nbytes < BLOCK_BYTES else 1


class BatchIterator(grain.DatasetIterator):
    """Batches `0 .. length - 1` of `load`, in order."""

    def __init__(self, load: LoadStreamBatch | KeepKeys, length: int):
        super().__init__(())
        self._load, self._length, self._next = load, int(length), 0
        self._block_size = 0  # batches a single read takes at once (0: not yet known)
        self._block: tuple[int, int, Batch] | None = None  # (first, count, stacked batches)

    def __next__(self) -> Batch:
        return self.read(1)

    def read(self, count: int) -> Batch:
        """The next `count` batches: the batch itself for 1, else stacked along a new
        leading axis (equal to stacking them one by one)."""
        if self._next + count > self._length:
            raise StopIteration
        first, self._next = self._next, self._next + count
        if count == 1:
            return self._single(first)
        have, held = self._held(first, count)
        if have == count:
            return held
        rest = self._read_new(first + have, count - have)
        return concatenate_batches([held, rest]) if have else rest

    def _held(self, first: int, count: int) -> tuple[int, Batch | None]:
        """(how many, stacked) of batches `first ..` that the last block holds, at most
        `count` ((0, None): it holds no batch `first`)."""
        if self._block is None:
            return 0, None
        start, size, rows = self._block
        if not start <= first < start + size:
            return 0, None
        end = min(first + count, start + size)
        return end - first, example_at(rows, slice(first - start, end - start))

    def _read_new(self, first: int, count: int) -> Batch:
        """Batches `first .. first + count - 1` (stacked), read now: where blocks pay, as the
        head of a new block of at least `BLOCK_BATCHES`, whose rest the next reads take (so
        a chunk of steps shorter than a block, or one that starts inside a block, does not
        leave every later read a short one)."""
        if self._block_size <= 1:  # blocks do not pay, or no read has said yet
            rows = self._load.many(first, count)
            if not self._block_size:
                self._block_size = block_size(batch_bytes(rows) // count)
            return rows
        size = min(max(count, self._block_size), self._length - first)
        self._block = (first, size, self._load.many(first, size))
        return self._held(first, count)[1]

    def _single(self, index: int) -> Batch:
        """Batch `index`, from the block read last if it holds it, else from a new block
        (the first batch alone: its size says whether blocks pay)."""
        have, held = self._held(index, 1)
        if have:
            return example_at(held, 0)
        if self._block_size > 1:
            return example_at(self._read_new(index, 1), 0)
        batch = self._load(index)
        if not self._block_size:
            self._block_size = block_size(batch_bytes(batch))
        return batch

    def get_state(self) -> dict[str, Any]:
        return {"next_index": self._next}

    def set_state(self, state: dict[str, Any]) -> None:
        self._next = int(state["next_index"])


class InProcessBatches:
    """`iter()` gives a fresh `BatchIterator` (what `train_dataset` returns without workers)."""

    def __init__(self, load: LoadStreamBatch | KeepKeys, length: int):
        self._load, self._length = load, int(length)

    def __iter__(self) -> BatchIterator:
        return BatchIterator(self._load, self._length)
