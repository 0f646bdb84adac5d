"""Post-run analyses a study asks for by name (`probes` in the experiment).

A probe runs after a trial's training, on the trained parameters (restored from the run's
checkpoint) and on its initial ones ("init": recomputed exactly as the loop draws them
from `config.seed`). It writes arrays to `<run>/probe_<name>.npz` and scalars to
`<run>/probes.json`, which the report adds to `results.csv` and the table
(the arrays are drawn by `dl_arch.experiments.plots`).

- `decision_boundary`: class-1 probability of a 2-D classifier on a grid, plus eval points.
- `layer_grad_norms`: the l2 norm of dL/dW per top-level layer (input side first).
- `grad_through_time`: |dL/dh_t| per time step t of the first recurrent layer, through the
  model's zero `perturbations` on its hidden states (`dl_arch.models.rnn.Recurrent`).
- `step_cost`: XLA's FLOPs and memory (arguments + outputs + temporaries) of one
  forward+backward pass at the training batch size, measurable on every backend.
"""

from __future__ import annotations

import json
import math
import os
import re
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from dl_arch.config.errors import ConfigError
from dl_arch.experiments.runs import PROBE_FILE
from dl_arch.tasks.base import ALL
from dl_arch.tasks.gradient_flow import (
    hidden_state_gradients,
    mean_norm_over_time,
    perturbation_zeros,
)
from dl_arch.train.compile_options import model_jit
from dl_arch.train.flops import jaxpr_flops

# ----------------------------------------------------------------------------- helpers


def make_task(config: ml_collections.ConfigDict) -> Any:
    """The run's task object, built by the run's Trainer (on the resolved config)."""
    from dl_arch.train.trainer import build_task

    return build_task(config)


def probe_batch(config: ml_collections.ConfigDict, split: str, n: int) -> dict[str, np.ndarray]:
    """The first `n` examples of a split, stacked, standardised, with an all-ones `_mask`."""
    from dl_arch.data.loader import standardize
    from dl_arch.data.pipeline import make_source

    source = make_source(config.dataset, split, config.seed)
    n = min(n, len(source))
    examples = [standardize(dict(source[i])) for i in range(n)]
    batch = {k: np.stack([np.asarray(e[k]) for e in examples]) for k in examples[0]}
    batch["_mask"] = np.ones((n,), np.float32)
    return batch


def trained_variables(workdir: str) -> dict[str, Any]:
    """`{'params': ..., **mutable}` of the newest checkpoint of a run."""
    from dl_arch.train.checkpoints import restore_raw_state

    state = restore_raw_state(workdir)
    return {"params": state["params"], **dict(state.get("mutable") or {})}


def init_variables(task: Any, config: ml_collections.ConfigDict, batch: dict[str, Any]
                   ) -> dict[str, Any]:
    """The run's initial variables, drawn by the Trainer exactly as the loop's state is."""
    from dl_arch.train.trainer import Trainer

    return Trainer(config, task=task).init_variables(batch)


def _split_vars(variables: dict[str, Any]) -> tuple[Any, dict[str, Any]]:
    params = variables["params"]
    mutable = {k: v for k, v in variables.items() if k != "params"}
    return params, mutable


def _loss_fn(task: Any, batch: dict[str, Any]) -> Callable[[Any, dict[str, Any]], jax.Array]:
    rng = jax.random.PRNGKey(0)

    def loss(params: Any, mutable: dict[str, Any]) -> jax.Array:
        value, _ = task.loss(ALL, params, mutable, batch, rng)
        return value

    return loss


def _natural_key(name: str) -> tuple[bool, list[Any]]:
    """'hidden_2' < 'hidden_10' < 'head': layers in depth order, the head last."""
    return (name.startswith("head"), [int(p) if p.isdigit() else p
                                       for p in re.split(r"(\d+)", name)])


# ----------------------------------------------------------------------------- probes


def decision_boundary(config: ml_collections.ConfigDict, workdir: str) -> dict[str, Any]:
    """p(class 1) of the trained model on a 2-D grid, with eval points for the picture."""
    task = make_task(config)
    points = probe_batch(config, config.dataset.eval_split, 400)
    key = "inputs"
    if points[key].shape[-1] != 2:
        raise ConfigError(f"probe decision_boundary needs 2-D inputs; config.dataset.name="
                         f"'{config.dataset.name}' gives shape {points[key].shape[1:]}")
    lim = float(np.abs(points[key]).max()) * 1.1
    axis = np.linspace(-lim, lim, 121, dtype=np.float32)
    gx, gy = np.meshgrid(axis, axis)
    grid = {key: np.stack([gx.ravel(), gy.ravel()], -1), "_mask": np.ones(gx.size, np.float32)}
    variables = trained_variables(workdir)
    logits = task.apply_eval(variables, grid)
    prob = np.asarray(jax.nn.softmax(logits.astype(jnp.float32), -1))[:, 1].reshape(gx.shape)
    np.savez(os.path.join(workdir, "probe_decision_boundary.npz"), axis=axis, prob=prob,
             points=points[key], labels=points["label"])
    return {}


def layer_norms(task: Any, variables: dict[str, Any], batch: dict[str, Any]
                ) -> tuple[list[str], np.ndarray]:
    """(layer names, ||dL/dW|| of each top-level layer) of the task loss on `batch`."""
    params, mutable = _split_vars(variables)
    grads = jax.grad(_loss_fn(task, batch))(params, mutable)
    names = sorted(grads, key=_natural_key)
    norms = [float(jnp.sqrt(sum(jnp.sum(jnp.square(g.astype(jnp.float32)))
                                for g in jax.tree_util.tree_leaves(grads[n])))) for n in names]
    return names, np.array(norms)


def layer_grad_norms(config: ml_collections.ConfigDict, workdir: str) -> dict[str, Any]:
    """||dL/dW|| per top-level layer at init and after training, on one training batch."""
    task = make_task(config)
    batch = probe_batch(config, config.dataset.train_split,
                        int(config.batch_size))
    out: dict[str, Any] = {}
    arrays: dict[str, Any] = {}
    for stage, variables in (("init", init_variables(task, config, batch)),
                             ("final", trained_variables(workdir))):
        names, norms = layer_norms(task, variables, batch)
        arrays[stage] = norms
        arrays["names"] = np.array(names)
        hidden = [i for i, n in enumerate(names) if not n.startswith("head")]
        hidden = hidden or list(range(len(names)))
        first, last = norms[hidden[0]], norms[hidden[-1]]
        # how much smaller the gradient reaching the first layer is than at the last hidden one
        out[f"grad_first_over_last_{stage}"] = float(first / last) if last > 0 else math.inf
    np.savez(os.path.join(workdir, "probe_layer_grad_norms.npz"), **arrays)
    return out


def hidden_state_grads(task: Any, variables: dict[str, Any], batch: dict[str, Any]
                       ) -> jax.Array:
    """dL/dh_t of the first recurrent layer on the task's training loss, (T, B, H), via its
    zero `perturbations` (`dl_arch.tasks.gradient_flow`, shared with the evaluator)."""
    inputs = task.inputs(batch) if hasattr(task, "inputs") else batch["inputs"]
    zeros = perturbation_zeros(task.model, {"params": variables["params"]}, inputs, train=False)
    if zeros is None:
        raise ConfigError(f"probe grad_through_time: model '{task.config.model.name}' exposes "
                         "no hidden-state perturbations; use a recurrent model")
    params, mutable = _split_vars(variables)

    def loss(e: Any) -> jax.Array:
        value, _ = task.loss(ALL, params, {**mutable, "perturbations": e}, batch,
                             jax.random.PRNGKey(0))
        return value

    grads = hidden_state_gradients(loss, zeros)
    return grads[min(grads, key=_natural_key)]


def grad_through_time(config: ml_collections.ConfigDict, workdir: str) -> dict[str, Any]:
    """mean_b ||dL/dh_t|| for each t, first recurrent layer, at init and after training."""
    task = make_task(config)
    batch = probe_batch(config, config.dataset.train_split,
                        min(int(config.batch_size), 64))
    out: dict[str, Any] = {}
    arrays: dict[str, Any] = {}
    for stage, variables in (("init", init_variables(task, config, batch)),
                             ("final", trained_variables(workdir))):
        norms_T = mean_norm_over_time(hidden_state_grads(task, variables, batch))
        arrays[stage] = norms_T
        last = norms_T[-1]
        out[f"grad_h1_over_hT_{stage}"] = float(norms_T[0] / last) if last > 0 else math.inf
    np.savez(os.path.join(workdir, "probe_grad_through_time.npz"), **arrays)
    return out


def step_cost(config: ml_collections.ConfigDict, workdir: str) -> dict[str, Any]:
    """One forward+backward pass at the training batch size: its matmul and convolution
    FLOPs (`dl_arch.train.flops`: a recurrence's scan counted once per step of time) and
    the bytes XLA plans for it."""
    task = make_task(config)
    batch = probe_batch(config, config.dataset.train_split,
                        int(config.batch_size))
    params, mutable = _split_vars(init_variables(task, config, batch))
    traced = model_jit(jax.value_and_grad(_loss_fn(task, batch))).trace(params, mutable)
    out: dict[str, Any] = {"step_flops": jaxpr_flops(traced.jaxpr)}
    compiled = traced.lower().compile()
    try:
        mem = compiled.memory_analysis()
        out["step_memory_bytes"] = int(mem.argument_size_in_bytes + mem.output_size_in_bytes
                                       + mem.temp_size_in_bytes)
    except Exception:  # noqa: BLE001 - a backend without memory analysis: leave it out
        pass
    return out


PROBES: dict[str, Callable[[ml_collections.ConfigDict, str], dict[str, Any]]] = {
    "decision_boundary": decision_boundary,
    "layer_grad_norms": layer_grad_norms,
    "grad_through_time": grad_through_time,
    "step_cost": step_cost,
}


def run_probes(names: list[str], config: ml_collections.ConfigDict, workdir: str) -> None:
    """Runs the named probes and merges their scalars into `<workdir>/probes.json`."""
    from dl_arch.config.resolve import resolve_config

    unknown = [n for n in names if n not in PROBES]
    if unknown:
        raise ConfigError(f"experiment probes: unknown {unknown}; known: {', '.join(PROBES)}")
    config = resolve_config(config)  # every probe reads declared fields
    path = os.path.join(workdir, PROBE_FILE)
    scalars: dict[str, Any] = {}
    for name in names:
        scalars.update(PROBES[name](config, workdir))
    with open(path, "w") as f:
        json.dump(scalars, f, indent=1)
