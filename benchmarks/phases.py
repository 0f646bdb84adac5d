"""Where a model row's train step spends its time: forward, backward, optimiser + metrics.

    text = phase_text(loss_fn, args, step, quick)   # "fwd=1.2 ms bwd=2.5 ms opt+metrics=0.4 ms"

Three functions, each jitted separately and timed in alternating rounds in one process
(`harness.alternate`): the loss alone, `jax.value_and_grad` of the loss, and the row's own
whole train step. bwd is (fwd+bwd) - fwd and opt+metrics is step - (fwd+bwd), so the three
add up to the step; a difference under the timing noise can come out slightly negative.
`trainer_loss` gives the loss and arguments of a `Trainer`'s step.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax

from benchmarks.harness import alternate
from dl_arch.tasks.base import ALL
from dl_arch.train.compile_options import model_jit

NO_LOSS = "phases: n/a (no loss function to split)"


def phase_text(loss_fn: Callable[..., Any], args: Callable[[], tuple],
               step: Callable[[], Any] | None, quick: bool, has_aux: bool = False) -> str:
    """'fwd=… ms bwd=… ms opt+metrics=… ms' of one row.

    `loss_fn(*args())` returns the scalar loss (or `(loss, aux)` with `has_aux`); gradients
    are taken w.r.t. the first argument. `args` is called before every run, as the row's
    step may donate the buffers of the previous state. `step` runs the row's whole jitted
    step (what the row times); None for rows that time forward+backward only, which then
    report fwd and bwd."""
    fwd = model_jit(loss_fn)
    fwd_bwd = model_jit(jax.value_and_grad(loss_fn, has_aux=has_aux))
    fns = [lambda: fwd(*args()), lambda: fwd_bwd(*args())]
    if step is not None:
        fns.append(step)
    times = alternate(fns, quick)
    text = f"fwd={times[0] * 1e3:.3f} ms bwd={(times[1] - times[0]) * 1e3:.3f} ms"
    if step is None:
        return text + " (no optimiser step)"
    return text + f" opt+metrics={(times[2] - times[1]) * 1e3:.3f} ms"


def trainer_loss(trainer: Any, state: Callable[[], Any], batch: dict
                 ) -> tuple[Callable[..., Any], Callable[[], tuple]]:
    """(loss_fn, args) for `phase_text` of a `Trainer`'s step on `batch`.

    The loss sums the task's loss of every update the step makes (`steps_per_phase`; a GAN:
    discriminator then generator), each on the parameters it updates, so the gradient of
    the sum w.r.t. the first argument (one parameter tree per update) is the step's
    gradients. Every update sees the current state (the step's later updates see the
    earlier ones' results: the same work). `state()` returns the current train state."""
    task = trainer.task
    updates = [p for p, k in task.steps_per_phase.items() for _ in range(k)]

    def loss_fn(subs, params, mutable, batch, rng, step):
        rng, total = jax.random.fold_in(rng, step), 0.0
        for i, (phase, sub) in enumerate(zip(updates, subs)):
            full = sub if phase == ALL else {**params, phase: sub}
            loss, _ = task.loss(phase, full, mutable, batch, jax.random.fold_in(rng, i))
            total = total + loss
        return total

    def args():
        s = state()
        subs = tuple(s.params if p == ALL else s.params[p] for p in updates)
        return subs, s.params, s.mutable, batch, s.rng, s.step

    return loss_fn, args
