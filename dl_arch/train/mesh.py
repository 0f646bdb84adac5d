"""Device mesh and shardings: the batch is split along `data`, the state is replicated."""

from __future__ import annotations

from typing import Any

import jax
import numpy as np
from jax.sharding import AxisType, Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from dl_arch.config.errors import ConfigError

DATA = "data"


def make_mesh() -> Mesh:
    """A 1-D mesh over every device of every process."""
    return jax.make_mesh((jax.device_count(),), (DATA,), axis_types=(AxisType.Auto,))


def replicated(mesh: Mesh) -> NamedSharding:
    return NamedSharding(mesh, P())


def batch_sharding(mesh: Mesh, stacked: bool = False) -> NamedSharding:
    """Rows split along `data`; `stacked`: behind a leading axis of chunk steps."""
    return NamedSharding(mesh, P(None, DATA) if stacked else P(DATA))


def check_batch_size(batch_size: int, mesh: Mesh, field: str = "config.batch_size") -> None:
    n = mesh.devices.size
    if batch_size % n:
        raise ConfigError(
            f"{field}={batch_size} must be divisible by the number of devices ({n}); "
            f"use a multiple of {n}"
        )


def to_global(local_batch: dict[str, Any], mesh: Mesh, stacked: bool = False
              ) -> dict[str, jax.Array]:
    """Each process's local rows -> one global array per key, sharded along `data` (the
    second axis when `stacked`: a chunk's batches, `dl_arch.train.chunks`).

    Non-numeric fields (strings from TFDS) cannot live on a device and are dropped. On one
    process the local rows are the global batch: one `device_put` places every key (a
    quarter of the host time of assembling each array from its process-local parts).
    """
    sharding = batch_sharding(mesh, stacked)
    numeric = _numeric(local_batch)
    if jax.process_count() == 1:
        return jax.device_put(numeric, sharding)
    return {k: jax.make_array_from_process_local_data(sharding, v) for k, v in numeric.items()}


def _numeric(local_batch: dict[str, Any]) -> dict[str, np.ndarray]:
    """The batch's numeric fields as numpy arrays (strings cannot live on a device)."""
    return {k: v for k, v in ((k, np.asarray(v)) for k, v in local_batch.items())
            if v.dtype.kind in "biuf"}


def to_step_input(local_batch: dict[str, Any], mesh: Mesh, stacked: bool = False
                  ) -> dict[str, Any]:
    """A batch as the loop hands it to its compiled train and eval steps: `to_global`'s
    arrays, except on one CPU device, where it stays in host arrays and the step's call
    places it. There the call does in C++ what `jax.device_put` does in Python: `mlp_xor`'s
    batch took the call 8 µs more against 50-130 µs for `device_put`
    (docs/results/benchmarks.md), a tiny model's whole step."""
    if (jax.process_count() == 1 and mesh.devices.size == 1
            and mesh.devices.flat[0].platform == "cpu"):
        return _numeric(local_batch)
    return to_global(local_batch, mesh, stacked)
