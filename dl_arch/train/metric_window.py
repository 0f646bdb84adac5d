"""Train metrics summed on the device between two reads by the host.

The loop reads its train metrics only at logging, evaluation and checkpoint steps, so no
step waits for the host. The window still sees every step: beside the sums it keeps the
first losses of the run and the first step whose loss is not finite or has grown past
`divergence_factor` times its first value (with the losses of that step), so a diverged
run stops naming the exact step, before any checkpoint holds it.

A window is a few device arrays (`Window`), updated inside the jitted loop step
(`Trainer.loop_step`); `read` brings it to the host and `fresh` starts the next one.
`Averager` adds the windows read between two log lines on the host (float64) and is
checkpointed with the loop, so a resumed run logs the same means.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import flax.struct
import jax
import jax.numpy as jnp
import numpy as np

from dl_arch.train.step import NORMS


def _is_loss(key: str) -> bool:
    return key.endswith("loss")


def _is_norm(key: str) -> bool:
    return key.rsplit("/", 1)[-1] in NORMS


@flax.struct.dataclass
class Window:
    """The device arrays of a window, one vector per kind over the metrics `names` (losses
    `losses`): a few arrays instead of one per metric and kind, which every step would
    pass in, update one by one and pass out (a tiny model's step paid a third more)."""

    names: tuple[str, ...] = flax.struct.field(pytree_node=False)
    losses: tuple[str, ...] = flax.struct.field(pytree_node=False)
    sums: Any  # f32 [len(names)]: sum over the window's steps (norms: their logging steps)
    counts: Any  # f32 [len(names)]: steps summed
    last: Any  # f32 [len(names)]: the last step's values
    first: Any  # f32 [len(losses)]: the run's first losses (once `has_first`)
    has_first: Any  # bool []
    bad_step: Any  # i32 []: first step with a non-finite loss (-1: none)
    bad: Any  # f32 [len(losses)]: that step's losses
    grown_step: Any  # i32 []: first step whose loss grew past the factor (-1: none)
    grown: Any  # f32 [len(losses)]: that step's losses


def fresh(metric_shapes: dict[str, Any], first: dict[str, float] | None = None) -> Window:
    """An empty window for the scalar metrics named in `metric_shapes` (host numpy arrays);
    `first` carries the run's first losses over from an earlier window or a checkpoint."""
    names = tuple(metric_shapes)
    losses = tuple(k for k in names if _is_loss(k))
    first = first or {}
    zeros = np.zeros(len(names), np.float32)
    return Window(
        names=names, losses=losses, sums=zeros.copy(), counts=zeros.copy(), last=zeros.copy(),
        first=np.array([first[k] if k in first else 0.0 for k in losses], np.float32),
        has_first=np.bool_(all(k in first for k in losses) and bool(losses)),
        bad_step=np.int32(-1), bad=np.zeros(len(losses), np.float32),
        grown_step=np.int32(-1), grown=np.zeros(len(losses), np.float32))


def add(window: Window, metrics: dict[str, jax.Array], step: jax.Array, norms: jax.Array,
        divergence_factor: float) -> Window:
    """The window after one more step (pure; traced inside the loop step). Norm metrics
    count only at steps that computed them (`norms`)."""
    values = jnp.stack([jnp.asarray(metrics[k], jnp.float32) for k in window.names])
    is_norm = np.array([_is_norm(k) for k in window.names])
    counted = jnp.where(is_norm, norms, True)
    losses = values[np.array([window.names.index(k) for k in window.losses], np.int32)]
    first = jnp.where(window.has_first, window.first, losses)
    bad = jnp.any(~jnp.isfinite(losses))
    grown = jnp.bool_(False)
    if divergence_factor > 0:
        grown = jnp.any((first != 0) & (jnp.abs(losses) > divergence_factor * jnp.abs(first)))
        grown &= ~bad
    new_bad = (window.bad_step < 0) & bad
    new_grown = (window.grown_step < 0) & grown
    return window.replace(
        sums=window.sums + jnp.where(counted, values, 0.0),
        counts=window.counts + counted.astype(jnp.float32),
        last=values, first=first, has_first=jnp.bool_(True),
        bad_step=jnp.where(new_bad, step, window.bad_step).astype(jnp.int32),
        bad=jnp.where(new_bad, losses, window.bad),
        grown_step=jnp.where(new_grown, step, window.grown_step).astype(jnp.int32),
        grown=jnp.where(new_grown, losses, window.grown))


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
    """Pulls the window to the host (one transfer for all of its arrays)."""
    w = jax.device_get(window)
    by_name = {kind: dict(zip(window.names, getattr(w, kind).tolist(), strict=True))
               for kind in ("sums", "counts", "last")}
    by_loss = {kind: dict(zip(window.losses, getattr(w, kind).tolist(), strict=True))
               for kind in ("first", "bad", "grown")}
    if not bool(w.has_first):
        by_loss["first"] = {}
    return Reading(bad_step=int(w.bad_step), grown_step=int(w.grown_step), **by_name, **by_loss)


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
