"""Train metrics summed on the device between two reads by the host.

The loop reads its train metrics only at logging, evaluation and checkpoint steps, so no
step waits for the host. The window still sees every step: beside the sums it keeps the
first losses of the run and the first step whose loss is not finite or has grown past
`divergence_factor` times its first value (with the losses of that step), so a diverged
run stops naming the exact step, before any checkpoint holds it.

A window is a plain dict of device arrays, updated inside the jitted loop step
(`Trainer.loop_step`); `read` brings it to the host and `fresh` starts the next one.
`Averager` adds the windows read between two log lines on the host (float64) and is
checkpointed with the loop, so a resumed run logs the same means.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from dl_arch.train.step import NORMS

Window = dict[str, Any]


def _is_loss(key: str) -> bool:
    return key.endswith("loss")


def _is_norm(key: str) -> bool:
    return key.rsplit("/", 1)[-1] in NORMS


def fresh(metric_shapes: dict[str, Any], first: dict[str, float] | None = None) -> Window:
    """An empty window for metrics shaped like `metric_shapes` (host numpy arrays);
    `first` carries the run's first losses over from an earlier window or a checkpoint."""
    zeros = {k: np.zeros((), np.float32) for k in metric_shapes}
    losses = [k for k in metric_shapes if _is_loss(k)]
    first = first or {}
    return {
        "sums": dict(zeros), "counts": dict(zeros), "last": dict(zeros),
        "first": {k: np.float32(first[k] if k in first else 0.0) for k in losses},
        "has_first": np.bool_(all(k in first for k in losses) and bool(losses)),
        "bad_step": np.int32(-1), "bad": {k: np.float32(0.0) for k in losses},
        "grown_step": np.int32(-1), "grown": {k: np.float32(0.0) for k in losses},
    }


def add(window: Window, metrics: dict[str, jax.Array], step: jax.Array, norms: jax.Array,
        divergence_factor: float) -> Window:
    """The window after one more step (pure; traced inside the loop step). Norm metrics
    count only at steps that computed them (`norms`)."""
    metrics = {k: jnp.asarray(v, jnp.float32) for k, v in metrics.items()}
    counted = {k: jnp.asarray(norms if _is_norm(k) else True, jnp.float32) for k in metrics}
    losses = {k: metrics[k] for k in window["first"]}
    first = {k: jnp.where(window["has_first"], window["first"][k], v) for k, v in losses.items()}
    bad = jnp.any(jnp.stack([~jnp.isfinite(v) for v in losses.values()])) if losses \
        else jnp.bool_(False)
    grown = jnp.bool_(False)
    if divergence_factor > 0 and losses:
        grown = jnp.any(jnp.stack([(first[k] != 0) & (jnp.abs(v) > divergence_factor *
                                                      jnp.abs(first[k]))
                                   for k, v in losses.items()])) & ~bad
    new_bad = (window["bad_step"] < 0) & bad
    new_grown = (window["grown_step"] < 0) & grown
    return {
        "sums": {k: window["sums"][k] + jnp.where(counted[k] > 0, v, 0.0)
                 for k, v in metrics.items()},
        "counts": {k: window["counts"][k] + counted[k] for k in metrics},
        "last": metrics,
        "first": first,
        "has_first": jnp.bool_(True),
        "bad_step": jnp.where(new_bad, step, window["bad_step"]).astype(jnp.int32),
        "bad": {k: jnp.where(new_bad, v, window["bad"][k]) for k, v in losses.items()},
        "grown_step": jnp.where(new_grown, step, window["grown_step"]).astype(jnp.int32),
        "grown": {k: jnp.where(new_grown, v, window["grown"][k]) for k, v in losses.items()},
    }


@dataclasses.dataclass(frozen=True)
class Reading:
    """A window brought to the host."""

    sums: dict[str, float]
    counts: dict[str, float]
    last: dict[str, float]
    first: dict[str, float]  # the run's first losses ({} before the first step)
    bad_step: int  # first step with a non-finite loss in the window (-1: none)
    bad: dict[str, float]
    grown_step: int  # first step whose loss grew past divergence_factor x its first (-1: none)
    grown: dict[str, float]


def read(window: Window) -> Reading:
    """Pulls the window to the host (one transfer for the whole dict)."""
    w = jax.device_get(window)
    floats = {name: {k: float(v) for k, v in w[name].items()}
              for name in ("sums", "counts", "last", "first", "bad", "grown")}
    if not bool(w["has_first"]):
        floats["first"] = {}
    return Reading(bad_step=int(w["bad_step"]), grown_step=int(w["grown_step"]), **floats)


class Averager:
    """Running mean of the train metrics between two log lines (host float64 sums of the
    device windows drained since the last line; per metric, as norms count only at the
    steps that compute them)."""

    def __init__(self) -> None:
        self.sums: dict[str, float] = {}
        self.counts: dict[str, float] = {}

    def add(self, sums: dict[str, float], counts: dict[str, float]) -> None:
        for k, v in sums.items():
            self.sums[k] = self.sums.get(k, 0.0) + float(v)
            self.counts[k] = self.counts.get(k, 0.0) + float(counts[k])

    def pop(self) -> dict[str, float]:
        out = {k: v / self.counts[k] for k, v in self.sums.items() if self.counts[k] > 0}
        self.sums, self.counts = {}, {}
        return out

    def state(self) -> dict[str, Any]:
        """Sums and counts as JSON, saved in each checkpoint so a resume logs the same means."""
        return {"sums": dict(self.sums), "counts": dict(self.counts)}

    @classmethod
    def from_state(cls, state: dict[str, Any] | None) -> Averager:
        averager = cls()
        if state:
            averager.sums = {k: float(v) for k, v in state["sums"].items()}
            counts = state["counts"] if "counts" in state else \
                {k: float(state["n"]) for k in state["sums"]}  # checkpoints before per-key counts
            averager.counts = {k: float(v) for k, v in counts.items()}
        return averager
