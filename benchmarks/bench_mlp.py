"""MLP train step: ours (Flax module + the loop's step) vs the same step in plain jax.

Both do forward, softmax cross-entropy, backward and an Adam update on the same batch;
the plain version has no Flax, no optax chain and no metrics, so the ratio is the cost of
our abstractions (ours sums its metrics on the device and computes the norms only at
logging steps, as in the loop). Also reports the step's MFU against the machine's measured
matmul peak. Rows: the MLP of `configs/mlp_shapes.py` (a step of milliseconds) and the tiny
one of `configs/mlp_xor.py` (2-32-32-2, a step of about a hundred microseconds, timed over
many steps back to back), where per-step extras weigh most, also against the same MLP
stepped by the config's own optax optimiser (the issue's "plain jax+optax" reference) and
run 16 steps a call as `config.steps_per_call` lets the loop run it (the plain step still
one a call).
"""

from __future__ import annotations

import functools
import os

import jax
import jax.numpy as jnp
import optax

from benchmarks.harness import Row, compare, mfu_text, peak_matmul_flops
from benchmarks.loop_step import loop_stepper
from benchmarks.phases import phase_text, trainer_loss
from dl_arch.testing import load_config
from dl_arch.train.flops import step_flops
from dl_arch.train.optimizers import build_optimizer
from dl_arch.train.trainer import Trainer


def _plain_mlp(sizes):
    """(init, loss_fn) of the MLP in jax.numpy: (kernel, bias) pairs, ReLU between them,
    softmax cross-entropy."""
    def init(rng):
        params = []
        for a, b in zip(sizes[:-1], sizes[1:]):
            rng, k = jax.random.split(rng)
            params.append((jax.random.normal(k, (a, b)) / jnp.sqrt(a), jnp.zeros((b,))))
        return params

    def loss_fn(params, x, y):
        h = x.reshape(x.shape[0], -1)
        for i, (w, b) in enumerate(params):
            h = h @ w + b[None]
            if i < len(params) - 1:
                h = jax.nn.relu(h)
        logp = jax.nn.log_softmax(h)
        return -jnp.mean(jnp.take_along_axis(logp, y[:, None], 1))

    return init, loss_fn


def _plain_step(sizes):
    """Hand-written MLP + Adam in jax.numpy: the reference with nothing beside jax."""
    init_params, loss_fn = _plain_mlp(sizes)

    def init(rng):
        params = init_params(rng)
        zeros = lambda: jax.tree_util.tree_map(jnp.zeros_like, params)
        return params, zeros(), zeros(), jnp.zeros((), jnp.int32)

    @functools.partial(jax.jit, donate_argnums=(0,))
    def step(state, x, y):
        params, m, v, t = state
        loss, g = jax.value_and_grad(loss_fn)(params, x, y)
        t = t + 1
        m = jax.tree_util.tree_map(lambda m, g: 0.9 * m + 0.1 * g, m, g)
        v = jax.tree_util.tree_map(lambda v, g: 0.999 * v + 0.001 * g * g, v, g)
        c1, c2 = 1 - 0.9**t, 1 - 0.999**t
        params = jax.tree_util.tree_map(
            lambda p, m, v: p - 1e-3 * (m / c1) / (jnp.sqrt(v / c2) + 1e-8), params, m, v)
        return (params, m, v, t), loss

    return init, step


def _optax_step(sizes, tx: optax.GradientTransformation):
    """The same MLP stepped by an optax transformation: the issue's "plain jax+optax" step
    (no Flax, no metrics, no metric window)."""
    init_params, loss_fn = _plain_mlp(sizes)

    def init(rng):
        params = init_params(rng)
        return params, tx.init(params)

    @functools.partial(jax.jit, donate_argnums=(0,))
    def step(state, x, y):
        params, opt_state = state
        loss, g = jax.value_and_grad(loss_fn)(params, x, y)
        updates, opt_state = tx.update(g, opt_state, params)
        return (optax.apply_updates(params, updates), opt_state), loss

    return init, step


def _row(spec: str, batch_size: int, calls: int, quick: bool, per_call: int = 1,
         with_optax: bool = False) -> Row:
    """Our loop step against the plain step on `spec`'s first batch; each timed run makes
    `calls` steps back to back (the per-step time is reported), so a tiny step is timed as
    the loop runs it rather than as one call's round trip. `per_call` > 1: ours runs that
    many steps a call (`config.steps_per_call`, the same batch stacked), the plain step one.
    `with_optax`: the reference steps with the config's own optax optimiser (for `mlp_xor`
    Adam with its cosine schedule) instead of the hand-written Adam."""
    config = load_config(spec)
    config.batch_size = batch_size
    trainer = Trainer(config)
    batch = trainer.first_batch()
    state = trainer.init_state(batch)
    # what the loop runs: norms only at logging steps
    call, holder = loop_stepper(trainer, batch, state, per_call)
    batch = jax.device_put(batch)

    def run_ours():
        for _ in range(calls // per_call):
            last = call()
        return last

    x = batch["image"] if "image" in batch else batch["inputs"]
    in_dim = 1
    for d in x.shape[1:]:
        in_dim *= d
    sizes = [in_dim, *trainer.task.model.layer_sizes, config.model.num_classes]
    if with_optax:
        init, plain = _optax_step(sizes, build_optimizer(config.optimizer,
                                                         config.num_train_steps)[0])
    else:
        init, plain = _plain_step(sizes)
    ref = {"state": init(jax.random.PRNGKey(0))}
    y = batch["label"]

    def run_ref():
        for _ in range(calls):
            ref["state"], loss = plain(ref["state"], x, y)
        return loss

    flops = step_flops(trainer.train_step(donate=False), holder["state"], batch)
    row = compare(f"mlp train step ({os.path.basename(spec)[:-3]}, b={batch_size}, "
                  f"{in_dim}-{'-'.join(map(str, sizes[1:]))}"
                  + (f", {per_call} a call" if per_call > 1 else "") + ")",
                  run_ours, run_ref, "plain-jax+optax" if with_optax else "plain-jax", quick,
                  extra=lambda s: f"ex/s={batch_size * calls / s:,.0f} "
                                  f"{mfu_text(flops * calls, s, quick)}")
    row.ours_s /= calls
    row.ref_s /= calls
    if calls == 1:
        loss_fn, args = trainer_loss(trainer, lambda: holder["state"], batch)
        row.extra += " " + phase_text(loss_fn, args, run_ours, quick)
    return row


def rows(quick: bool):
    peak = peak_matmul_flops(quick)
    return [Row(f"peak matmul ({jax.default_backend()}, measured)", 0.0,
                extra=f"{peak / 1e9:,.1f} GFLOP/s"),
            _row("configs/mlp_shapes.py", 128 if quick else 512, 1, quick),
            _row("configs/mlp_xor.py", 64, 100 if quick else 500, quick),
            _row("configs/mlp_xor.py", 64, 100 if quick else 500, quick, with_optax=True),
            _row("configs/mlp_xor.py", 64, 160 if quick else 800, quick, per_call=16)]
