"""Helpers for tests of every family: load a config file, overfit one batch, run a config."""

from __future__ import annotations

import functools
import importlib.util
import os
from typing import Any

import jax
import ml_collections

from dl_arch.config.resolve import resolve_config
from dl_arch.data.pipeline import train_dataset
from dl_arch.train import mesh as mesh_lib
from dl_arch.train.loop import build_task, build_txs, make_init_fn
from dl_arch.train.step import train_step

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def load_config(spec: str) -> ml_collections.ConfigDict:
    """`'configs/x.py:smoke,T=10'` -> the ConfigDict that launch.py would build."""
    path, _, arg = spec.partition(":")
    if not os.path.isabs(path):
        path = os.path.join(REPO, path)
    module_spec = importlib.util.spec_from_file_location("_config_under_test", path)
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
    return module.get_config(arg or None)


def first_batch(config: ml_collections.ConfigDict, task: Any | None = None) -> dict[str, Any]:
    """The first global training batch of a config, as device arrays."""
    task = task or build_task(config)
    ds = train_dataset(config.dataset, config.seed, config.batch_size, task.preprocess)
    return mesh_lib.to_global(next(iter(ds)), mesh_lib.make_mesh())


def overfit_one_batch(config: ml_collections.ConfigDict, steps: int = 100
                      ) -> tuple[list[dict[str, float]], Any]:
    """Trains repeatedly on one batch; returns per-step metrics (host floats) and the state."""
    task = build_task(config)
    batch = first_batch(config, task)
    txs, schedules = build_txs(config, task)
    rng = jax.random.PRNGKey(config.seed)
    state = jax.jit(make_init_fn(task, txs, batch, rng))(rng)
    step = jax.jit(functools.partial(train_step, task=task, txs=txs, schedules=schedules,
                                     grad_accum_steps=config.grad_accum_steps,
                                     freeze=tuple(resolve_config(config).freeze)))
    history = []
    for _ in range(steps):
        state, metrics = step(state, batch)
        history.append({k: float(v) for k, v in jax.device_get(metrics).items()})
    return history, state
