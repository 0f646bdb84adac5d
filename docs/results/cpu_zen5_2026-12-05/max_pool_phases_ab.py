"""A/B (stop 60): CPU max-pools as they were (taps of one padded copy of the input; the
backward recomputed the taps and sent dy through the transposes of nine strided slices)
against `taps.max_pool_by_taps` now (taps of the input's stride phases, each padded on its
own; the first maximum's tap index written to memory once; the input gradient built one
stride phase at a time), in one process; prints ms a call per round.

    PYTHONPATH=. python docs/results/cpu_zen5_2026-12-05/max_pool_phases_ab.py TARGET

TARGET as in keep_in_memory_ab.py (`model:batch`, a registry CNN at 32x32 with its small
stem), or `forward:BxHxWxC:K:S:P` (one K x K max-pool of stride S and padding P, its forward),
`layer:BxHxWxC:K:S:P` (its forward and input gradient of sum(y^2), as
`benchmarks.bench_cnn`'s max-pool row),
or `step:BxHxWxC:K:S:P` (the same with a 1x1 convolution after the pool, so that the
gradient reaching the pool is a product's output, as in a network).
"""

import functools
import os
import sys

from dl_arch.train.host_memory import keep_freed_memory

keep_freed_memory()

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

from dl_arch.models.cnn import common, taps  # noqa: E402
from dl_arch.train.compile_options import model_jit  # noqa: E402

sys.path.insert(0, os.path.dirname(__file__))
from keep_in_memory_ab import build as build_step  # noqa: E402
from keep_in_memory_ab import compare_settings, layer_input  # noqa: E402


@functools.partial(jax.custom_vjp, nondiff_argnums=(1, 2, 3))
def before(x, window, stride, padding):
    """max_pool_by_taps as it was (stop 59)."""
    return taps._max_of(taps.window_taps(x, (window, window), (stride, stride), padding,
                                         -jnp.inf))


def _before_fwd(x, window, stride, padding):
    return before(x, window, stride, padding), x


def _before_bwd(window, stride, padding, x, dy):
    tap_list, back = jax.vjp(lambda x: taps.window_taps(x, (window, window), (stride, stride),
                                                        padding, -jnp.inf), x)
    y = taps._max_of(tap_list)
    taken = jnp.zeros(y.shape, bool)
    grads = []
    for tap in tap_list:
        first = (tap == y) & ~taken
        taken = taken | first
        grads.append(jnp.where(first, dy, jnp.zeros_like(dy)))
    return back(grads)


before.defvjp(_before_fwd, _before_bwd)
NOW = taps.max_pool_by_taps


def build_run(target):
    kind = target.split(":")[0]
    if kind not in ("forward", "layer", "step"):
        return build_step(target)
    _, dims, k, s, p = target.split(":")
    rng, x = layer_input(dims)
    k, s, p = int(k), int(s), int(p)
    pool = lambda x: common.max_pool(x, k, s, padding=p)  # noqa: E731
    if kind == "forward":
        forward = model_jit(pool)
        return lambda: forward(x)
    if kind == "layer":
        grad = model_jit(jax.grad(lambda x: jnp.sum(pool(x) ** 2)))
        return lambda: grad(x)
    w = jnp.asarray(rng.standard_normal((x.shape[-1],) * 2, np.float32) / 8)
    grad = model_jit(jax.grad(lambda x, w: jnp.sum((pool(x) @ w) ** 2), argnums=(0, 1)))
    return lambda: grad(x, w)


def set_pool(fn):
    common.max_pool_by_taps = fn  # read when a model is traced


def main():
    target = sys.argv[1]
    compare_settings(target, [("before", before), ("now", NOW)], set_pool, build_run)


if __name__ == "__main__":
    main()
