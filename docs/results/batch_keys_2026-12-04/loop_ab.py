"""The loop's steps/s with the batch keys its step never reads dropped (as landed) and kept
(the probe patched to report none), in one process, alternated: `lenet5_shapes` and
`mlp_shapes` with 2 grain workers, 800 steps, three rounds. A record of how the figures in
docs/results/benchmarks.md were taken (log: loop_ab.log); from the repository root:
`PYTHONPATH=. python docs/results/batch_keys_2026-12-04/loop_ab.py`.
"""
from benchmarks.bench_loop import _config, loop_run
from dl_arch.train import loop

PROBE = loop.probe_step


def keep_all(*args):
    return PROBE(*args)[0], ()


if __name__ == "__main__":
    for spec in ("configs/mlp_shapes.py", "configs/lenet5_shapes.py"):
        res = {"dropped": [], "kept": []}
        for rnd in range(3):
            for name, fn in (("dropped", PROBE), ("kept", keep_all)):
                loop.probe_step = fn
                rate, wait, busy = loop_run(_config(spec, 800, 2))[:3]
                res[name].append(rate)
                print(spec, rnd, name, f"{rate:.1f} steps/s wait={wait:.0%} busy={busy:.0%}",
                      flush=True)
        print(spec, {k: sorted(round(x, 1) for x in v) for k, v in res.items()}, flush=True)
