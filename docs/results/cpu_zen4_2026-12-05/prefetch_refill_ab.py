"""A/B of the loop at one commit (before) and the working tree (now), in one process.

    PYTHONPATH=. python docs/results/cpu_zen4_2026-12-05/prefetch_refill_ab.py \
        [BEFORE_COMMIT] [STEPS_PER_CALL] [EXAMPLES] [CONFIG] [STEPS]

"Before" is `dl_arch/train/loop.py` and `dl_arch/data/prefetch.py` as BEFORE_COMMIT has them
(default 5e8a268: the prefetch queue woken on every batch, the loop reading its intervals
from the config each step), loaded from git beside the working tree's; whole runs of
`benchmarks.bench_loop` alternate between the two, three rounds (EXAMPLES 0: endless).
"""

from dl_arch.train.host_memory import keep_freed_memory

keep_freed_memory()

import subprocess  # noqa: E402
import sys  # noqa: E402
import types  # noqa: E402

import benchmarks.bench_loop as B  # noqa: E402
from dl_arch.train import loop as now  # noqa: E402


def module_from(commit: str, path: str, name: str, replace=()) -> types.ModuleType:
    """The module at `path` as `commit` has it, imported under `name`."""
    source = subprocess.check_output(["git", "show", f"{commit}:{path}"], text=True)
    for old, new in replace:
        assert old in source, old
        source = source.replace(old, new)
    module = types.ModuleType(name)
    sys.modules[name] = module
    exec(compile(source, f"{commit}:{path}", "exec"), module.__dict__)
    return module


args = sys.argv[1:] + [None] * 5
commit = args[0] or "5e8a268"
per_call, examples = int(args[1] or 1), int(args[2] or 0)
spec, steps = args[3] or "configs/mlp_xor.py", int(args[4] or 20000)
module_from(commit, "dl_arch/data/prefetch.py", "prefetch_before")
before = module_from(commit, "dl_arch/train/loop.py", "loop_before",
                     [("from dl_arch.data.prefetch import Prefetcher",
                       "from prefetch_before import Prefetcher")])
config = B._config(spec, steps, 0, per_call, examples)
bare = B.bare_steps_per_sec(config, steps)


def use(module):
    return lambda: setattr(B, "train_and_evaluate", module.train_and_evaluate)


runs = B.alternated_runs(config, {"before": use(before), "now": use(now)}, rounds=3)
print(B.ab_lines(f"{spec}, {per_call} a call, examples {examples or 'endless'}", runs, bare))
