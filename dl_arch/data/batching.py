"""Batched random access to any source, and the one stacking rule (grain's: `np.stack` per key).

A source may offer `get_batch(indices) -> Batch` (vectorised, for examples of one shape:
procedural generators, text windows, cached arrays); equal to stacking `source[i]` for each
index. `read_examples` gives the examples one by one, through `get_batch` where the source
has it and `source[i]` otherwise (TFDS decodes each record on its own anyway, and raw
examples of other sources may differ in shape until preprocessed).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

Batch = dict[str, Any]


def stack_examples(examples: Sequence[Any]) -> Any:
    """Examples (dicts, possibly nested) -> one dict of arrays with a leading batch axis."""
    first = examples[0]
    if isinstance(first, dict):
        return {k: stack_examples([ex[k] for ex in examples]) for k in first}
    return np.stack(examples)


def concatenate_batches(batches: Sequence[Any]) -> Any:
    """Batches (dicts, possibly nested) joined along their leading axis."""
    first = batches[0]
    if isinstance(first, dict):
        return {k: concatenate_batches([b[k] for b in batches]) for k in first}
    return np.concatenate(batches)


def batch_bytes(batch: Any) -> int:
    """Bytes of a (possibly nested) batch's arrays, numpy or jax, or of one example."""
    if isinstance(batch, dict):
        return sum(batch_bytes(v) for v in batch.values())
    return int(batch.nbytes if hasattr(batch, "nbytes") else np.asarray(batch).nbytes)


def example_at(batch: Any, index: Any) -> Any:
    """Row `index` of every array of a (possibly nested) batch: one example, or a sub-batch
    when `index` is an array of indices."""
    if isinstance(batch, dict):
        return {k: example_at(v, index) for k, v in batch.items()}
    return batch[index]


def read_examples(source: Any, indices: Sequence[int] | np.ndarray) -> list[Any]:
    """Examples `indices` of `source` one by one: from one vectorised `get_batch` where the
    source has it, else `source[i]` each (their shapes may differ until preprocessed)."""
    indices = np.asarray(indices, np.int64)
    if hasattr(source, "get_batch"):
        batch = source.get_batch(indices)
        return [example_at(batch, j) for j in range(len(indices))]
    return [source[i] for i in indices.tolist()]


def get_batch(source: Any, indices: Sequence[int] | np.ndarray) -> Batch:
    """Examples `indices` of `source`, stacked (see the module docstring)."""
    indices = np.asarray(indices, np.int64)
    if hasattr(source, "get_batch"):
        return source.get_batch(indices)
    return stack_examples([source[i] for i in indices.tolist()])
