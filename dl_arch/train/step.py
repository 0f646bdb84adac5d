"""The pure step functions of the shared loop: one train step for every task.

`train_step(state, batch, *, task, txs, schedules, grad_accum_steps, freeze)` runs each
of the task's phases in order (one for most tasks; discriminator then generator for a
GAN): gradients of that phase's loss w.r.t. that phase's parameters, averaged over
micro-batches when accumulating, then that phase's optimiser. It is jitted once by the
loop (with shardings and state donation) and is testable un-jitted.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
import optax

from dl_arch.config.errors import ConfigError
from dl_arch.tasks.base import ALL, Task
from dl_arch.train.paths import regex_mask
from dl_arch.train.state import TrainState


def _phase_params(params: Any, phase: str) -> Any:
    return params if phase == ALL else params[phase]


def _with_phase_params(params: Any, phase: str, sub: Any) -> Any:
    return sub if phase == ALL else {**params, phase: sub}


def _split_microbatches(batch: dict[str, jax.Array], n: int) -> dict[str, jax.Array]:
    """[B, ...] -> [n, B/n, ...] taking rows j::n, so every micro-batch spans every device."""
    def split(x):
        if x.shape[0] % n:
            raise ConfigError(f"config.batch_size ({x.shape[0]}) must divide by "
                             f"config.grad_accum_steps ({n})")
        return jnp.swapaxes(x.reshape(x.shape[0] // n, n, *x.shape[1:]), 0, 1)
    return jax.tree_util.tree_map(split, batch)


def _grads(task: Task, phase: str, params: Any, mutable: dict, batch: dict, rng: jax.Array,
           grad_accum_steps: int):
    """(mean loss, mean grads w.r.t. the phase's params, last metrics, new mutable)."""
    def loss_fn(sub, mut, b, r):
        loss, (metrics, new_mut) = task.loss(phase, _with_phase_params(params, phase, sub), mut, b, r)
        return loss, (metrics, new_mut)

    grad_fn = jax.value_and_grad(loss_fn, has_aux=True)
    sub = _phase_params(params, phase)
    if grad_accum_steps == 1:
        (loss, (metrics, mutable)), grads = grad_fn(sub, mutable, batch, rng)
        return loss, grads, metrics, mutable

    micro = _split_microbatches(batch, grad_accum_steps)

    def body(carry, xs):
        mut, grad_sum, loss_sum = carry
        b, i = xs
        (loss, (metrics, mut)), g = grad_fn(sub, mut, b, jax.random.fold_in(rng, i))
        grad_sum = jax.tree_util.tree_map(jnp.add, grad_sum, g)
        return (mut, grad_sum, loss_sum + loss), metrics

    zeros = jax.tree_util.tree_map(jnp.zeros_like, sub)
    (mutable, grad_sum, loss_sum), metrics = jax.lax.scan(
        body, (mutable, zeros, jnp.zeros((), jnp.float32)),
        (micro, jnp.arange(grad_accum_steps)))
    scale = 1.0 / grad_accum_steps
    grads = jax.tree_util.tree_map(lambda g: g * scale, grad_sum)
    metrics = jax.tree_util.tree_map(lambda m: jnp.mean(m, axis=0), metrics)
    return loss_sum * scale, grads, metrics, mutable


def _keep_frozen(old: Any, new: Any, freeze: Sequence[str]) -> Any:
    """Mutable collections (BatchNorm statistics) of frozen modules keep their old values."""
    if not freeze:
        return new
    out = {}
    for name, coll in new.items():
        mask = regex_mask(coll, freeze)
        out[name] = jax.tree_util.tree_map(lambda m, o, n: o if m else n, mask, old[name], coll)
    return out


def train_step(state: TrainState, batch: dict[str, jax.Array], *, task: Task,
               txs: dict[str, optax.GradientTransformation],
               schedules: dict[str, optax.Schedule], grad_accum_steps: int = 1,
               freeze: Sequence[str] = ()) -> tuple[TrainState, dict[str, jax.Array]]:
    """One optimisation step over every phase of the task; returns (new state, metrics)."""
    rng = jax.random.fold_in(state.rng, state.step)
    params, mutable, opt_state = state.params, state.mutable, dict(state.opt_state)
    metrics: dict[str, jax.Array] = {}
    for i, phase in enumerate(task.phases):
        loss, grads, phase_metrics, new_mutable = _grads(
            task, phase, params, mutable, batch, jax.random.fold_in(rng, i), grad_accum_steps)
        mutable = _keep_frozen(mutable, new_mutable, freeze)
        sub = _phase_params(params, phase)
        updates, opt_state[phase] = txs[phase].update(grads, opt_state[phase], sub)
        sub = optax.apply_updates(sub, updates)
        params = _with_phase_params(params, phase, sub)
        prefix = "" if phase == ALL else f"{phase}/"
        metrics[f"{prefix}loss"] = loss
        metrics.update({f"{prefix}{k}": v for k, v in phase_metrics.items()})
        metrics[f"{prefix}grad_norm"] = optax.tree.norm(grads)
        metrics[f"{prefix}update_norm"] = optax.tree.norm(updates)
        metrics[f"{prefix}param_norm"] = optax.tree.norm(sub)
        metrics[f"{prefix}learning_rate"] = schedules[phase](state.step)
    new_state = state.replace(step=state.step + 1, params=params, opt_state=opt_state,
                              mutable=mutable)
    return new_state, metrics


def eval_step(state: TrainState, batch: dict[str, jax.Array], *, task: Task) -> dict[str, Any]:
    """The task's (sum, count) metric pairs for one padded eval batch."""
    return task.eval_metrics({"params": state.params, **state.mutable}, batch)
