"""XLA:CPU's concurrency-optimised scheduler, on and off (4 December 2026, stop 52).

    PYTHONPATH=. python docs/results/cpu_zen5_2026-12-04/scheduler_check.py
    XLA_FLAGS=--xla_cpu_enable_concurrency_optimized_scheduler=false PYTHONPATH=. python ...

Prints (1) the GPT benchmark step's temporary memory compiled as is and with the option off
as a per-compile option (`compiler_options`), which shows whether the per-compile option
reaches the CPU scheduler (it did not: only XLA_FLAGS changes it), and (2) the tiny
`mlp_xor` steps, medians of 7 alternated rounds of 3,000 calls: the plain jax step of
`benchmarks.bench_mlp`, our step returning only its loss (no norms, no metric window), and
the loop step `train_and_evaluate` runs.
"""

from __future__ import annotations

import os
import statistics
import time

import jax
import numpy as np

from benchmarks.bench_mlp import _plain_step
from benchmarks.bench_transformer import _gpt, _jax_train_step
from benchmarks.loop_step import loop_stepper
from dl_arch.testing import load_config
from dl_arch.train.compile_options import model_jit
from dl_arch.train.trainer import Trainer

OPTION = "xla_cpu_enable_concurrency_optimized_scheduler"
CALLS = 3000


def temp_mib() -> tuple[float, float]:
    tokens = jax.random.randint(jax.random.key(0), (4, 129), 0, 256)
    step, state, _ = _jax_train_step(_gpt(128, 2, 4, 256, 128), tokens)
    lowered = step.lower(state)
    sizes = [c.memory_analysis().temp_size_in_bytes / 2**20
             for c in (lowered.compile(), lowered.compile(compiler_options={OPTION: False}))]
    return sizes[0], sizes[1]


def per_call_us(call) -> float:
    start = time.perf_counter()
    for _ in range(CALLS):
        out = call()
    jax.block_until_ready(out)
    return (time.perf_counter() - start) / CALLS * 1e6


def tiny_steps() -> dict[str, float]:
    trainer = Trainer(load_config("configs/mlp_xor.py"))
    batch = trainer.first_batch()
    placed = jax.device_put(batch)
    step_fn = trainer.step_fn()
    held = {"state": jax.device_put(jax.tree_util.tree_map(np.asarray, trainer.init_state(batch)))}
    loss_only = model_jit(lambda s, b: (lambda r: (r[0], r[1]["loss"]))(step_fn(s, b, norms=False)),
                          donate_argnums=(0,))

    def ours_loss_only():
        held["state"], loss = loss_only(held["state"], placed)
        return loss

    loop, _ = loop_stepper(trainer, batch)
    init, plain = _plain_step([2, 32, 32, 2])
    ref = {"state": init(jax.random.PRNGKey(0))}

    def plain_step():
        ref["state"], loss = plain(ref["state"], placed["inputs"], placed["label"])
        return loss

    calls = {"plain jax": plain_step, "ours, loss only": ours_loss_only, "ours, loop step": loop}
    for call in calls.values():
        jax.block_until_ready(call())
    times: dict[str, list[float]] = {k: [] for k in calls}
    for _ in range(7):
        for name, call in calls.items():
            times[name].append(per_call_us(call))
    return {k: statistics.median(v) for k, v in times.items()}


if __name__ == "__main__":
    print(f"XLA_FLAGS={os.environ.get('XLA_FLAGS', '')!r}")
    default, per_compile_off = temp_mib()
    print(f"GPT quick step temp memory: compiled as is {default:.1f} MiB, "
          f"per-compile {OPTION}=False {per_compile_off:.1f} MiB")
    for name, us in tiny_steps().items():
        print(f"mlp_xor {name:16s} {us:6.1f} us a step")
