"""The whole loop with its batches placed by the prefetch thread or left to the step's call.

    PYTHONPATH=. python docs/results/cpu_zen5_2026-12-04/loop_host_batches.py

`benchmarks.bench_loop`'s rows (its `_config` and `loop_run`: steady-state steps/s of
`train_and_evaluate`, its input wait and its input thread's CPU share), 3,000 steps, run
three times each way in one process, alternated: "placed" is `mesh.to_global` in the
prefetch thread (`jax.device_put`, as before stop 53), "host" is `mesh.to_step_input`, which
on one CPU device leaves the batch in host arrays for the step's call to place. The bare
step (one a call, `bench_loop.bare_steps_per_sec`) is timed once per row.
"""

from __future__ import annotations

import statistics

import dl_arch.train.loop as loop
from benchmarks.bench_loop import _config, bare_steps_per_sec, loop_run
from dl_arch.train import mesh as mesh_lib

ROWS = (("configs/mlp_xor.py", 0, 1, 0), ("configs/mlp_xor.py", 0, 16, 0),
        ("configs/mlp_xor.py", 0, 10, 8192), ("configs/lenet5_shapes.py", 0, 1, 0),
        ("configs/lstm_adding.py", 0, 1, 0))
STEPS = 3000


class _MeshWith:
    """`dl_arch.train.mesh` with `to_step_input` replaced, for the loop module to use."""

    def __init__(self, to_step_input):
        self.to_step_input = to_step_input

    def __getattr__(self, name):
        return getattr(mesh_lib, name)


WAYS = {"placed": _MeshWith(mesh_lib.to_global), "host": _MeshWith(mesh_lib.to_step_input)}


def main() -> None:
    for spec, workers, per_call, examples in ROWS:
        steps = STEPS if "lstm" not in spec and "lenet" not in spec else STEPS // 10
        runs: dict[str, list[tuple[float, float, float]]] = {k: [] for k in WAYS}
        for _ in range(3):
            for way, module in WAYS.items():
                loop.mesh_lib = module
                try:
                    runs[way].append(loop_run(_config(spec, steps, workers, per_call,
                                                      examples)))
                finally:
                    loop.mesh_lib = mesh_lib
        bare = bare_steps_per_sec(_config(spec, steps, workers, per_call, examples), steps)
        name = (f"{spec.split('/')[-1][:-3]} workers={workers} steps_per_call={per_call}"
                + (f" {examples} cached" if examples else ""))
        for way, r in runs.items():
            rate = statistics.median(x[0] for x in r)
            print(f"{name:48s} {way:6s} {rate:8.0f} steps/s ({rate / bare:.2f}x bare "
                  f"{bare:.0f})  runs {[round(x[0]) for x in r]}  input wait "
                  f"{[round(x[1], 2) for x in r]}  input busy {[round(x[2], 2) for x in r]}")


if __name__ == "__main__":
    main()
