"""The loop step's four kernel cuts of stop 53, each undone in turn, against a plain step.

    PYTHONPATH=. python docs/results/cpu_zen5_2026-12-04/loop_step_kernels.py [CONFIG]
    PYTHONPATH=. python docs/results/cpu_zen5_2026-12-04/loop_step_kernels.py --graph [CONFIG]

Variants of `Trainer.loop_step` (CONFIG defaults to configs/mlp_xor.py), all built in one
process; "before" undoes all four cuts, "as is" none, the others one each:
  window: the metric window of ce1570c (nine arrays; loaded with `git show`);
  donated: the window donated to the step, as before;
  norms: one reduction per tree again (no one reduction over the stacked trees);
  gather: the cross-entropy's label picked by `take_along_axis` (a scatter in backward).
Timing: medians of 9 alternated rounds of CALLS calls back to back, and for `mlp_xor` the
same MLP stepped by plain jax+optax (`benchmarks.bench_mlp._optax_step`).

`--graph` instead compiles each variant once in a child process with XLA:CPU's thunk
executor logging its dependency graph (TF_CPP_VMODULE=thunk_executor=6), and replays the
executor's first-in first-out ready queue on it: a queue longer than 8 after a pop is
where the executor hands half of it to another thread (`kSplitThreshold` in XLA's
thunk.h), a wake-up a step of tens of microseconds pays.
"""

from __future__ import annotations

import importlib.util
import os
import re
import statistics
import subprocess
import sys
import time

import jax
import jax.numpy as jnp
import optax

import dl_arch.tasks.classification as classification
import dl_arch.train.metric_window as metric_window
import dl_arch.train.step as step_lib
from benchmarks.bench_mlp import _optax_step
from dl_arch.testing import load_config
from dl_arch.train.compile_options import model_jit
from dl_arch.train.optimizers import build_optimizer
from dl_arch.train.trainer import Trainer

CUTS = ("window", "donated", "norms", "gather")
VARIANTS = {"before": CUTS, "as is": (), **{f"{c} undone": (c,) for c in CUTS}}
MARK = "=====variant "


def _old_window_module():
    """dl_arch/train/metric_window.py as it was at ce1570c, as a module."""
    source = subprocess.run(["git", "show", "ce1570c:dl_arch/train/metric_window.py"],
                            capture_output=True, text=True, check=True).stdout
    spec = importlib.util.spec_from_loader("metric_window_ce1570c", loader=None)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # flax dataclasses look their module up
    exec(compile(source, "metric_window_ce1570c.py", "exec"), module.__dict__)
    return module


def _norms_per_tree(wanted, *trees):
    """The norms as before: a scalar per tree, each its own reduction, in a cond."""
    def compute():
        return tuple(jnp.sqrt(jnp.sum(step_lib._squares(t))) for t in trees)

    zeros = lambda: tuple(jnp.zeros((), jnp.float32) for _ in trees)  # noqa: E731
    if isinstance(wanted, bool):
        return compute() if wanted else zeros()
    return jax.lax.cond(wanted, compute, zeros)


def _gathered_cross_entropy(logits, labels, label_smoothing=0.0):
    assert not label_smoothing
    return optax.softmax_cross_entropy_with_integer_labels(logits.astype(jnp.float32), labels)


def build(spec: str, undone: tuple[str, ...]):
    """A zero-argument call of the loop step with the cuts in `undone` reverted."""
    old_window = _old_window_module() if "window" in undone else metric_window
    saved = (metric_window.fresh, metric_window.add, step_lib._norms,
             classification.cross_entropy)
    metric_window.fresh, metric_window.add = old_window.fresh, old_window.add
    if "norms" in undone:
        step_lib._norms = _norms_per_tree
    if "gather" in undone:
        classification.cross_entropy = _gathered_cross_entropy
    try:
        trainer = Trainer(load_config(spec))
        if "donated" in undone:
            trainer._jit_loop = lambda fn, sharding: model_jit(fn, donate_argnums=(0, 2))
        batch = trainer.first_batch()
        state = trainer.init_state(batch)
        held = {"state": state, "batch": jax.device_put(batch),
                "window": jax.device_put(metric_window.fresh(trainer.metric_shapes(state,
                                                                                   batch)))}
        # compiled now, while the reverted code is in place (a later retrace would not be)
        step = trainer.loop_step().lower(held["state"], held["batch"], held["window"]).compile()

        def call():
            held["state"], held["window"], ticket = step(held["state"], held["batch"],
                                                         held["window"])
            return ticket

        jax.block_until_ready(call())
        return call
    finally:
        (metric_window.fresh, metric_window.add, step_lib._norms,
         classification.cross_entropy) = saved


def plain(spec: str):
    """The same MLP stepped by plain jax and the config's optax optimiser."""
    config = load_config(spec)
    trainer = Trainer(config)
    batch = jax.device_put(trainer.first_batch())
    sizes = [batch["inputs"].shape[-1], *trainer.task.model.layer_sizes,
             config.model.num_classes]
    init, step = _optax_step(sizes, build_optimizer(config.optimizer,
                                                    config.num_train_steps)[0])
    held = {"state": init(jax.random.PRNGKey(0))}

    def call():
        held["state"], loss = step(held["state"], batch["inputs"], batch["label"])
        return loss

    jax.block_until_ready(call())
    return call


def time_all(spec: str) -> None:
    calls = {name: build(spec, undone) for name, undone in VARIANTS.items()}
    if spec.endswith("mlp_xor.py"):
        calls["plain jax+optax"] = plain(spec)
    n = int(os.environ.get("CALLS", 2000))
    times: dict[str, list[float]] = {k: [] for k in calls}
    for _ in range(9):
        for name, call in calls.items():
            start = time.perf_counter()
            for _ in range(n):
                out = call()
            jax.block_until_ready(out)
            times[name].append((time.perf_counter() - start) / n * 1e6)
    for name, us in times.items():
        print(f"{name:16s} median {statistics.median(us):8.1f} µs  "
              f"{[round(t) for t in us]}")


def replay(log: str) -> None:
    """Per variant, the loop step's executor graph (the last large one compiled) replayed
    through a first-in first-out ready queue."""
    for part in log.split(MARK)[1:]:
        name = part.splitlines()[0]
        graphs = [g for g in re.split(r"ThunkExecutor: #thunks=", part)[1:]
                  if int(g.split()[0]) > 20]
        rows = re.findall(r"thunk #\d+: op_name=([^,]+), kind=[^,]+, dependencies=\[([^\]]*)\]",
                          graphs[-1])
        index = {op: i for i, (op, _) in enumerate(rows)}
        waits = [len([d for d in deps.split(",") if d.strip()]) for _, deps in rows]
        users: list[list[int]] = [[] for _ in rows]
        for i, (_, deps) in enumerate(rows):
            for d in filter(None, map(str.strip, deps.split(","))):
                users[index[d]].append(i)
        ready = [i for i, w in enumerate(waits) if w == 0]
        sources, splits, longest = len(ready), 0, 0
        while ready:
            node = ready.pop(0)
            longest = max(longest, len(ready))
            splits += len(ready) > 8
            for u in users[node]:
                waits[u] -= 1
                if waits[u] == 0:
                    ready.append(u)
        print(f"{name:16s} thunks {len(rows):3d}  sources {sources:2d}  "
              f"longest queue after a pop {longest:2d}  pops past 8: {splits}")


def graph(spec: str) -> None:
    if os.environ.get("LOOP_STEP_KERNELS_CHILD"):
        for name, undone in VARIANTS.items():
            print(MARK + name, file=sys.stderr, flush=True)
            build(spec, undone)
        return
    env = dict(os.environ, LOOP_STEP_KERNELS_CHILD="1", TF_CPP_MIN_LOG_LEVEL="0",
               TF_CPP_VMODULE="thunk_executor=6")
    child = subprocess.run([sys.executable, __file__, "--graph", spec], env=env,
                           capture_output=True, text=True, check=True)
    replay(child.stderr)


if __name__ == "__main__":
    args = [a for a in sys.argv[1:] if a != "--graph"]
    config_spec = args[0] if args else "configs/mlp_xor.py"
    (graph if "--graph" in sys.argv else time_all)(config_spec)
