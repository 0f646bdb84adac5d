"""The task interface: the model(s), the loss and the eval metrics of one problem.

A task is lean: pure functions of arrays plus per-example preprocessing, no state kept
between calls. The `Trainer` (`dl_arch.train.trainer`) owns the optimisers, the train
state (with the parameter average when `config.ema_decay` > 0) and the jitted steps; the
loop owns logging, evaluation and checkpoints; evaluators (`dl_arch.evaluators`, listed in
`config.evaluators`, by default the task's `evaluators`) draw pictures and compute scores
beside the eval metrics. A task may split its parameters into *phases*: each phase is one
entry of `params`, has its own optimiser and is updated by its own loss, in order, inside
the one jitted train step, `steps_per_phase[phase]` times (a GAN has phases
("discriminator", "generator") and k discriminator updates; every other task has the
single phase `ALL`, which updates the whole parameter tree once).

Contract (pure, jit-traceable functions of arrays, except `preprocess`, `finalize_metrics`
and `sample`, which run on the host):

- `init_variables(rng, batch)` -> variables dict: `{"params": ..., **mutable}` where
  mutable collections (e.g. `batch_stats`) are carried in the train state.
- `loss(phase, params, mutable, batch, rng)` -> `(scalar loss, (metrics, new_mutable))`;
  `metrics` is a flat dict of scalars to log (`loss` is added by the loop).
- `eval_metrics(variables, batch)` -> dict name -> `(sum, count)`; examples whose
  `batch["_mask"]` is 0 are padding and must not count. The loop sums these over the
  whole eval split; `finalize_metrics` turns the totals into reported values (arrays,
  such as a confusion matrix, go to the evaluators but not to metrics.jsonl).
- `preprocess(example, rng, train)` -> example: per-example numpy work in the input
  pipeline (augmentation, tokenising); runs in grain, outside jit. `preprocess_batch`
  does the same to a whole stacked batch where it can (the default preprocessing can).
- `sample(variables, sample_config, workdir)`: what `launch.py --sample` prints or saves.

Declared fields (see `dl_arch.config`): `fields` are the task's own (`config.task.*`),
`dataset_fields` the dataset fields its preprocessing reads, and `sections` whole extra
sections it reads (`config.sample`). `fields` and `sections` merge over subclasses;
`dataset_fields` does not (a text task drops the image fields). The task reads
`self.config.task.<field>` directly: resolution has filled every default.
"""

from __future__ import annotations

from typing import Any, ClassVar

import jax
import jax.numpy as jnp
import ml_collections

from dl_arch.config.errors import ConfigError
from dl_arch.config.fields import Fields
from dl_arch.data.augment import AUGMENT_FIELDS
from dl_arch.registry import MODELS

ALL = "all"  # the phase that updates every parameter (single-model tasks)

Variables = dict[str, Any]
Batch = dict[str, jax.Array]
MetricTotals = dict[str, tuple[jax.Array, jax.Array]]


def compute_dtype(name: str) -> jnp.dtype:
    """Resolves `config.dtype`: 'auto' is bfloat16 on GPU/TPU and float32 on CPU."""
    if name == "auto":
        return jnp.bfloat16 if jax.default_backend() in ("gpu", "tpu") else jnp.float32
    return jnp.dtype(name)


def build_model(model_config: ml_collections.ConfigDict, config: ml_collections.ConfigDict,
                **overrides: Any):
    """Builds `MODELS[model_config.name](**fields, dtype=..., param_dtype=...)`."""
    fields = dict(model_config.to_dict() if hasattr(model_config, "to_dict") else model_config)
    cls = MODELS.get(fields.pop("name"))
    fields.setdefault("dtype", compute_dtype(config.dtype))
    fields.setdefault("param_dtype", jnp.dtype(config.param_dtype))
    fields.update(overrides)
    try:
        return cls(**fields)
    except TypeError as e:
        raise ConfigError(f"config.model: {e}; check the field names of '{model_config.name}'") from e


def masked_mean_pair(values: jax.Array, mask: jax.Array) -> tuple[jax.Array, jax.Array]:
    """(sum of values over real examples, number of real examples) for eval metrics.

    `values` has the batch as its leading axis; extra axes (tokens, pixels) are averaged
    per example first, so every real example weighs the same.
    """
    values = values.astype(jnp.float32)
    if values.ndim > 1:
        values = values.reshape(values.shape[0], -1).mean(axis=1)
    mask = mask.astype(jnp.float32)
    return jnp.sum(values * mask), jnp.sum(mask)


class Task:
    """Base class; subclasses register with `@register_task("name")`."""

    phases: tuple[str, ...] = (ALL,)
    evaluators: ClassVar[tuple[str, ...]] = ()  # config.evaluators when the config sets none
    fields: ClassVar[Fields] = {}
    dataset_fields: ClassVar[Fields] = AUGMENT_FIELDS  # read by the default `preprocess`
    sections: ClassVar[dict[str, Fields]] = {"sample": {}}
    required_keys: ClassVar[tuple[str, ...]] = ()  # batch keys the loss reads

    def __init__(self, config: ml_collections.ConfigDict):
        self.config = config

    @property
    def steps_per_phase(self) -> dict[str, int]:
        """Updates of each phase per train step, in `phases` order (one each by default)."""
        return {phase: 1 for phase in self.phases}

    def check_batch(self, batch: dict[str, Any]) -> None:
        """Fails in one line when the dataset lacks a key this task needs (called on the
        first batch, before anything is compiled)."""
        missing = [k for k in self.required_keys if k not in batch]
        if missing:
            given = ", ".join(sorted(k for k in batch if not k.startswith("_")))
            raise ConfigError(
                f"config.task.name='{self.config.task.name}' needs batch key(s) "
                f"{', '.join(missing)}, but config.dataset.name='{self.config.dataset.name}' "
                f"gives {given}; pick a dataset made for this task or another task")

    # ----- pure functions (traced inside jit) -----
    def init_variables(self, rng: jax.Array, batch: Batch) -> Variables:
        raise NotImplementedError

    def loss(self, phase: str, params: Any, mutable: Variables, batch: Batch,
             rng: jax.Array) -> tuple[jax.Array, tuple[dict[str, jax.Array], Variables]]:
        raise NotImplementedError

    def eval_metrics(self, variables: Variables, batch: Batch) -> MetricTotals:
        raise NotImplementedError

    # ----- host side -----
    def preprocess(self, example: dict[str, Any], rng: Any, train: bool) -> dict[str, Any]:
        """Per-example input preprocessing in the data pipeline (numpy, deterministic rng).

        Default: image augmentation and normalisation from `config.dataset`.
        """
        from dl_arch.data.augment import preprocess

        return preprocess(example, rng, self.config.dataset, train)

    def preprocess_batch(self, batch: dict[str, Any], rng_at: Any, train: bool
                         ) -> dict[str, Any] | None:
        """`preprocess` of every example of a stacked batch at once (example j's generator is
        `rng_at(j)`), equal to stacking its results; None: go example by example (always,
        when a subclass replaces `preprocess`)."""
        if type(self).preprocess is not Task.preprocess:
            return None
        from dl_arch.data.augment import preprocess_batch

        return preprocess_batch(batch, rng_at, self.config.dataset, train)

    def finalize_metrics(self, totals: dict[str, tuple[Any, Any]]) -> dict[str, Any]:
        """Turns summed (sum, count) pairs into reported metrics (default: the mean); pure,
        so the evaluators, not the task, keep what it returns."""
        return {k: s / max(float(c), 1.0) for k, (s, c) in totals.items()}

    def sample(self, variables: Variables, sample_config: ml_collections.ConfigDict,
               workdir: str) -> Any:
        """Optional: `launch.py --sample` calls this on the restored variables; files it
        writes go to `workdir`."""
        raise ConfigError(f"task '{self.config.task.name}' has no sampling; drop --sample")
