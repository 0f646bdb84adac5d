"""Finite procedural splits materialised once: every later epoch is array indexing.

A `CachedSource` builds all of its source's examples on first use (in batches, through the
source's own `get_batch`) and keeps them as stacked arrays, so example i is exactly what
the source gives for i. Only procedural sources of known, bounded size are cached (files
and TFDS are already stored; an endless stream cannot be). The arrays are not pickled:
each grain worker process materialises its own copy the first time it reads.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from dl_arch.data.batching import Batch, batch_bytes, concatenate_batches, example_at, get_batch
from dl_arch.data.sources.procedural import INFINITE, ProceduralSource

CACHE_BYTES = 256 << 20  # largest split materialised in memory (per process)
_BUILD_CHUNK = 2048  # examples generated per call while materialising


class CachedSource:
    """All examples of a finite `source` as stacked arrays, built on first access."""

    def __init__(self, source: Any):
        self.source = source
        self._arrays: Batch | None = None

    def __len__(self) -> int:
        return len(self.source)

    def __getstate__(self) -> dict[str, Any]:
        return {"source": self.source, "_arrays": None}  # workers rebuild rather than unpickle

    def arrays(self) -> Batch:
        """The whole split, stacked (materialised on the first call)."""
        if self._arrays is None:
            n = len(self.source)
            parts = [get_batch(self.source, np.arange(i, min(i + _BUILD_CHUNK, n)))
                     for i in range(0, n, _BUILD_CHUNK)]
            self._arrays = concatenate_batches(parts)
        return self._arrays

    def __getitem__(self, index: int) -> Batch:
        if not 0 <= index < len(self):
            raise IndexError(index)
        return example_at(self.arrays(), int(index))

    def get_batch(self, indices: np.ndarray) -> Batch:
        """Examples `indices`, stacked: one fancy-indexing per array."""
        indices = np.asarray(indices, np.int64)
        if len(indices) and not (0 <= indices.min() and indices.max() < len(self)):
            raise IndexError(f"indices out of range [0, {len(self)})")
        return example_at(self.arrays(), indices)


def maybe_cached(source: Any, limit_bytes: int = CACHE_BYTES) -> Any:
    """`source` wrapped in a `CachedSource` when it is a finite procedural split whose
    examples fit in `limit_bytes` (estimated from example 0); otherwise `source` itself."""
    n = len(source)
    if not isinstance(source, ProceduralSource) or n >= INFINITE or n == 0:
        return source
    if batch_bytes(source[0]) * n > limit_bytes:
        return source
    return CachedSource(source)
