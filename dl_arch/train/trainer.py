"""The Trainer: the one place where a run's task, optimisers, train state and steps are built.

    trainer = Trainer(config)                 # resolves the config, builds task + optimisers
    batch = trainer.first_batch()             # a global batch, checked against the task
    state = trainer.init_state(batch)         # born in its sharding (init_from applied)
    state, metrics = trainer.train_step()(state, batch)
    totals = trainer.eval_step()(state, batch)  # (sum, count) pairs of the task's metrics

The loop, `dl_arch.testing`, the tests, the benchmarks and the experiment probes all use it,
so the key split of `config.seed`, the shardings and the step's arguments are written once.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections

from dl_arch.config.resolve import resolve_config
from dl_arch.data.pipeline import first_train_batch, train_dataset
from dl_arch.registry import TASKS
from dl_arch.tasks.base import ALL, Task
from dl_arch.train import mesh as mesh_lib
from dl_arch.train.batch_keys import probe_step
from dl_arch.train.compile_options import model_jit, run_once_compiler_options
from dl_arch.train.optimizers import build_optimizer
from dl_arch.train.paths import check_patterns
from dl_arch.train.state import TrainState
from dl_arch.train.step import eval_step, eval_variables, train_step


def build_task(config: ml_collections.ConfigDict) -> Task:
    """The task of a config, built on its resolved form (every declared field present)."""
    config = resolve_config(config)
    return TASKS.get(config.task.name)(config)


def build_txs(config: ml_collections.ConfigDict, task: Task) -> tuple[dict, dict]:
    """One (optax transformation, schedule) per task phase (on the resolved config)."""
    config = resolve_config(config)
    txs, schedules = {}, {}
    for phase in task.phases:
        opt = ml_collections.ConfigDict(config.optimizer.to_dict())
        if phase != ALL and phase in config.phase_optimizers:
            opt.update(config.phase_optimizers[phase].to_dict())
        txs[phase], schedules[phase] = build_optimizer(opt, config.num_train_steps,
                                                       tuple(config.freeze))
    return txs, schedules


class Trainer:
    """Builds everything a run's steps need from one resolved config (see the module doc)."""

    def __init__(self, config: ml_collections.ConfigDict, mesh: Any = None,
                 task: Task | None = None):
        self.config = resolve_config(config)
        self.mesh = mesh if mesh is not None else mesh_lib.make_mesh()
        self.task = task if task is not None else build_task(self.config)
        self.txs, self.schedules = build_txs(self.config, self.task)
        self.freeze = tuple(self.config.freeze)
        self.replicated = mesh_lib.replicated(self.mesh)

    # ----- data
    def _stream_args(self) -> tuple:
        """What this process's training stream is made of: (dataset section, seed, global
        batch size, preprocessing, process index, process count)."""
        c = self.config
        return (c.dataset, c.seed, c.batch_size, self.task.preprocess, jax.process_index(),
                jax.process_count())

    def train_dataset(self, keys: tuple[str, ...] | None = None) -> Any:
        """This process's stream of local training batches (`iter()` it; checkpointable),
        holding only `keys` if given."""
        return train_dataset(*self._stream_args(), keys=keys)

    def first_batch(self) -> dict[str, jax.Array]:
        """The run's first global training batch, checked against the task's needs (read
        directly: no second pipeline with its own worker processes beside the run's)."""
        local = first_train_batch(*self._stream_args())
        self.task.check_batch(local)
        return mesh_lib.to_global(local, self.mesh)

    # ----- state
    def keys(self) -> tuple[jax.Array, jax.Array]:
        """(init key, state key): the one split of `config.seed` every user of a run shares."""
        init_rng, state_rng = jax.random.split(jax.random.PRNGKey(self.config.seed))
        return init_rng, state_rng

    def init_variables(self, batch: dict[str, Any]) -> dict[str, Any]:
        """The run's initial variables: those of its fresh train state (before init_from)."""
        state = self.init_state(batch, init_from=False)
        return {"params": state.params, **state.mutable}

    def opt_state(self, params: Any) -> dict[str, Any]:
        """Fresh optimiser state of every phase for `params`."""
        return {p: self.txs[p].init(params if p == ALL else params[p]) for p in self.task.phases}

    def _init(self, batch: dict[str, Any]) -> TrainState:
        variables = dict(self.task.init_variables(self.keys()[0], batch))
        params = variables.pop("params")
        return TrainState(step=jnp.zeros((), jnp.int32), params=params,
                          opt_state=self.opt_state(params), mutable=variables, rng=self.keys()[1],
                          ema=self.fresh_ema(params))

    def fresh_ema(self, params: Any) -> Any:
        """The parameter average at the start: the parameters (None when ema_decay is 0)."""
        return jax.tree_util.tree_map(jnp.copy, params) if self.config.ema_decay > 0 else None

    def abstract_state(self, batch: dict[str, Any]) -> TrainState:
        """Shapes, dtypes and shardings of the train state, without computing it."""
        abstract = jax.eval_shape(functools.partial(self._init, batch))
        if self.freeze:
            check_patterns(self.freeze, abstract.params)
        return jax.tree_util.tree_map(
            lambda a: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=self.replicated), abstract)

    def state_sharding(self, abstract: TrainState) -> TrainState:
        """Where each array of the state lives (replicated: data parallelism)."""
        return jax.tree_util.tree_map(lambda _: self.replicated, abstract)

    def init_state(self, batch: dict[str, Any], init_from: bool = True) -> TrainState:
        """A fresh train state born in its sharding; `config.init_from` loaded if set."""
        sharding = self.state_sharding(self.abstract_state(batch))
        state = jax.jit(functools.partial(self._init, batch), out_shardings=sharding,
                        compiler_options=run_once_compiler_options())()
        if init_from and self.config.init_from:
            from dl_arch.train.transfer import load_pretrained

            params, mutable = load_pretrained(state.params, state.mutable, self.config.init_from,
                                              model_config=self.config.model)
            state = jax.device_put(state.replace(params=params, mutable=mutable,
                                                 opt_state=self.opt_state(params),
                                                 ema=self.fresh_ema(params)), sharding)
        return state

    # ----- steps
    def step_fn(self) -> Callable[[TrainState, dict], tuple[TrainState, dict]]:
        """The pure, un-jitted train step with this run's task and optimisers bound."""
        return functools.partial(train_step, task=self.task, txs=self.txs,
                                 schedules=self.schedules,
                                 grad_accum_steps=self.config.grad_accum_steps,
                                 freeze=self.freeze, ema_decay=self.config.ema_decay)

    def train_step(self, sharding: Any = None, donate: bool = True,
                   compiler_options: dict[str, Any] | None = None) -> Callable:
        """The jitted train step (state donated; state and metrics in their shardings;
        `compiler_options`: XLA options of its compile, over the backend's
        `model_compiler_options` and XLA_FLAGS)."""
        out = None if sharding is None else (sharding, self.replicated)
        return model_jit(self.step_fn(), out_shardings=out,
                         donate_argnums=(0,) if donate else (), compiler_options=compiler_options)

    def loop_step_fn(self) -> Callable:
        """The pure loop step: `(state, batch, window) -> (state, window, ticket)`, the
        train metrics summed on the device (`metric_window`), norms computed at logging
        steps only; `ticket` is the step number."""
        from dl_arch.train import metric_window

        c = self.config
        step_fn = self.step_fn()

        def step(state: TrainState, batch: dict, window: metric_window.Window
                 ) -> tuple[TrainState, metric_window.Window, jax.Array]:
            number = state.step + 1
            norms = (number % c.log_every_steps == 0) | (number == c.num_train_steps)
            state, metrics = step_fn(state, batch, norms=norms)
            return state, metric_window.add(window, metrics, number, norms,
                                            c.divergence_factor), number

        return step

    def loop_step(self, sharding: Any = None) -> Callable:
        """The loop's jitted step (`loop_step_fn`). The state is donated; the ticket is what
        the loop waits on to bound how far the host runs ahead of the device."""
        return self._jit_loop(self.loop_step_fn(), sharding)

    def loop_chunk(self, sharding: Any = None) -> Callable:
        """`loop_step` over a chunk of steps in one call: `(state, batches, window) ->
        (state, window, ticket)`, `batches` stacked along a leading axis of steps (one
        `lax.scan`; see `dl_arch.train.chunks`). Compiled once per chunk length."""
        step = self.loop_step_fn()

        def chunk(state: TrainState, batches: dict, window: Any) -> tuple[TrainState, Any,
                                                                          jax.Array]:
            def body(carry: tuple[TrainState, Any], batch: dict) -> tuple[Any, jax.Array]:
                state, window, number = step(carry[0], batch, carry[1])
                return (state, window), number

            (state, window), numbers = jax.lax.scan(body, (state, window), batches)
            return state, window, numbers[-1]

        return self._jit_loop(chunk, sharding)

    def _jit_loop(self, fn: Callable, sharding: Any) -> Callable:
        """`fn(state, batch, window) -> (state, window, ticket)` jitted, the state donated
        and placed by `sharding` (None: as jit decides). The window is not donated: its
        few numbers gain nothing from reusing their buffers, and donated, XLA:CPU copied
        them before each step (`mlp_xor`'s step paid 14-26 µs for them; benchmarks.md)."""
        out = None if sharding is None else (sharding, self.replicated, self.replicated)
        return model_jit(fn, out_shardings=out, donate_argnums=(0,))

    def metric_shapes(self, state: TrainState, batch: dict) -> dict[str, Any]:
        """Shapes of the train metrics one step returns (nothing is computed; the trace the
        loop also reads its unread batch keys from, `train.batch_keys.probe_step`)."""
        return probe_step(self.step_fn(), state, batch)[0]

    def eval_step(self) -> Callable[[TrainState, dict], dict]:
        """The jitted eval step: the task's (sum, count) pairs for one padded batch."""
        return model_jit(functools.partial(eval_step, task=self.task,
                                           use_ema=self.config.eval_with_ema),
                         out_shardings=self.replicated)

    def eval_variables(self, state: TrainState) -> dict[str, Any]:
        """The variables eval metrics, evaluators and --sample use (see `eval_with_ema`)."""
        return eval_variables(state, self.config.eval_with_ema)

    def evaluators(self) -> list[Any]:
        """The evaluators `config.evaluators` lists, built for this run's task."""
        from dl_arch.evaluators.base import build_evaluators

        return build_evaluators(self.config, self.task)
