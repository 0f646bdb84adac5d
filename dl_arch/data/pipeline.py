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

from dl_arch.data.sources.procedural import INFINITE
from dl_arch.data.tfds_source import is_tfds, tfds_source
from dl_arch.registry import DATASETS

Example = dict[str, Any]
Preprocess = Callable[[Example, np.random.Generator, bool], Example]


def make_source(dataset_config: Any, split: str, seed: int) -> Any:
    """A random-access source for `config.dataset.name` (a registered name or `tfds:<name>`)."""
    if is_tfds(dataset_config.name):
        return tfds_source(dataset_config, split)
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
        raise ValueError(
            f"{field}={global_batch} must divide by the number of processes ({process_count})"
        )
    return global_batch // process_count


def train_dataset(dataset_config: Any, seed: int, global_batch: int, preprocess: Preprocess,
                  process_index: int = 0, process_count: int = 1) -> grain.IterDataset:
    """The training stream of this process's local batches (call `iter()` on it)."""
    source = make_source(dataset_config, dataset_config.get("train_split", "train"), seed)
    ds = grain.MapDataset.source(source)
    if dataset_config.get("shuffle", True):
        ds = ds.shuffle(seed=seed)
    if len(source) < INFINITE:
        ds = ds.repeat(None)
    ds = ds[process_index::process_count]
    ds = ds.random_map(_TrainTransform(preprocess), seed=seed + 1)
    ds = ds.batch(local_batch_size(global_batch, process_count), drop_remainder=True)
    it_ds = ds.to_iter_dataset()
    workers = int(dataset_config.get("num_workers", 0))
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
    source = make_source(dataset_config, dataset_config.get("eval_split", "test"), seed)
    n = len(source)
    if n >= INFINITE:
        raise ValueError("config.dataset.num_eval_examples must be finite for evaluation")
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
