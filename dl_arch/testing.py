"""Helpers for tests of every family: load a config file, overfit one batch, run a config."""

from __future__ import annotations

import os
from typing import Any

import jax
import ml_collections

from dl_arch.config.files import load_config_file
from dl_arch.train.trainer import Trainer

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def load_config(spec: str) -> ml_collections.ConfigDict:
    """`'configs/x.py:smoke,T=10'` (relative to the repository) -> what its `get_config`
    returns, read by the same loader as launch.py's `--config`."""
    return load_config_file(os.path.join(REPO, spec))  # an absolute path is kept as it is


def first_batch(config: ml_collections.ConfigDict, task: Any | None = None) -> dict[str, Any]:
    """The first global training batch of a config, as device arrays."""
    return Trainer(config, task=task).first_batch()


def overfit_one_batch(config: ml_collections.ConfigDict, steps: int = 100
                      ) -> tuple[list[dict[str, float]], Any]:
    """Trains repeatedly on one batch; returns per-step metrics (host floats) and the state."""
    trainer = Trainer(config)
    batch = trainer.first_batch()
    state = trainer.init_state(batch)
    step = trainer.train_step()
    history = []
    for _ in range(steps):
        state, metrics = step(state, batch)
        history.append({k: float(v) for k, v in jax.device_get(metrics).items()})
    return history, state
