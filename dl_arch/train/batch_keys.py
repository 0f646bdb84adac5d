"""Which batch keys the train step reads, found in its jaxpr.

A dataset can give more than a task reads: `shapes` gives a classifier the detection fields
`boxes` and `box_labels` too. Every array of a training batch costs, at every step, a
transfer out of grain's worker processes and a placement on the devices (two grain workers
hand over about a fifth more batches a second of two small arrays than of four, on a 2-core
CPU), so the loop drops the keys its step never reads where batches are loaded. A key counts as read
when any of its leaves is an input of an equation of the traced step or one of its outputs;
nothing is dropped when the jaxpr's inputs do not line up with the arguments' leaves. (The
tasks that test a key's presence, `"weights" in batch`, read it when it is there, so a
present key they branch on is never dropped.)
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
from jax.extend.core import Var


def probe_step(step_fn: Callable[[Any, dict], tuple[Any, dict]], state: Any, batch: dict
               ) -> tuple[dict[str, Any], tuple[str, ...]]:
    """(shapes of the metrics `step_fn(state, batch)` returns, the top-level keys of `batch`
    it never reads), from one trace; `state` and `batch` may be abstract."""
    traced = jax.jit(step_fn).trace(state, batch)
    metric_shapes = traced.out_info[1]
    return metric_shapes, unread_keys(traced.jaxpr.jaxpr, (state, batch), position=1)


def unread_keys(jaxpr: Any, args: tuple, position: int) -> tuple[str, ...]:
    """The top-level keys of the dict `args[position]` none of whose leaves `jaxpr` (traced
    from `args`, flattened in order) reads; () when its inputs are not those leaves."""
    counts = [len(jax.tree_util.tree_leaves(a)) for a in args]
    if len(jaxpr.invars) != sum(counts):
        return ()
    read = {v for eqn in jaxpr.eqns for v in eqn.invars if isinstance(v, Var)}
    read.update(v for v in jaxpr.outvars if isinstance(v, Var))
    invars = jaxpr.invars[sum(counts[:position]):]
    # each leaf's top-level key, in the order jax flattens the dict (its keys sorted)
    paths = [path[0].key for path, _ in jax.tree_util.tree_flatten_with_path(args[position])[0]]
    read_keys = {key for key, var in zip(paths, invars) if var in read}
    return tuple(key for key in args[position] if key not in read_keys)
