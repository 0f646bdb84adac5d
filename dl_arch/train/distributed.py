"""Multi-host start-up: `jax.distributed.initialize` from flags or a cluster's environment."""

from __future__ import annotations

import os

import jax

CLUSTER_ENV = ("SLURM_NTASKS", "OMPI_COMM_WORLD_SIZE", "JAX_COORDINATOR_ADDRESS")


def initialize(coordinator_address: str = "", num_processes: int = 0, process_id: int = -1) -> None:
    """Joins the run's processes; a no-op for a single process with no cluster around it.

    On CPU the collectives go through gloo, so the same code runs multi-host on a laptop.
    """
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    if coordinator_address:
        jax.distributed.initialize(coordinator_address=coordinator_address,
                                   num_processes=num_processes or None,
                                   process_id=process_id if process_id >= 0 else None)
        return
    in_cluster = any(int(os.environ.get(k, "1") if k != "JAX_COORDINATOR_ADDRESS" else 2) > 1
                     for k in CLUSTER_ENV if k in os.environ)
    if in_cluster:
        jax.distributed.initialize()  # reads SLURM / Open MPI / JAX_* variables
