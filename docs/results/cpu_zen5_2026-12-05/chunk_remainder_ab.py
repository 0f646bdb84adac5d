"""A/B (stop 60): `mlp_xor`'s whole loop at 16 steps a call with a log row every 50 steps,
alternated in one process: the code before (the 2 steps left before each log row run one a
call, and a chunk read past the last block of batches reads just what it lacks) against
one shorter call (`chunks.chunk_end` now) with each such read starting a new block
(`BatchIterator._read_new` now), and each change alone; then the loop as it is with log
rows every 48 and every 800 steps (16 divides both: no shorter chunks), which bounds what
the log rows themselves cost. (Both sides place the empty metric window once.)

    PYTHONPATH=. python docs/results/cpu_zen5_2026-12-05/chunk_remainder_ab.py [ROUNDS]
"""

import sys

from benchmarks.bench_loop import _config, ab_lines, alternated_runs, bare_steps_per_sec
from dl_arch.data.batch_iterator import BatchIterator
from dl_arch.train import chunks

NOW = chunks.chunk_end
NOW_READ = BatchIterator._read_new


def before(step, config):
    """chunk_end as it was: k steps on, or one step where k would pass the next action."""
    k = int(config.steps_per_call)
    return step + k if step + k <= chunks.next_action(step, config) else step + 1


def read_before(self, first, count):
    """A read of several batches past the last block, as it was: just those batches."""
    if count == 1 or not self._block_size:
        return NOW_READ(self, first, count)
    return self._load.many(first, count)


def use(rule, read):
    def set_up():
        chunks.chunk_end = rule
        BatchIterator._read_new = read
    return set_up


def main():
    rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 3
    config = _config("configs/mlp_xor.py", 20000, 0, 16, 0)
    bare = bare_steps_per_sec(config, 20000)
    runs = alternated_runs(config, {"before": use(before, read_before),
                                    "shorter call": use(NOW, read_before),
                                    "new blocks": use(before, NOW_READ),
                                    "now": use(NOW, NOW_READ)}, rounds)
    print(ab_lines("mlp_xor, 16 a call, log every 50", runs, bare), flush=True)
    for every in (48, 800):
        config.log_every_steps = every
        runs = alternated_runs(config, {"now": use(NOW, NOW_READ)}, rounds)
        print(ab_lines(f"mlp_xor, 16 a call, log every {every}", runs, bare), flush=True)


if __name__ == "__main__":
    main()
