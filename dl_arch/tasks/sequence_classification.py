"""Sequence classification and regression: sentiment, long-range tasks, pixel-by-pixel images.

Two tasks on one recurrent (or Transformer) sequence model: `sequence_classification`, one
output per sequence (`label` (B,) integer -> cross-entropy) or one per step (`targets`
(B, T) integer, e.g. copy-memory, with optional `weights` marking the steps whose accuracy
is reported); and `sequence_regression`, `targets` (B, k) float -> mean squared error and
the share of examples solved within `solved_tolerance` (e.g. the adding problem).
`lengths` in the batch is passed to the model as `lengths_B`, so padding never counts.
With `task.pixel_sequence=True` an image (H, W, C) becomes a sequence of H*W pixels (C
features), optionally in a fixed random order (`pixel_permute`, permuted MNIST). The
`gradient_flow` evaluator, when a config lists it, plots the norm of dL/dh_t over time
(`per_example` gives it the loss).
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

from dl_arch.config.errors import ConfigError
from dl_arch.config.fields import Field, Fields
from dl_arch.registry import register_task
from dl_arch.tasks.base import Batch, MetricTotals, Task, Variables, build_model, masked_mean_pair


@register_task("sequence_classification")
class SequenceClassification(Task):
    """Cross-entropy, per sequence or per step, on a sequence model."""

    objective = "classification"
    fields = {
        "pixel_sequence": Field(False, "read each image (H, W, C) as H*W steps of C features"),
        "pixel_permute": Field(False, "pixel_sequence: in a fixed random pixel order "
                                      "(permuted MNIST)"),
        "permute_seed": Field(0, "seed of the fixed pixel order"),
    }
    dataset_fields: Fields = {}  # `preprocess` below reads no dataset field

    def __init__(self, config: Any):
        super().__init__(config)
        self.model = build_model(config.model, config)
        self._perms: dict[int, np.ndarray] = {}  # number of pixels -> the fixed order

    # ----- data -----
    def pixel_order(self, num_pixels: int) -> np.ndarray:
        """The fixed random order of `num_pixels` pixels (`task.permute_seed`)."""
        if num_pixels not in self._perms:
            rng = np.random.default_rng(self.config.task.permute_seed)
            self._perms[num_pixels] = rng.permutation(num_pixels)
        return self._perms[num_pixels]

    def preprocess(self, example: dict[str, Any], rng: Any, train: bool) -> dict[str, Any]:
        """Turns images into pixel sequences when `task.pixel_sequence` is set."""
        if self.config.task.pixel_sequence:
            if "image" not in example:
                raise ConfigError("config.task.pixel_sequence needs an 'image' in each example; "
                                  f"got keys {sorted(example)}: use an image dataset or set "
                                  "pixel_sequence=False")
            image = np.asarray(example.pop("image"), np.float32)
            seq = image.reshape(-1, image.shape[-1])
            if self.config.task.pixel_permute:
                seq = seq[self.pixel_order(len(seq))]
            example["inputs"] = seq
        return example

    def model_kwargs(self, batch: Batch) -> dict[str, Any]:
        """Keyword arguments of the model besides its inputs: the lengths, when given."""
        return {"lengths_B": batch["lengths"]} if "lengths" in batch else {}

    def _apply(self, variables: Variables, batch: Batch, train: bool, rng: jax.Array | None = None
               ) -> jax.Array:
        kwargs: dict[str, Any] = {"train": train, **self.model_kwargs(batch)}
        if train:
            kwargs["rngs"] = {"dropout": rng}
        return self.model.apply(variables, batch["inputs"], **kwargs)

    def init_variables(self, rng: jax.Array, batch: Batch) -> Variables:
        p_rng, d_rng = jax.random.split(rng)
        variables = self.model.init({"params": p_rng, "dropout": d_rng}, batch["inputs"],
                                    train=False, **self.model_kwargs(batch))
        return {"params": variables["params"]}

    # ----- losses -----
    def per_example(self, out: jax.Array, batch: Batch) -> dict[str, jax.Array]:
        """Per-example loss and metrics (each of shape (B,))."""
        if self.objective == "regression":
            err = out - batch["targets"].astype(jnp.float32).reshape(out.shape)
            sq = jnp.mean(err**2, axis=-1)
            solved = jnp.all(jnp.abs(err) < self.config.task.solved_tolerance, axis=-1)
            return {"loss": sq, "mse": sq, "solved": solved.astype(jnp.float32)}
        if "label" in batch:
            labels = batch["label"].astype(jnp.int32)
            ce = optax.softmax_cross_entropy_with_integer_labels(out, labels)
            acc = (jnp.argmax(out, -1) == labels).astype(jnp.float32)
            return {"loss": ce, "accuracy": acc}
        targets = batch["targets"].astype(jnp.int32)  # per step: (B, T)
        ce_BT = optax.softmax_cross_entropy_with_integer_labels(out, targets)
        hit_BT = (jnp.argmax(out, -1) == targets).astype(jnp.float32)
        w_BT = (batch["weights"] if "weights" in batch else jnp.ones_like(ce_BT)).astype(jnp.float32)
        wsum = jnp.maximum(w_BT.sum(-1), 1.0)
        return {"loss": ce_BT.mean(-1), "accuracy": (hit_BT * w_BT).sum(-1) / wsum,
                "weighted_loss": (ce_BT * w_BT).sum(-1) / wsum}

    def loss(self, phase: str, params: Any, mutable: Variables, batch: Batch, rng: jax.Array):
        out = self._apply({"params": params, **mutable}, batch, True, rng)
        per = self.per_example(out, batch)
        metrics = {k: v.mean() for k, v in per.items() if k != "loss"}
        return per["loss"].mean(), (metrics, mutable)

    def eval_metrics(self, variables: Variables, batch: Batch) -> MetricTotals:
        out = self._apply(variables, batch, False)
        return {k: masked_mean_pair(v, batch["_mask"])
                for k, v in self.per_example(out, batch).items()}


@register_task("sequence_regression")
class SequenceRegression(SequenceClassification):
    """Mean squared error on float targets, one vector per sequence (the adding problem)."""

    objective = "regression"
    fields = {
        "solved_tolerance": Field(0.04, "an example is solved when every error is below this",
                                  low=0.0, low_open=True),
    }
