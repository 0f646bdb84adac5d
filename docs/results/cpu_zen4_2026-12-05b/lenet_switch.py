"""`lenet5_shapes`' loop (one step a call, no workers) at three interpreter switch intervals,
whole runs alternated in one process (`benchmarks.bench_loop`).

    PYTHONPATH=. python docs/results/cpu_zen4_2026-12-05b/lenet_switch.py
"""

import sys

from benchmarks.bench_loop import _config, ab_lines, alternated_runs, bare_steps_per_sec

config = _config("configs/lenet5_shapes.py", 1500, 0, 1, 0)
bare = bare_steps_per_sec(config, 1500)
ways = {"switch 5ms": lambda: sys.setswitchinterval(0.005),
        "switch 0.5ms": lambda: sys.setswitchinterval(0.0005),
        "switch 50ms": lambda: sys.setswitchinterval(0.05)}
print(ab_lines("lenet5_shapes w0", alternated_runs(config, ways, 3), bare), flush=True)
