"""A `Trainer`'s loop step on one batch, for the rows that time a model's step as a run takes it.

`train_and_evaluate` runs `Trainer.loop_step` (or `loop_chunk` with `steps_per_call` > 1):
the train metrics summed on the device and the gradient, update and parameter norms
computed only at logging steps. `Trainer.train_step` computes the norms at every step, so a
row timing it would charge every step for what only logging steps pay.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp

from dl_arch.train import metric_window


def loop_stepper(trainer: Any, batch: dict, state: Any = None, per_call: int = 1
                 ) -> tuple[Callable[[], Any], dict[str, Any]]:
    """(run, held): `run()` makes one call of the loop step on `batch` (of `loop_chunk` over
    `per_call` copies of it), the state donated, both it and the metric window replaced in
    `held`, and returns the window's stats (what to wait on). `held` also has the jitted
    `step` and the placed `batch` it is called with, for its FLOPs or its HLO."""
    state = trainer.init_state(batch) if state is None else state
    window = jax.device_put(metric_window.fresh(trainer.metric_shapes(state, batch)),
                            trainer.replicated)  # committed, as the step's outputs are
    batch = jax.device_put(batch)
    if per_call > 1:
        batch = jax.tree_util.tree_map(lambda x: jnp.stack([x] * per_call), batch)
    step = trainer.loop_step() if per_call == 1 else trainer.loop_chunk()
    held = {"state": state, "window": window, "step": step, "batch": batch}

    def run() -> Any:
        held["state"], held["window"], _ = step(held["state"], batch, held["window"])
        return held["window"].stats

    return run, held
