"""The loop with a log row's scalars as one TensorBoard event against one event a scalar.

    PYTHONPATH=. python docs/results/cpu_zen5_2026-12-05/tensorboard_events.py

First the writer alone: host time a call and process CPU a row (tensorboardX's writer
thread included, to its close) of `MetricWriter.write_scalars` with a 12-scalar row, both
ways. Then `benchmarks.bench_loop`'s rows (its `_config` and `loop_run`, workers 0, a row
every 50 steps), alternated for 3 rounds in one process: as landed (one `Summary` of all
the row's values, `writers._tensorboard_scalars`) against `SummaryWriter.add_scalar` per
scalar (as before). The bare step (`bench_loop.bare_steps_per_sec`) once per row, after.
"""

from __future__ import annotations

import functools
import tempfile
import time

import numpy as np

from benchmarks import bench_loop
from dl_arch.train import writers
from dl_arch.train.host_memory import keep_freed_memory

ROWS = (("configs/mlp_xor.py", 1, 20000), ("configs/mlp_xor.py", 10, 20000),
        ("configs/lstm_adding.py", 1, 300), ("configs/lenet5_shapes.py", 1, 300))
ROW = {f"train/metric_{i}": 0.1 * i for i in range(12)}


def _per_scalar(self, step, metrics):
    """`write_scalars` as it was: one `add_scalar` (one event) a scalar."""
    if not self.active:
        return
    row = {"step": int(step), **{k: writers._jsonable(v) for k, v in metrics.items()}}
    self._jsonl.write(writers.json.dumps(row) + "\n")
    self._jsonl.flush()
    if self._tb is not None:
        for k, v in metrics.items():
            if np.ndim(v) == 0:
                self._tb.add_scalar(k, float(v), int(step))


WAYS = {"one event a row": writers.MetricWriter.write_scalars,
        "one event a scalar": _per_scalar}


def _writer_alone(rows: int = 2000) -> str:
    with tempfile.TemporaryDirectory() as workdir:
        writer = writers.MetricWriter(workdir)
        for step in range(50):  # warm: the writer thread started, imports done
            writer.write_scalars(step, ROW)
        cpu, wall = time.process_time(), time.perf_counter()
        for step in range(rows):
            writer.write_scalars(step, ROW)
        call = (time.perf_counter() - wall) / rows
        writer.close()
        return f"{1e6 * call:.0f} µs a call, {1e6 * (time.process_time() - cpu) / rows:.0f} µs CPU a row"


def main() -> None:
    keep_freed_memory()
    for _ in range(2):
        for way, method in WAYS.items():
            writers.MetricWriter.write_scalars = method
            print(f"writer alone, {way}: {_writer_alone()}", flush=True)
    for spec, per_call, steps in ROWS:
        config = bench_loop._config(spec, steps, 0, per_call)
        runs = bench_loop.alternated_runs(config, {
            way: functools.partial(setattr, writers.MetricWriter, "write_scalars", method)
            for way, method in WAYS.items()})
        writers.MetricWriter.write_scalars = WAYS["one event a row"]
        bare = bench_loop.bare_steps_per_sec(config, steps)
        print(bench_loop.ab_lines(f"{spec.split('/')[-1][:-3]} steps_per_call={per_call}",
                                  runs, bare), flush=True)


if __name__ == "__main__":
    main()
