"""The training batches of one process read in the calling thread, one or several at a time.

Without grain worker processes the loop's prefetch thread already reads ahead, so batches
come straight from the batch loader (`LoadStreamBatch`): no grain iterator between, and
`read(count)` gives `count` consecutive batches stacked from one index computation, one
source read and one preprocessing, which is what a chunk of steps (`config.steps_per_call`)
takes. The state is grain's (`{"next_index": i}`), so checkpoints hold the same position
with or without workers.
"""

from __future__ import annotations

from typing import Any

import grain

from dl_arch.data.batching import Batch
from dl_arch.data.loader import KeepKeys, LoadStreamBatch


class BatchIterator(grain.DatasetIterator):
    """Batches `0 .. length - 1` of `load`, in order."""

    def __init__(self, load: LoadStreamBatch | KeepKeys, length: int):
        super().__init__(())
        self._load, self._length, self._next = load, int(length), 0

    def __next__(self) -> Batch:
        return self.read(1)

    def read(self, count: int) -> Batch:
        """The next `count` batches: the batch itself for 1, else stacked along a new
        leading axis (equal to stacking them one by one)."""
        if self._next + count > self._length:
            raise StopIteration
        first, self._next = self._next, self._next + count
        return self._load(first) if count == 1 else self._load.many(first, count)

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
