"""Shared machinery of single-model supervised tasks: build, init, apply with mutable state."""

from __future__ import annotations

from typing import Any

import jax

from dl_arch.config.errors import ConfigError
from dl_arch.config.fields import Field
from dl_arch.tasks.base import ALL, Batch, Task, Variables, build_model


class SupervisedTask(Task):
    """One model, inputs from `batch[config.task.input_key]` ('auto': image, else inputs)."""

    phases = (ALL,)
    fields = {"input_key": Field("auto", "batch key of the model's input ('auto': image if the "
                                         "batch has one, else inputs)")}

    def __init__(self, config: Any):
        super().__init__(config)
        self.model = build_model(config.model, config)

    def inputs(self, batch: Batch) -> jax.Array:
        key = self.config.task.input_key
        if key == "auto":
            key = "image" if "image" in batch else "inputs"
        if key not in batch:
            raise ConfigError(
                f"config.task.input_key='{key}' is not in the batch; use one of {sorted(batch)}"
            )
        return batch[key]

    def init_variables(self, rng: jax.Array, batch: Batch) -> Variables:
        params_rng, dropout_rng = jax.random.split(rng)
        variables = self.model.init({"params": params_rng, "dropout": dropout_rng},
                                    self.inputs(batch), train=False)
        return {k: v for k, v in variables.items() if k != "intermediates"}

    def apply_train(self, params: Any, mutable: Variables, batch: Batch, rng: jax.Array
                    ) -> tuple[Any, Variables]:
        """Forward pass in training mode; returns (outputs, updated mutable collections)."""
        variables = {"params": params, **mutable}
        if mutable:
            return self.model.apply(variables, self.inputs(batch), train=True,
                                    rngs={"dropout": rng}, mutable=list(mutable))
        return self.model.apply(variables, self.inputs(batch), train=True,
                                rngs={"dropout": rng}), {}

    def apply_eval(self, variables: Variables, batch: Batch) -> Any:
        return self.model.apply(variables, self.inputs(batch), train=False)
