"""The pure step functions of the shared loop: one train step for every task.

`train_step(state, batch, *, task, txs, schedules, grad_accum_steps, freeze, ema_decay)`
runs each of the task's phases in order, `task.steps_per_phase[phase]` times (one update
for most tasks; k discriminator updates then one generator update for a GAN): gradients
of that phase's loss w.r.t. that phase's parameters, averaged over micro-batches when
accumulating, then that phase's optimiser. With `ema_decay` > 0 the parameter average is
then moved towards the new parameters once (`optax.incremental_update`). It is jitted
once by the Trainer (with shardings and state donation) and is testable un-jitted.
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


NORMS = ("grad_norm", "update_norm", "param_norm")  # per phase, computed when `norms`


# Up to this many numbers a tree, `global_norms` sums the squares of all trees in one
# reduction; above it, one per tree. Measured on a 2-core CPU (docs/results/benchmarks.md):
# the one reduction takes 12 µs against 56 for three trees of 762 numbers, but 146 against
# 62 µs at 77k numbers and 1.05 against 0.18 ms at 0.85M (`mlp_shapes`).
FUSED_NORMS_MAX_SIZE = 1 << 14


def _squares(tree: Any) -> jax.Array:
    """A tree's numbers squared in float32, raveled and concatenated (squared first: XLA:CPU
    reduces a concatenation of raveled 2-D leaves about 40x slower, 14 ms against 0.4 ms
    for `mlp_shapes`' 0.8M parameters)."""
    return jnp.concatenate([jnp.square(x.astype(jnp.float32)).ravel()
                            for x in jax.tree_util.tree_leaves(tree)])


def global_norms(*trees: Any) -> tuple[jax.Array, ...]:
    """The l2 norm of each of the trees, which have the same sizes (a gradient, its update,
    the parameters): one f32 scalar a tree. Small trees are summed in one reduction over
    their stacked squares: on CPU each reduction is a kernel of its own, and XLA splits the
    reduction of a concatenation into one per leaf. `mlp_xor`'s loop step took 47-50 µs
    against 60-61 with one reduction per tree, though the norms run at logging steps only.
    Large trees get one reduction each, which XLA vectorises better. (Returned as a vector,
    those reductions made XLA:CPU's legacy emitters at LLVM -O1 use gigabytes compiling
    U-Net's loop step: tests/test_segmentation_training.py.)"""
    if not jax.tree_util.tree_leaves(trees):
        return _zero_norms(len(trees))
    rows = [_squares(t) for t in trees]
    if rows[0].size <= FUSED_NORMS_MAX_SIZE:
        norms = jnp.sqrt(jnp.sum(jnp.stack(rows), axis=1))
        return tuple(norms[i] for i in range(len(trees)))
    return tuple(jnp.sqrt(jnp.sum(r)) for r in rows)


def _zero_norms(count: int) -> tuple[jax.Array, ...]:
    """`count` zero norms: what a step that skips the norms logs."""
    return tuple(jnp.zeros((), jnp.float32) for _ in range(count))


def _norms(wanted: bool | jax.Array, *trees: Any) -> tuple[jax.Array, ...]:
    """The global l2 norm of each tree, or zeros when not `wanted` (only one branch runs)."""
    if isinstance(wanted, bool):
        return global_norms(*trees) if wanted else _zero_norms(len(trees))
    return jax.lax.cond(wanted, lambda: global_norms(*trees), lambda: _zero_norms(len(trees)))


def train_step(state: TrainState, batch: dict[str, jax.Array], *, task: Task,
               txs: dict[str, optax.GradientTransformation],
               schedules: dict[str, optax.Schedule], grad_accum_steps: int = 1,
               freeze: Sequence[str] = (), ema_decay: float = 0.0,
               norms: bool | jax.Array = True) -> tuple[TrainState, dict[str, jax.Array]]:
    """One optimisation step over every phase of the task; returns (new state, metrics).

    A phase updated k times logs the metrics of its last update. `norms` (a traced bool in
    the loop: true at logging steps) says whether the gradient, update and parameter norms
    are computed; they are 0 when not, so a small model's steps pay for them only when
    they are logged."""
    rng = jax.random.fold_in(state.rng, state.step)
    params, mutable, opt_state = state.params, state.mutable, dict(state.opt_state)
    metrics: dict[str, jax.Array] = {}
    updates_in_order = [p for p, k in task.steps_per_phase.items() for _ in range(k)]
    for i, phase in enumerate(updates_in_order):
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
        for name, value in zip(NORMS, _norms(norms, grads, updates, sub)):
            metrics[f"{prefix}{name}"] = value
        metrics[f"{prefix}learning_rate"] = schedules[phase](state.step)
    ema = state.ema
    if ema_decay > 0:
        ema = optax.incremental_update(params, ema, step_size=1.0 - ema_decay)
    new_state = state.replace(step=state.step + 1, params=params, opt_state=opt_state,
                              mutable=mutable, ema=ema)
    return new_state, metrics


def eval_variables(state: TrainState, use_ema: bool = True) -> dict[str, Any]:
    """The variables evaluation uses: the parameter average when one is kept (and wanted)."""
    params = state.ema if use_ema and state.ema is not None else state.params
    return {"params": params, **state.mutable}


def eval_step(state: TrainState, batch: dict[str, jax.Array], *, task: Task,
              use_ema: bool = True) -> dict[str, Any]:
    """The task's (sum, count) metric pairs for one padded eval batch."""
    return task.eval_metrics(eval_variables(state, use_ema), batch)
