"""grain input pipelines: one global batch per step, each process loading only its shard.

Training: example indices -> shuffle (reshuffled every epoch) -> repeat -> this process's
slice -> batch (grain's order, computed a batch at a time: `StreamIndices`) -> one batched
read of the source + preprocessing (the whole batch at once where the task's has a batched
form; deterministic per stream position). Example `i` of the global stream lands on
process `i % process_count`, so the sequence of global batches is the same whatever the
number of processes. Finite procedural splits are materialised once (`dl_arch.data.cache`). The
iterator's state (batches consumed) is checkpointed.

Evaluation: the whole split in order, padded to full batches; `_mask` marks real rows.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import grain
import numpy as np

from dl_arch.config.errors import ConfigError
from dl_arch.config.fields import Field, Fields
from dl_arch.data.batch_iterator import InProcessBatches
from dl_arch.data.batching import Batch, concatenate_batches, example_at
from dl_arch.data.cache import maybe_cached
from dl_arch.data.loader import KeepKeys, LoadBatch, LoadStreamBatch, Preprocess, load_batch
from dl_arch.data.sources.procedural import INFINITE
from dl_arch.data.stream_indices import StreamIndices
from dl_arch.data.tfds_source import TFDS_DATASET_FIELDS, is_tfds, tfds_dataset
from dl_arch.data.user_files import load_user_sources
from dl_arch.registry import DATASETS

# The dataset fields the pipeline reads for every source.
PIPELINE_FIELDS: Fields = {
    "train_split": Field("train", "split name to train on"),
    "eval_split": Field("test", "split name to evaluate on"),
    "shuffle": Field(True, "shuffle the training split (reshuffled every epoch)"),
    "num_workers": Field(0, "grain worker processes (0: in the main process)", low=0),
    "class_names": Field(None, "names of the classes, for plots and reports", kind=tuple),
    "module": Field("", "a module name or .py file of yours, imported first, whose "
                        "@register_dataset sources can then be named ('': none)"),
}

# Each grain worker process reads its batches in its main thread, with no reading thread:
# its output buffer and the loop's prefetch queue already read ahead, and a reading thread
# cost the worker 0.2-0.3 ms of CPU a `lenet5_shapes` batch (grain's defaults, 16 threads
# and 500 elements, were meant for single examples: 500 whole batches held in memory).
READ_OPTIONS = grain.ReadOptions(num_threads=0, prefetch_buffer_size=0)
# A worker hands arrays under 1 MiB to the loop pickled through grain's queue, larger ones in
# shared memory: a shared-memory segment per array (made, registered, opened, unlinked)
# costs both processes more than a pickle below that size (docs/results/benchmarks.md).
WORKER_OPTIONS = grain.experimental.DatasetOptions(min_shm_size=1 << 20)


def dataset_fields(name: str, task_fields: Fields | None = None) -> Fields:
    """Every field of `config.dataset` for source `name`: the pipeline's, the task's
    preprocessing's, then the source's own (a source's declaration wins)."""
    source = TFDS_DATASET_FIELDS if is_tfds(name) else DATASETS.fields(name)
    return {**PIPELINE_FIELDS, **(task_fields or {}), **source}


def resolve_dataset(dataset_config: Any) -> Any:
    """`dataset_config` with every declared field (defaults filled, given values checked), for
    library callers that pass a bare dataset section; a resolved section is returned as it is."""
    import ml_collections

    fields = dataset_fields(dataset_config.name)
    if all(k in dataset_config for k in fields):
        return dataset_config
    data = dataset_config.to_dict() if hasattr(dataset_config, "to_dict") else dict(dataset_config)
    for key, field in fields.items():
        data[key] = field.check(data[key], f"dataset.{key}") if key in data else field.default
    return ml_collections.ConfigDict(data)


def make_source(dataset_config: Any, split: str, seed: int) -> Any:
    """A random-access source for `config.dataset.name` (a registered name or `tfds:<name>`)."""
    if "module" in dataset_config:  # before the name is looked up (a bare section may lack it)
        load_user_sources(dataset_config.module)
    dataset_config = resolve_dataset(dataset_config)
    if is_tfds(dataset_config.name):
        return tfds_dataset(dataset_config, split)
    return DATASETS.get(dataset_config.name)(dataset_config, split, seed)


def local_batch_size(global_batch: int, process_count: int, field: str = "config.batch_size") -> int:
    if global_batch % process_count:
        raise ConfigError(
            f"{field}={global_batch} must divide by the number of processes ({process_count})"
        )
    return global_batch // process_count


def _train_batches(dataset_config: Any, seed: int, global_batch: int, preprocess: Preprocess,
                   process_index: int, process_count: int
                   ) -> tuple[Any, LoadStreamBatch, int]:
    """(resolved dataset config, the loader of this process's local batch b, their count)."""
    dataset_config = resolve_dataset(dataset_config)
    source = maybe_cached(make_source(dataset_config, dataset_config.train_split, seed))
    local = local_batch_size(global_batch, process_count)
    indices = StreamIndices(len(source), dataset_config.shuffle, seed, len(source) < INFINITE,
                            process_index, process_count, local)
    load = LoadStreamBatch(indices, LoadBatch(source, preprocess, seed + 1, local))
    return dataset_config, load, len(indices)


def train_dataset(dataset_config: Any, seed: int, global_batch: int, preprocess: Preprocess,
                  process_index: int = 0, process_count: int = 1,
                  keys: tuple[str, ...] | None = None) -> grain.IterDataset | InProcessBatches:
    """The training stream of this process's local batches (call `iter()` on it), holding
    only `keys` if given (the loop passes those its step reads: `train.batch_keys`).

    The example *indices* are shuffled, repeated, sharded and batched as grain's chain does
    (`StreamIndices`, a batch at a time); `LoadBatch` then reads
    each batch from the source in one call and preprocesses its examples (see
    `dl_arch.data.loader`). With `num_workers` grain's worker processes run that loader;
    without, the iterator calls it directly (`dl_arch.data.batch_iterator`). Either
    iterator's state is the number of batches consumed.
    """
    dataset_config, load, length = _train_batches(dataset_config, seed, global_batch,
                                                  preprocess, process_index, process_count)
    if keys is not None:
        load = KeepKeys(load, keys)
    workers = int(dataset_config.num_workers)
    if workers == 0:
        return InProcessBatches(load, length)
    from absl import flags

    if not flags.FLAGS.is_parsed():  # grain's workers read absl flags (library use, notebooks)
        flags.FLAGS.mark_as_parsed()
    return in_workers(grain.MapDataset.range(length).map(load), workers)


def in_workers(batches: grain.MapDataset, workers: int) -> grain.IterDataset:
    """`batches` read by `workers` grain worker processes (`READ_OPTIONS`, `WORKER_OPTIONS`)."""
    batches = grain.experimental.WithOptionsIterDataset(batches.to_iter_dataset(READ_OPTIONS),
                                                        WORKER_OPTIONS)
    return batches.mp_prefetch(grain.MultiprocessingOptions(num_workers=workers))


def first_train_batch(dataset_config: Any, seed: int, global_batch: int, preprocess: Preprocess,
                      process_index: int = 0, process_count: int = 1) -> Batch:
    """The first local batch `train_dataset` yields, read directly in this process: no
    iterator, read-ahead threads or worker processes are started for it."""
    _, load, _ = _train_batches(dataset_config, seed, global_batch, preprocess, process_index,
                                process_count)
    return load(0)


def eval_batches(dataset_config: Any, seed: int, global_batch: int, preprocess: Preprocess,
                 process_index: int = 0, process_count: int = 1, max_batches: int = 0
                 ) -> Iterator[Batch]:
    """This process's share of every eval batch, the last one padded; `_mask` marks real rows.

    Every process yields the same number of batches, so collectives never wait on a host
    that ran out of data.
    """
    dataset_config = resolve_dataset(dataset_config)
    source = make_source(dataset_config, dataset_config.eval_split, seed)
    n = len(source)
    if n >= INFINITE:
        raise ConfigError("config.dataset.num_eval_examples must be finite for evaluation")
    if n == 0:
        raise ConfigError(f"config.dataset: eval split '{dataset_config.eval_split}' is empty, so "
                          f"the run would evaluate nothing; give it examples "
                          f"(e.g. config.dataset.num_eval_examples)")
    local = local_batch_size(global_batch, process_count, "config.eval_batch_size")
    num_batches = -(-n // global_batch)
    if max_batches:
        num_batches = min(num_batches, max_batches)
    template = None  # the row that pads: the first real row of the first batch
    for b in range(num_batches):
        ids = b * global_batch + np.arange(local) * process_count + process_index
        real = ids[ids < n]
        rows = load_batch(source, preprocess, real, lambda j, real=real:
                          np.random.default_rng(int(real[j])), False) if len(real) else None
        if template is None:
            template = example_at(rows, slice(0, 1)) if rows is not None else load_batch(
                source, preprocess, np.zeros(1, np.int64), np.random.default_rng, False)
        if len(real) < local:
            rows = _padded(rows, template, local - len(real))
        batch = dict(rows)
        batch["_mask"] = (ids < n).astype(np.float32)
        yield batch


def _padded(rows: Batch | None, template: Batch, count: int) -> Batch:
    """`rows` (None: no rows) followed by `count` copies of the one-row batch `template`."""
    pad = example_at(template, np.zeros(count, np.int64))
    return pad if rows is None else concatenate_batches([rows, pad])
