"""Regression: mean squared error loss; MSE and MAE metrics."""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

from dl_arch.registry import register_task
from dl_arch.tasks.base import Batch, MetricTotals, Variables, masked_mean_pair
from dl_arch.tasks.supervised import SupervisedTask


@register_task("regression")
class RegressionTask(SupervisedTask):
    """Predicts `batch["targets"]` (any shape per example) from the inputs."""

    required_keys = ("targets",)

    def _errors(self, outputs: jax.Array, batch: Batch) -> jax.Array:
        targets = batch["targets"].astype(jnp.float32)
        return outputs.astype(jnp.float32).reshape(targets.shape) - targets

    def loss(self, phase: str, params: Any, mutable: Variables, batch: Batch, rng: jax.Array):
        outputs, new_mutable = self.apply_train(params, mutable, batch, rng)
        err = self._errors(outputs, batch)
        return jnp.mean(err**2), ({"mae": jnp.mean(jnp.abs(err))}, new_mutable)

    def eval_metrics(self, variables: Variables, batch: Batch) -> MetricTotals:
        err = self._errors(self.apply_eval(variables, batch), batch)
        mask = batch["_mask"]
        return {"loss": masked_mean_pair(err**2, mask), "mae": masked_mean_pair(jnp.abs(err), mask)}
