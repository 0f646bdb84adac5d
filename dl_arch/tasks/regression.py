"""Regression: mean squared error loss; MSE and MAE metrics."""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from dl_arch.config.errors import ConfigError
from dl_arch.registry import register_task
from dl_arch.tasks.base import Batch, MetricTotals, Variables, masked_mean_pair
from dl_arch.tasks.supervised import SupervisedTask


@register_task("regression")
class RegressionTask(SupervisedTask):
    """Predicts `batch["targets"]` (any shape per example) from the inputs."""

    required_keys = ("targets",)

    def check_batch(self, batch: dict[str, Any]) -> None:
        """Also: the model must output one value per target value of an example."""
        super().check_batch(batch)
        width = int(np.prod(np.shape(batch["targets"])[1:]))
        outputs = self.config.model.num_classes if "num_classes" in self.config.model else width
        if outputs != width:
            raise ConfigError(f"each example has {width} target value(s), but the model outputs "
                              f"config.model.num_classes={outputs}; set it to {width}")

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
