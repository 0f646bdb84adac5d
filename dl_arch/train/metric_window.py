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


# The rows of `Window.stats`, `Window.marks` and `Window.flags`.
SUMS, COUNTS, LAST = 0, 1, 2
FIRST, BAD, GROWN = 0, 1, 2
HAS_FIRST, BAD_STEP, GROWN_STEP = 0, 1, 2


@flax.struct.dataclass
class Window:
    """The device arrays of a window: three arrays, each stacking what one kind of metric
    keeps. Every array is an output of each step, and on CPU each costs the step a kernel
    of its own: `mlp_xor`'s loop step took 47-50 µs against 56-58 with one array per field,
    and more before that with one per metric and kind (docs/results/benchmarks.md)."""

    names: tuple[str, ...] = flax.struct.field(pytree_node=False)
    losses: tuple[str, ...] = flax.struct.field(pytree_node=False)
    # f32 [3, len(names)]: rows SUMS (over the window's steps; norms: their logging
    # steps), COUNTS (steps summed) and LAST (the last step's values)
    stats: Any
    # f32 [3, len(losses)]: rows FIRST (the run's first losses, once HAS_FIRST), BAD (the
    # losses of the first step with a non-finite loss) and GROWN (of the first step whose
    # loss grew past the divergence factor)
    marks: Any
    # i32 [3]: HAS_FIRST (0 or 1), BAD_STEP and GROWN_STEP (those steps; -1: none)
    flags: Any


def fresh(metric_shapes: dict[str, Any], first: dict[str, float] | None = None) -> Window:
    """An empty window for the scalar metrics named in `metric_shapes` (host numpy arrays);
    `first` carries the run's first losses over from an earlier window or a checkpoint."""
    names = tuple(metric_shapes)
    losses = tuple(k for k in names if _is_loss(k))
    first = first or {}
    marks = np.zeros((3, len(losses)), np.float32)
    marks[FIRST] = [first[k] if k in first else 0.0 for k in losses]
    has_first = all(k in first for k in losses) and bool(losses)
    return Window(names=names, losses=losses, stats=np.zeros((3, len(names)), np.float32),
                  marks=marks, flags=np.array([has_first, -1, -1], np.int32))


def add(window: Window, metrics: dict[str, jax.Array], step: jax.Array, norms: jax.Array,
        divergence_factor: float) -> Window:
    """The window after one more step (pure; traced inside the loop step). Norm metrics
    count only at steps that computed them (`norms`)."""
    values = jnp.stack([jnp.asarray(metrics[k], jnp.float32) for k in window.names])
    is_norm = np.array([_is_norm(k) for k in window.names])
    counted = jnp.where(is_norm, norms, True)
    losses = values[np.array([window.names.index(k) for k in window.losses], np.int32)]
    stats, marks, flags = window.stats, window.marks, window.flags
    first = jnp.where(flags[HAS_FIRST] > 0, marks[FIRST], losses)
    bad = jnp.any(~jnp.isfinite(losses))
    grown = jnp.bool_(False)
    if divergence_factor > 0:
        grown = jnp.any((first != 0) & (jnp.abs(losses) > divergence_factor * jnp.abs(first)))
        grown &= ~bad
    new_bad = (flags[BAD_STEP] < 0) & bad
    new_grown = (flags[GROWN_STEP] < 0) & grown
    return window.replace(
        stats=jnp.stack([stats[SUMS] + jnp.where(counted, values, 0.0),
                         stats[COUNTS] + counted.astype(jnp.float32), values]),
        marks=jnp.stack([first, jnp.where(new_bad, losses, marks[BAD]),
                         jnp.where(new_grown, losses, marks[GROWN])]),
        flags=jnp.stack([jnp.int32(1), jnp.where(new_bad, step, flags[BAD_STEP]),
                         jnp.where(new_grown, step, flags[GROWN_STEP])]).astype(jnp.int32))


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
    by_name = {kind: dict(zip(window.names, w.stats[row].tolist(), strict=True))
               for kind, row in (("sums", SUMS), ("counts", COUNTS), ("last", LAST))}
    by_loss = {kind: dict(zip(window.losses, w.marks[row].tolist(), strict=True))
               for kind, row in (("first", FIRST), ("bad", BAD), ("grown", GROWN))}
    if not w.flags[HAS_FIRST]:
        by_loss["first"] = {}
    return Reading(bad_step=int(w.flags[BAD_STEP]), grown_step=int(w.flags[GROWN_STEP]),
                   **by_name, **by_loss)


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
