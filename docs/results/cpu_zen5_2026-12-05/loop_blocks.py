"""The loop with small batches read in blocks (stop 54) against one at a time, one process.

    PYTHONPATH=. python docs/results/cpu_zen5_2026-12-05/loop_blocks.py

`benchmarks.bench_loop`'s rows (its `_config` and `loop_run`, workers 0), alternated for 3
rounds: as landed (`batch_iterator.BLOCK_BYTES` 64 KiB: batches under it read 16 at a time,
the prefetch queue a block deeper) against `BLOCK_BYTES` 0 (every batch read alone, the
queue 2 deep, as before). The bare step (`bench_loop.bare_steps_per_sec`) once per row, after.
"""

from __future__ import annotations

import functools

from benchmarks import bench_loop
from dl_arch.data import batch_iterator
from dl_arch.train.host_memory import keep_freed_memory

ROWS = (("configs/mlp_xor.py", 1, 3000), ("configs/mlp_xor.py", 16, 3000),
        ("configs/lstm_adding.py", 1, 300), ("configs/lenet5_shapes.py", 1, 300))
WAYS = {"blocks": batch_iterator.BLOCK_BYTES, "one at a time": 0}


def main() -> None:
    keep_freed_memory()
    for spec, per_call, steps in ROWS:
        config = bench_loop._config(spec, steps, 0, per_call)
        runs = bench_loop.alternated_runs(config, {
            way: functools.partial(setattr, batch_iterator, "BLOCK_BYTES", limit)
            for way, limit in WAYS.items()})
        batch_iterator.BLOCK_BYTES = WAYS["blocks"]
        bare = bench_loop.bare_steps_per_sec(config, steps)
        print(bench_loop.ab_lines(f"{spec.split('/')[-1][:-3]} steps_per_call={per_call}",
                                  runs, bare), flush=True)


if __name__ == "__main__":
    main()
