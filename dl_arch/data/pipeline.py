"""grain input pipelines: one global batch per step, each process loading only its shard.

Training: source -> shuffle (reshuffled every epoch) -> repeat -> this process's slice
-> per-example preprocessing (deterministic per index) -> batch. Example `i` of the
global stream lands on process `i % process_count`, so the sequence of global batches
is the same whatever the number of processes. The iterator's state is checkpointed.

Evaluation: the whole split in order, padded to full batches; `_mask` marks real rows.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import grain
import numpy as np

from dl_arch.config.errors import ConfigError
from dl_arch.config.fields import Field, Fields
from dl_arch.data.sources.procedural import INFINITE
from dl_arch.data.tfds_source import TFDS_DATASET_FIELDS, is_tfds, tfds_dataset
from dl_arch.registry import DATASETS

# The dataset fields the pipeline reads for every source.
PIPELINE_FIELDS: Fields = {
    "train_split": Field("train", "split name to train on"),
    "eval_split": Field("test", "split name to evaluate on"),
    "shuffle": Field(True, "shuffle the training split (reshuffled every epoch)"),
    "num_workers": Field(0, "grain worker processes (0: in the main process)", low=0),
    "class_names": Field(None, "names of the classes, for plots and reports", kind=tuple),
}


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

Example = dict[str, Any]
Preprocess = Callable[[Example, np.random.Generator, bool], Example]


def make_source(dataset_config: Any, split: str, seed: int) -> Any:
    """A random-access source for `config.dataset.name` (a registered name or `tfds:<name>`)."""
    dataset_config = resolve_dataset(dataset_config)
    if is_tfds(dataset_config.name):
        return tfds_dataset(dataset_config, split)
    return DATASETS.get(dataset_config.name)(dataset_config, split, seed)


def standardize(example: Example) -> Example:
    """uint8 images become float32 in [0, 1], so every model sees the same convention."""
    image = example.get("image")
    if image is not None and np.asarray(image).dtype == np.uint8:
        example = dict(example, image=np.asarray(image, np.float32) / 255.0)
    return example


class _TrainTransform(grain.transforms.RandomMap):
    """Standardises then preprocesses one example with its own deterministic rng."""

    def __init__(self, preprocess: Preprocess):
        self.preprocess = preprocess

    def random_map(self, element: Example, rng: np.random.Generator) -> Example:
        return self.preprocess(standardize(dict(element)), rng, True)


def local_batch_size(global_batch: int, process_count: int, field: str = "config.batch_size") -> int:
    if global_batch % process_count:
        raise ConfigError(
            f"{field}={global_batch} must divide by the number of processes ({process_count})"
        )
    return global_batch // process_count


def train_dataset(dataset_config: Any, seed: int, global_batch: int, preprocess: Preprocess,
                  process_index: int = 0, process_count: int = 1) -> grain.IterDataset:
    """The training stream of this process's local batches (call `iter()` on it)."""
    dataset_config = resolve_dataset(dataset_config)
    source = make_source(dataset_config, dataset_config.train_split, seed)
    ds = grain.MapDataset.source(source)
    if dataset_config.shuffle:
        ds = ds.shuffle(seed=seed)
    if len(source) < INFINITE:
        ds = ds.repeat(None)
    ds = ds[process_index::process_count]
    ds = ds.random_map(_TrainTransform(preprocess), seed=seed + 1)
    ds = ds.batch(local_batch_size(global_batch, process_count), drop_remainder=True)
    it_ds = ds.to_iter_dataset()
    workers = int(dataset_config.num_workers)
    if workers > 0:
        from absl import flags

        if not flags.FLAGS.is_parsed():  # grain's workers read absl flags (library use, notebooks)
            flags.FLAGS.mark_as_parsed()
        it_ds = it_ds.mp_prefetch(grain.MultiprocessingOptions(num_workers=workers))
    return it_ds


def eval_batches(dataset_config: Any, seed: int, global_batch: int, preprocess: Preprocess,
                 process_index: int = 0, process_count: int = 1, max_batches: int = 0
                 ) -> Iterator[Example]:
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
    template = None
    for b in range(num_batches):
        rows, mask = [], []
        for j in range(local):
            i = b * global_batch + j * process_count + process_index
            if i < n:
                ex = preprocess(standardize(dict(source[i])), np.random.default_rng(i), False)
                template = template if template is not None else ex
                rows.append(ex)
                mask.append(1.0)
            else:
                rows.append(None)
                mask.append(0.0)
        if template is None:
            template = preprocess(standardize(dict(source[0])), np.random.default_rng(0), False)
        filled = [r if r is not None else template for r in rows]
        batch = {k: np.stack([np.asarray(r[k]) for r in filled]) for k in template}
        batch["_mask"] = np.asarray(mask, np.float32)
        yield batch
