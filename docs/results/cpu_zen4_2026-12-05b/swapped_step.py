"""The stop-62 A/B scripts' loop steps: a config's loop step traced with one module attribute
(a layer class the model looks up when traced) swapped, and whole steps of two such
programs alternated."""

import jax
import numpy as np

from benchmarks.harness import alternate
from benchmarks.loop_step import loop_stepper
from dl_arch.testing import load_config
from dl_arch.train.trainer import Trainer


def swapped_step(spec: str, module, name: str, value):
    """(run, first step's metrics) of `spec`'s loop step traced and compiled with
    `module.<name>` set to `value` (restored after)."""
    landed = getattr(module, name)
    setattr(module, name, value)
    try:
        trainer = Trainer(load_config(spec))
        run, held = loop_stepper(trainer, trainer.first_batch())
        jax.block_until_ready(run())  # traced and compiled here
        return run, jax.device_get(held["window"].stats)
    finally:
        setattr(module, name, landed)


def print_ab(spec: str, module, name: str, before, now, rounds: int = 3) -> None:
    """Checks that the two programs' first metrics agree, then prints `rounds` alternated
    timings of their steps (medians of `alternate`'s rounds)."""
    (run_before, stats_before), (run_now, stats_now) = (
        swapped_step(spec, module, name, before), swapped_step(spec, module, name, now))
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5),
                 stats_before, stats_now)
    for rnd in range(rounds):
        t_before, t_now = alternate([run_before, run_now])
        print(f"{spec} loop step, round {rnd}: before {t_before * 1e3:.2f} ms, now "
              f"{t_now * 1e3:.2f} ms, {t_before / t_now:.2f}x", flush=True)
