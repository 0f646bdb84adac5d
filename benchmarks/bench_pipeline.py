"""Input-pipeline throughput: batched reading (ours) against reading example by example.

    python -m benchmarks.run --only pipeline [--quick]

Sources: the 2-D `xor` points (the MLP config), `shapes` (LeNet-5's config and
augmentation), the byte-level `text` windows (the GPT config) and a TFDS source
(`tfds:mnist` under `tfds.testing.mock_data`, LeNet-5's MNIST preprocessing), each with
`num_workers` 0 and 2: seconds per local batch of `train_dataset` (ours) against the
per-example grain pipeline it replaced (source -> shuffle -> repeat -> random_map(preprocess)
-> batch, kept here only as the reference), both read the same way (in the calling thread,
or in `pipeline.in_workers`' processes), so the ratio is the cost of per-example reading.
Both give the same batches
(tests/test_pipeline_batches.py). `ex/s` is examples per second.
"""

from __future__ import annotations

import contextlib
import statistics
import time
from collections.abc import Callable, Iterator
from typing import Any

import grain

from benchmarks.harness import Row
from dl_arch.data import pipeline
from dl_arch.data.loader import standardize
from dl_arch.data.sources.procedural import INFINITE
from dl_arch.testing import load_config
from dl_arch.train.trainer import Trainer

# (row name, config, whether the source is a mocked TFDS dataset)
SOURCES = (("xor", "configs/mlp_xor.py", False),
           ("shapes", "configs/lenet5_shapes.py", False),
           ("text", "configs/gpt_text.py", False),
           ("tfds:mnist (mock)", "configs/lenet5_mnist.py", True))


def per_example_dataset(dataset_config: Any, seed: int, batch: int,
                        preprocess: Callable) -> grain.IterDataset:
    """The training stream as it was built before batched reading: the reference."""
    c = pipeline.resolve_dataset(dataset_config)
    source = pipeline.make_source(c, c.train_split, seed)
    ds = grain.MapDataset.source(source)
    if c.shuffle:
        ds = ds.shuffle(seed=seed)
    if len(source) < INFINITE:
        ds = ds.repeat(None)
    ds = ds.random_map(lambda ex, rng: preprocess(standardize(dict(ex)), rng, True),
                       seed=seed + 1)
    ds = ds.batch(batch, drop_remainder=True)
    if c.num_workers > 0:
        return pipeline.in_workers(ds, c.num_workers)
    return ds.to_iter_dataset(pipeline.READ_OPTIONS)


def seconds_per_batch(ds: grain.IterDataset, count: int, warmup: int) -> float:
    """Steady-state seconds per batch: a fresh iterator, `warmup` batches before the clock
    starts (every worker process spawned and past its first batch), then `count` batches;
    the iterator is closed after."""
    it = iter(ds)
    try:
        for _ in range(warmup):
            next(it)
        t0 = time.perf_counter()
        for _ in range(count):
            next(it)
        return (time.perf_counter() - t0) / count
    finally:
        it.close()


def rows(quick: bool) -> Iterator[Row]:
    """One row per (source, num_workers): medians over rounds that alternate ours and the
    reference, each on its own iterator (so no pipeline fills its buffers during the
    other's measurement)."""
    count, rounds = (8, 1) if quick else (48, 3)
    for name, spec, mocked in SOURCES:
        with grain_mock(mocked):
            trainer = Trainer(load_config(spec))
            c, preprocess = trainer.config, trainer.task.preprocess
            batch = c.batch_size
            for workers in (0, 2):
                c.dataset.num_workers = workers
                ours, ref = [], []
                warmup = 1 + 3 * workers
                for _ in range(rounds):
                    ours.append(seconds_per_batch(
                        pipeline.train_dataset(c.dataset, 0, batch, preprocess), count, warmup))
                    ref.append(seconds_per_batch(
                        per_example_dataset(c.dataset, 0, batch, preprocess), count, warmup))
                ours_s, ref_s = statistics.median(ours), statistics.median(ref)
                yield Row(f"pipeline {name} b={batch} workers={workers}", ours_s, ref_s,
                          "per-example", extra=f"ex/s={batch / ours_s:,.0f} "
                                                f"(per-example {batch / ref_s:,.0f})")


def grain_mock(mocked: bool) -> contextlib.AbstractContextManager:
    """`tfds.testing.mock_data` for the TFDS row (random examples, no download)."""
    if not mocked:
        return contextlib.nullcontext()
    import tensorflow_datasets as tfds

    return tfds.testing.mock_data(num_examples=2048)
