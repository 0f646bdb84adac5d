"""Small datasets' shuffles: a whole epoch's permutation by the block's cipher table and
pointer doubling against the cycle walk (and grain's call per index for tiny ranges).

    PYTHONPATH=. python docs/results/cpu_zen5_2026-12-05/small_shuffles.py

First `index_shuffle` of a whole range of n indices (what `stream_indices` asks once an
epoch for a dataset of up to 65,536 examples), both ways in one process (the landed rule
takes the table up to 2^15 = 32,768 indices, so n=60000 reads the walk both ways), medians of 7
calls, the two outputs compared. Then `benchmarks.bench_loop`'s `mlp_xor` rows on finite
cached splits (its `_config` and `loop_run`, workers 0), alternated for 3 rounds: as landed
against `index_shuffle._TABLE_RANGE` 0 (the walk, as before). The bare step
(`bench_loop.bare_steps_per_sec`) once per row, after.
"""

from __future__ import annotations

import functools
import statistics
import time

import numpy as np

from benchmarks import bench_loop
from dl_arch.data import index_shuffle
from dl_arch.train.host_memory import keep_freed_memory

SIZES = (10, 100, 1100, 2000, 5000, 8192, 20000, 60000)
ROWS = ((1, 8192), (16, 8192), (1, 1100), (16, 1100))  # (steps per call, cached examples)
WAYS = {"table": index_shuffle._TABLE_RANGE, "walk": 0}


def _ms(n: int, seed: int = 7) -> float:
    times = []
    for _ in range(7):
        start = time.perf_counter()
        index_shuffle.index_shuffle(np.arange(n), n - 1, seed)
        times.append(time.perf_counter() - start)
    return 1e3 * statistics.median(times)


def main() -> None:
    keep_freed_memory()
    for n in SIZES:
        figures, outputs = {}, {}
        for way, bits in {"table": 1 << 16, "walk": 0}.items():
            index_shuffle._TABLE_RANGE = bits
            outputs[way] = index_shuffle.index_shuffle(np.arange(n), n - 1, 7)
            figures[way] = _ms(n)
        same = np.array_equal(outputs["table"], outputs["walk"])
        index_shuffle._TABLE_RANGE = WAYS["table"]
        print(f"n={n}: table {figures['table']:.2f} ms, walk {figures['walk']:.2f} ms "
              f"({figures['walk'] / figures['table']:.1f}x), same permutation: {same}",
              flush=True)
    for per_call, examples in ROWS:
        config = bench_loop._config("configs/mlp_xor.py", 20000, 0, per_call, examples)
        runs = bench_loop.alternated_runs(config, {
            way: functools.partial(setattr, index_shuffle, "_TABLE_RANGE", bits)
            for way, bits in WAYS.items()})
        index_shuffle._TABLE_RANGE = WAYS["table"]
        bare = bench_loop.bare_steps_per_sec(config, 20000)
        print(bench_loop.ab_lines(f"mlp_xor steps_per_call={per_call}, {examples} cached "
                                  f"examples", runs, bare), flush=True)


if __name__ == "__main__":
    main()
