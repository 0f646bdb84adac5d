"""The train state: everything that a checkpoint must hold to continue a run exactly."""

from __future__ import annotations

from typing import Any

import flax.struct
import jax


@flax.struct.dataclass
class TrainState:
    """Parameters, one optimiser state per task phase, mutable collections, step, rng.

    `params` is the model's tree (or `{phase: tree}` for multi-network tasks such as a
    GAN); `mutable` holds collections updated in the forward pass (`batch_stats`, carried
    RNN state); `rng` is folded with `step` for per-step randomness; `ema` is the
    exponential moving average of `params` when `config.ema_decay` > 0, else None.
    """

    step: jax.Array
    params: Any
    opt_state: dict[str, Any]
    mutable: dict[str, Any]
    rng: jax.Array
    ema: Any = None
