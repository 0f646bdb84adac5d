"""Why the loop's prefetch queue holds a block and one more when small batches come in blocks.

    PYTHONPATH=. python docs/results/cpu_zen5_2026-12-05/queue_depth.py

`mlp_xor` at one step a call with its batches made slower (a sleep of 1 µs an example, off
the interpreter lock, as reading from disk would be), so that a batch costs about as much
as a step: the loop with its queue as landed (17 for these batches) against a queue of 2,
alternated for 3 rounds in one process (`benchmarks.bench_loop`'s `_config` and `loop_run`).
"""

from __future__ import annotations

import functools
import time

from benchmarks import bench_loop
from dl_arch.data import prefetch
from dl_arch.data.sources.points import PointSet
from dl_arch.train.host_memory import keep_freed_memory

make_batch = PointSet.make_batch


def slowed(self, rngs, indices):
    time.sleep(1e-6 * len(indices))
    return make_batch(self, rngs, indices)


class QueueOf:
    """`Prefetcher` with its queue size replaced by `size` (0: as the loop asks)."""

    size = 0
    original = prefetch.Prefetcher.__init__

    @classmethod
    def init(cls, self, iterator, place=lambda b: b, size=2):
        cls.original(self, iterator, place, cls.size or size)


def main() -> None:
    keep_freed_memory()
    PointSet.make_batch = slowed
    prefetch.Prefetcher.__init__ = lambda self, *a, **k: QueueOf.init(self, *a, **k)
    config = bench_loop._config("configs/mlp_xor.py", 3000, 0, 1)
    ways = {"as landed (17)": 0, "queue of 2": 2}
    runs = bench_loop.alternated_runs(config, {
        way: functools.partial(setattr, QueueOf, "size", size) for way, size in ways.items()})
    QueueOf.size = 0
    bare = bench_loop.bare_steps_per_sec(config, 3000)
    print(bench_loop.ab_lines("mlp_xor, batches slowed by 1 µs an example, one step a call",
                              runs, bare), flush=True)


if __name__ == "__main__":
    main()
