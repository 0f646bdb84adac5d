"""Multi-step time-series forecasting, measured against the naive last-value forecast.

Batches hold `inputs` (B, T, F), the observed context, and `targets` (B, H, F), the next H
values. The loss is the mean squared error; eval reports MSE and MAE of the model and of
the naive forecast that repeats the last observed value, and `skill = 1 - mse/naive_mse`
(> 0: better than naive). At the end of a run the `forecast_plot` evaluator draws a few
examples (`forecast.png`).
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

from dl_arch.config.errors import ConfigError
from dl_arch.config.fields import Fields
from dl_arch.registry import register_task
from dl_arch.tasks.base import Batch, MetricTotals, Task, Variables, build_model, masked_mean_pair


def as_btf(x: jax.Array) -> jax.Array:
    """Series batches as (B, T, F): a univariate (B, T) batch gains its feature axis."""
    return x[..., None] if x.ndim == 2 else x


@register_task("forecasting")
class Forecasting(Task):
    """MSE training; MSE/MAE vs the naive last-value baseline."""

    evaluators = ("forecast_plot",)

    dataset_fields: Fields = {}  # series batches: the default preprocess reads no field

    def __init__(self, config: Any):
        super().__init__(config)
        self.model = build_model(config.model, config)

    def init_variables(self, rng: jax.Array, batch: Batch) -> Variables:
        p_rng, d_rng = jax.random.split(rng)
        v = self.model.init({"params": p_rng, "dropout": d_rng}, as_btf(batch["inputs"]),
                            train=False)
        return {"params": v["params"]}

    def predict(self, variables: Variables, batch: Batch, train: bool = False,
                rng: jax.Array | None = None) -> jax.Array:
        """The model's forecast (B, H, F) of the batch's targets."""
        kwargs = {"rngs": {"dropout": rng}} if train else {}
        pred = self.model.apply(variables, as_btf(batch["inputs"]), train=train, **kwargs)
        target = as_btf(batch["targets"])
        if pred.shape != target.shape:
            raise ConfigError(f"model predicts {pred.shape} but targets are {target.shape}; set "
                              "config.model.horizon to config.dataset.horizon")
        return pred

    def per_example(self, pred: jax.Array, batch: Batch) -> dict[str, jax.Array]:
        """Per-example errors of the model and of the naive last-value forecast, (B,) each."""
        x, y = as_btf(batch["inputs"]).astype(jnp.float32), as_btf(batch["targets"])
        naive = jnp.broadcast_to(x[:, -1:, :], y.shape)
        mean = lambda e: e.reshape(e.shape[0], -1).mean(axis=1)
        return {"mse": mean((pred - y) ** 2), "mae": mean(jnp.abs(pred - y)),
                "naive_mse": mean((naive - y) ** 2), "naive_mae": mean(jnp.abs(naive - y))}

    def loss(self, phase: str, params: Any, mutable: Variables, batch: Batch, rng: jax.Array):
        pred = self.predict({"params": params, **mutable}, batch, True, rng)
        per = self.per_example(pred, batch)
        return per["mse"].mean(), ({"mae": per["mae"].mean()}, mutable)

    def eval_metrics(self, variables: Variables, batch: Batch) -> MetricTotals:
        per = self.per_example(self.predict(variables, batch), batch)
        return {k: masked_mean_pair(v, batch["_mask"]) for k, v in per.items()}

    def finalize_metrics(self, totals: dict[str, tuple[Any, Any]]) -> dict[str, Any]:
        out = super().finalize_metrics(totals)
        out["skill"] = 1.0 - out["mse"] / max(out["naive_mse"], 1e-12)
        return out
