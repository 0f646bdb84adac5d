"""How grain's worker processes hand batches to the loop, before and after stop 54.

    PYTHONPATH=. python docs/results/cpu_zen5_2026-12-05/worker_handoff.py

Three parts, each in one process with the ways alternated:
1. `sizes`: one array of N bytes (and a small one) per element from 2 workers, the consumer
   pausing 2 ms an element: CPU per element of this process and of the workers (`HostCpu`),
   with every array in shared memory (grain's default) against pickled through its queue.
2. `pipeline`: `benchmarks.bench_pipeline`'s rows with 2 workers, ours only, old settings (a
   reading thread in each worker, every array in shared memory) against the new ones
   (`pipeline.READ_OPTIONS`, `pipeline.WORKER_OPTIONS`): seconds a batch and CPU a batch.
3. `loop`: `benchmarks.bench_loop`'s `lenet5_shapes` row with 2 workers, the same two ways.
"""

from __future__ import annotations

import statistics
import sys
import time

import grain
import numpy as np

import dl_arch.data.pipeline as pipeline
from benchmarks import bench_loop
from benchmarks.bench_pipeline import SOURCES, grain_mock
from dl_arch.testing import load_config
from dl_arch.train.host_cpu import HostCpu
from dl_arch.train.host_memory import keep_freed_memory
from dl_arch.train.trainer import Trainer

OLD = (grain.ReadOptions(num_threads=1, prefetch_buffer_size=2),
       grain.experimental.DatasetOptions(min_shm_size=0))
NEW = (pipeline.READ_OPTIONS, pipeline.WORKER_OPTIONS)
WAYS = {"old": OLD, "new": NEW}


class Filled:
    """Element i: an array of `nbytes` and 64 int32 labels."""

    def __init__(self, nbytes: int):
        self.count = nbytes // 4

    def __call__(self, i: int) -> dict[str, np.ndarray]:
        return {"x": np.full(self.count, i, np.float32), "y": np.arange(64, dtype=np.int32)}


def cpu_per_element(it, count: int, pause: float) -> tuple[float, float, float]:
    """(seconds, this process's CPU, the workers' CPU) per element, after 20 elements."""
    for _ in range(20):
        next(it)
    host = HostCpu()
    own, children, start = time.process_time(), host.children_seconds(), time.perf_counter()
    for _ in range(count):
        next(it)
        if pause:
            time.sleep(pause)
    return ((time.perf_counter() - start) / count, (time.process_time() - own) / count,
            (host.children_seconds() - children) / count)


def sizes() -> None:
    print("== sizes: ms of CPU an element, this process / the 2 workers, 2 rounds")
    for nbytes in (64 << 10, 256 << 10, 512 << 10, 1 << 20, 2 << 20, 4 << 20):
        runs = {"shared memory": [], "pickled": []}
        for _ in range(2):
            for way, min_size in (("shared memory", 0), ("pickled", 1 << 40)):
                pipeline.WORKER_OPTIONS = grain.experimental.DatasetOptions(min_shm_size=min_size)
                ds = pipeline.in_workers(grain.MapDataset.range(10**6).map(Filled(nbytes)), 2)
                it = iter(ds)
                runs[way].append(cpu_per_element(it, 300, 0.002))
                it.close()
        for way, r in runs.items():
            print(f"{nbytes >> 10:5d} KiB {way:13s}: this process "
                  + " ".join(f"{1e3 * x[1]:.2f}" for x in r) + " ms, workers "
                  + " ".join(f"{1e3 * x[2]:.2f}" for x in r) + " ms", flush=True)
    pipeline.WORKER_OPTIONS = NEW[1]


def pipeline_rows() -> None:
    print("== pipeline: bench_pipeline's sources, 2 workers, as fast as they come; "
          "medians of 3 rounds")
    for name, spec, mocked in SOURCES:
        with grain_mock(mocked):
            trainer = Trainer(load_config(spec))
            c = trainer.config
            c.dataset.num_workers = 2
            runs = {k: [] for k in WAYS}
            for _ in range(3):
                for way, (read, options) in WAYS.items():
                    pipeline.READ_OPTIONS, pipeline.WORKER_OPTIONS = read, options
                    it = iter(pipeline.train_dataset(c.dataset, 0, c.batch_size,
                                                     trainer.task.preprocess))
                    runs[way].append(cpu_per_element(it, 100, 0.0))
                    it.close()
            for way, r in runs.items():
                wall, own, workers = (statistics.median(x[i] for x in r) for i in range(3))
                print(f"{name:18s} b={c.batch_size:3d} {way}: {1e3 * wall:.3f} ms a batch "
                      f"({c.batch_size / wall:,.0f} ex/s), CPU a batch: this process "
                      f"{1e3 * own:.2f} ms, workers {1e3 * workers:.2f} ms", flush=True)
    pipeline.READ_OPTIONS, pipeline.WORKER_OPTIONS = NEW


def loop() -> None:
    print("== loop: lenet5_shapes, 2 workers, 600 steps; 3 rounds")
    config = bench_loop._config("configs/lenet5_shapes.py", 600, 2)
    runs = {k: [] for k in WAYS}
    for _ in range(3):
        for way, (read, options) in WAYS.items():
            pipeline.READ_OPTIONS, pipeline.WORKER_OPTIONS = read, options
            runs[way].append(bench_loop.loop_run(config))
    pipeline.READ_OPTIONS, pipeline.WORKER_OPTIONS = NEW
    bare, bare_cpu = bench_loop.bare_run(config, 600)
    print(f"bare step: {bare:.0f} steps/s, CPU {1e3 * bare_cpu / bare:.2f} ms a step")
    for way, r in runs.items():
        print(f"{way}: {bench_loop.runs_line(r, bare)}", flush=True)

def main() -> None:
    keep_freed_memory()
    from absl import flags

    flags.FLAGS.mark_as_parsed()
    parts = sys.argv[1:] or ["sizes", "pipeline", "loop"]
    for part in parts:
        {"sizes": sizes, "pipeline": pipeline_rows, "loop": loop}[part]()


if __name__ == "__main__":
    main()
