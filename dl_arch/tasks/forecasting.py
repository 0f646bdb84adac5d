"""Multi-step time-series forecasting, measured against the naive last-value forecast.

Batches hold `inputs` (B, T, F), the observed context, and `targets` (B, H, F), the next H
values. The loss is the mean squared error; eval reports MSE and MAE of the model and of
the naive forecast that repeats the last observed value, and `skill = 1 - mse/naive_mse`
(> 0: better than naive). At the end of a run `forecast.png` plots a few examples.
"""

from __future__ import annotations

import os
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from dl_arch.config.errors import ConfigError
from dl_arch.config.fields import Fields
from dl_arch.registry import register_task
from dl_arch.tasks.base import Batch, MetricTotals, Task, Variables, build_model, masked_mean_pair
from dl_arch.tasks.gradient_flow import save_figure


def _as_btf(x: jax.Array) -> jax.Array:
    return x[..., None] if x.ndim == 2 else x


@register_task("forecasting")
class Forecasting(Task):
    """MSE training; MSE/MAE vs the naive last-value baseline; forecast plot."""

    dataset_fields: Fields = {}  # series batches: the default preprocess reads no field

    def __init__(self, config: Any):
        super().__init__(config)
        self.model = build_model(config.model, config)

    def init_variables(self, rng: jax.Array, batch: Batch) -> Variables:
        p_rng, d_rng = jax.random.split(rng)
        v = self.model.init({"params": p_rng, "dropout": d_rng}, _as_btf(batch["inputs"]),
                            train=False)
        return {"params": v["params"]}

    def _predict(self, variables: Variables, batch: Batch, train: bool = False,
                 rng: jax.Array | None = None) -> jax.Array:
        kwargs = {"rngs": {"dropout": rng}} if train else {}
        pred = self.model.apply(variables, _as_btf(batch["inputs"]), train=train, **kwargs)
        target = _as_btf(batch["targets"])
        if pred.shape != target.shape:
            raise ConfigError(f"model predicts {pred.shape} but targets are {target.shape}; set "
                              "config.model.horizon to config.dataset.horizon")
        return pred

    def per_example(self, pred: jax.Array, batch: Batch) -> dict[str, jax.Array]:
        """Per-example errors of the model and of the naive last-value forecast, (B,) each."""
        x, y = _as_btf(batch["inputs"]).astype(jnp.float32), _as_btf(batch["targets"])
        naive = jnp.broadcast_to(x[:, -1:, :], y.shape)
        mean = lambda e: e.reshape(e.shape[0], -1).mean(axis=1)
        return {"mse": mean((pred - y) ** 2), "mae": mean(jnp.abs(pred - y)),
                "naive_mse": mean((naive - y) ** 2), "naive_mae": mean(jnp.abs(naive - y))}

    def loss(self, phase: str, params: Any, mutable: Variables, batch: Batch, rng: jax.Array):
        pred = self._predict({"params": params, **mutable}, batch, True, rng)
        per = self.per_example(pred, batch)
        return per["mse"].mean(), ({"mae": per["mae"].mean()}, mutable)

    def eval_metrics(self, variables: Variables, batch: Batch) -> MetricTotals:
        per = self.per_example(self._predict(variables, batch), batch)
        return {k: masked_mean_pair(v, batch["_mask"]) for k, v in per.items()}

    def finalize_metrics(self, totals: dict[str, tuple[Any, Any]]) -> dict[str, Any]:
        out = super().finalize_metrics(totals)
        out["skill"] = 1.0 - out["mse"] / max(out["naive_mse"], 1e-12)
        return out

    def host_report(self, variables: Variables, batch: dict[str, Any], step: int, workdir: str,
                    writer: Any, final: bool) -> None:
        """forecast.png: context, truth, forecast and naive forecast of up to 4 examples."""
        if not final:
            return
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        n = int(min(4, np.sum(np.asarray(batch["_mask"]) > 0)))
        sub = {k: np.asarray(v)[:n] for k, v in batch.items() if k in ("inputs", "targets")}
        pred = np.asarray(self._predict({"params": variables["params"]}, sub))
        x, y = np.asarray(_as_btf(sub["inputs"])), np.asarray(_as_btf(sub["targets"]))
        fig, axes = plt.subplots(n, 1, figsize=(8, 2.2 * n), squeeze=False)
        t_in, t_out = np.arange(x.shape[1]), x.shape[1] + np.arange(y.shape[1])
        for i, ax in enumerate(axes[:, 0]):
            ax.plot(t_in, x[i, :, 0], color="gray", label="context")
            ax.plot(t_out, y[i, :, 0], color="black", label="truth")
            ax.plot(t_out, pred[i, :, 0], color="tab:red", label="forecast")
            ax.plot(t_out, np.repeat(x[i, -1, 0], len(t_out)), "--", color="tab:blue",
                    label="naive (last value)")
            if i == 0:
                ax.legend(fontsize=7, ncol=4)
        axes[0, 0].set_title(f"{self.config.model.name} on {self.config.dataset.name}, step {step}")
        image = save_figure(fig, os.path.join(workdir, "forecast.png"))
        writer.write_images(step, {"forecast": image})
