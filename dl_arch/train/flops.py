"""Matmul and convolution FLOPs of a traced step, counted from its jaxpr.

XLA's cost analysis cannot give this on every backend: on a GPU the compiled program's
matmuls and convolutions are cuBLAS and cuDNN custom calls, which it counts as zero (a
GPT-2-small step read 14x low on an H200), the unoptimised HLO's analysis is refused under
the PJRT plugins, and a `lax.scan` body is counted once whatever its length. The jaxpr is the
same on every backend, so the count below is too: `dot_general` and `conv_general_dilated`
at two FLOPs a multiply-add, a scan's body times its length, a `cond`'s costliest branch, a
while loop's body once (its trip count is not known before it runs). Elementwise work is
left out, as in the usual MFU figures; recomputation under `jax.checkpoint` is counted, since
the device does it. The count is the whole program's: on several devices, the global batch's
(divide by the device count for one device's share).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import jax
from jax.extend import core


def _dot_flops(eqn: Any) -> float:
    (contract_lhs, _), _ = eqn.params["dimension_numbers"]
    lhs = eqn.invars[0].aval.shape
    out = eqn.outvars[0].aval.shape
    return 2.0 * math.prod(out) * math.prod(lhs[d] for d in contract_lhs)


def _conv_flops(eqn: Any) -> float:
    """Each output element sums (input features per group) x (kernel window) products; the
    kernel's own shape holds both, beside its output-feature dimension. A dilated input (a
    transposed convolution, a strided one's input gradient) is mostly inserted zeros, which
    no kernel multiplies: only one tap in prod(lhs_dilation) is counted."""
    rhs = eqn.invars[1].aval.shape
    out_feature_dim = eqn.params["dimension_numbers"].rhs_spec[0]
    per_output = math.prod(rhs) // rhs[out_feature_dim]
    zeros = math.prod(eqn.params["lhs_dilation"])
    return 2.0 * math.prod(eqn.outvars[0].aval.shape) * per_output / zeros


def _inner(value: Any) -> list[Any]:
    """The jaxprs held in one equation parameter (a call's body, a cond's branches)."""
    values = value if isinstance(value, (tuple, list)) else (value,)
    return [v.jaxpr if isinstance(v, core.ClosedJaxpr) else v
            for v in values if isinstance(v, (core.ClosedJaxpr, core.Jaxpr))]


def jaxpr_flops(jaxpr: Any) -> float:
    """Matmul and convolution FLOPs of one evaluation of `jaxpr` (a Jaxpr or ClosedJaxpr)."""
    jaxpr = jaxpr.jaxpr if isinstance(jaxpr, core.ClosedJaxpr) else jaxpr
    total = 0.0
    for eqn in jaxpr.eqns:
        name = eqn.primitive.name
        if name == "dot_general":
            total += _dot_flops(eqn)
        elif name == "conv_general_dilated":
            total += _conv_flops(eqn)
        elif name == "cond":
            total += max(jaxpr_flops(b) for b in eqn.params["branches"])
        elif name == "scan":
            total += eqn.params["length"] * jaxpr_flops(eqn.params["jaxpr"])
        else:  # calls: jit, custom_jvp/vjp, checkpoint, shard_map, while (body once)
            total += sum(jaxpr_flops(j) for v in eqn.params.values() for j in _inner(v))
    return total


def step_flops(fn: Callable, *args: Any) -> float:
    """Matmul and convolution FLOPs of one call of `fn(*args)` (jitted or not; the arguments
    may be arrays or `jax.ShapeDtypeStruct`s): traced, never run or compiled."""
    traced = fn.trace(*args) if hasattr(fn, "trace") else jax.jit(fn).trace(*args)
    return jaxpr_flops(traced.jaxpr)
