"""From a plain jax+optax step to our tiny `mlp_xor` step, one difference at a time (stop 52).

    PYTHONPATH=. python docs/results/cpu_zen5_2026-12-04/counter_bridge.py

Each variant is jitted with its state donated and timed back to back on the config's first
batch; medians of 7 alternated rounds of 3,000 calls, default XLA flags. The lead it shows:
a step counter incremented in the state (`t + 1`) compiles to a scalar kernel of its own
that nothing reads, and the step slows by about 20 µs; the same increment fused into the
loss's kernel does not slow it. Not a change: that form (`t + (loss >= -inf)`) would not
advance the counter on a NaN loss.
"""

from __future__ import annotations

import functools
import statistics
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax

from benchmarks.bench_mlp import _plain_mlp
from dl_arch.testing import load_config
from dl_arch.train.optimizers import build_optimizer
from dl_arch.train.trainer import Trainer

CALLS = 3000


def _timed(step, state, x, y):
    """A zero-argument call of `step` on a held, donated state."""
    held = {"state": jax.device_put(state)}

    def call():
        held["state"], loss = step(held["state"], x, y)
        return loss

    return call


def main() -> None:
    config = load_config("configs/mlp_xor.py")
    trainer = Trainer(config)
    batch = jax.device_put(trainer.first_batch())
    x, y = batch["inputs"], batch["label"]
    state = trainer.init_state(batch)
    tx = build_optimizer(config.optimizer, config.num_train_steps)[0]
    task, model = trainer.task, trainer.task.model
    flax_params = jax.tree_util.tree_map(np.asarray, state.params)
    init_plain, plain_loss = _plain_mlp([2, 32, 32, 2])

    def plain_ce(logits, labels):
        return -jnp.mean(jnp.take_along_axis(jax.nn.log_softmax(logits), labels[:, None], 1))

    def task_loss(p, x_, y_):
        return task.loss("all", p, {}, {"inputs": x_, "label": y_}, jax.random.PRNGKey(0))[0]

    def optax_step(loss_of_params, counter=None):
        """(params, opt_state[, t]) -> the same after one step; `counter` says how t moves."""
        @functools.partial(jax.jit, donate_argnums=(0,))
        def step(s, x_, y_):
            params, opt_state = s[:2]
            loss, grads = jax.value_and_grad(loss_of_params)(params, x_, y_)
            updates, opt_state = tx.update(grads, opt_state, params)
            new = (optax.apply_updates(params, updates), opt_state)
            if counter == "plus one":
                new += (s[2] + 1,)
            elif counter == "after the loss":
                new += (s[2] + (loss >= -jnp.inf).astype(jnp.int32),)
            elif counter == "behind a barrier":
                new += (jax.lax.optimization_barrier((s[2], loss))[0] + 1,)
            return new, loss
        return step

    def with_state(params, counter=False):
        s = (params, tx.init(params))
        return s + (jnp.zeros((), jnp.int32),) if counter else s

    plain_params = init_plain(jax.random.PRNGKey(0))
    step_fn = trainer.step_fn()
    ours = jax.jit(lambda s, b, _: (lambda r: (r[0], r[1]["loss"]))(step_fn(s, b, norms=False)),
                   donate_argnums=(0,))
    calls = {
        "plain jax+optax": _timed(optax_step(plain_loss), with_state(plain_params), x, y),
        "+ our Flax MLP": _timed(optax_step(lambda p, a, b: plain_ce(model.apply({"params": p}, a), b)),
                                 with_state(flax_params), x, y),
        "+ our task's loss": _timed(optax_step(task_loss), with_state(flax_params), x, y),
        "+ step counter t + 1": _timed(optax_step(task_loss, "plus one"),
                                       with_state(flax_params, True), x, y),
        "counter after the loss": _timed(optax_step(task_loss, "after the loss"),
                                         with_state(flax_params, True), x, y),
        "counter behind a barrier": _timed(optax_step(task_loss, "behind a barrier"),
                                           with_state(flax_params, True), x, y),
        "ours, loss only": _timed(ours, jax.tree_util.tree_map(np.asarray, state), batch, None),
    }
    for call in calls.values():
        jax.block_until_ready(call())
    times: dict[str, list[float]] = {k: [] for k in calls}
    for _ in range(7):
        for name, call in calls.items():
            start = time.perf_counter()
            for _ in range(CALLS):
                out = call()
            jax.block_until_ready(out)
            times[name].append((time.perf_counter() - start) / CALLS * 1e6)
    for name, us in times.items():
        print(f"{name:26s} {statistics.median(us):6.1f} µs  {[round(t) for t in us]}")


if __name__ == "__main__":
    main()
