"""Scratch A/B (stop 61): a train step with flax's BatchNorm against the same layer with a
hand-written backward (`jax.custom_vjp`: two reductions and one elementwise pass), the same
parameters, statistics and losses; median ms of 10 steps (5 for ResNet), three rounds.

    PYTHONPATH=. python docs/results/cpu_zen4_2026-12-05/batch_norm_vjp_ab.py mobilenet_v2:32
"""
# ruff: noqa: E402, E741, E501, B007

import sys
import time

from dl_arch.train.host_memory import keep_freed_memory

keep_freed_memory()
import functools

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from benchmarks.bench_cnn import our_sgd_step
from dl_arch.models.cnn import common
from dl_arch.registry import MODELS


@functools.partial(jax.custom_vjp, nondiff_argnums=(3,))
def bn_train(x, scale, bias, eps):
    return _fwd(x, scale, bias, eps)[0]


def _fwd(x, scale, bias, eps):
    axes = tuple(range(x.ndim - 1))
    xf = x.astype(jnp.float32)
    mean = xf.mean(axes)
    var = jnp.maximum(0.0, (xf * xf).mean(axes) - mean * mean)
    inv = jax.lax.rsqrt(var + eps)
    y = ((xf - mean) * (scale * inv) + bias).astype(x.dtype)
    return (y, mean, var), (x, mean, inv, scale)


def _bwd(eps, res, cts):
    x, mean, inv, scale = res
    dy, dmean, dvar = cts
    axes = tuple(range(x.ndim - 1))
    n = x.size // x.shape[-1]
    xf = x.astype(jnp.float32)
    dyf = dy.astype(jnp.float32)
    xhat = (xf - mean) * inv
    dbias = dyf.sum(axes)
    dscale = (dyf * xhat).sum(axes)
    g = scale * inv
    # dx from y, plus the direct paths through mean and var
    dx = g * (dyf - (dbias + xhat * dscale) / n) + dmean / n + dvar * 2.0 * (xf - mean) / n
    return dx.astype(x.dtype), dscale.astype(scale.dtype), dbias.astype(scale.dtype)


bn_train.defvjp(_fwd, _bwd)


class BN(nn.Module):
    use_running_average: bool = False
    momentum: float = 0.9
    epsilon: float = 1e-5
    dtype: object = jnp.float32
    param_dtype: object = jnp.float32

    @nn.compact
    def __call__(self, x):
        c = x.shape[-1]
        ra_mean = self.variable("batch_stats", "mean", lambda: jnp.zeros((c,), jnp.float32))
        ra_var = self.variable("batch_stats", "var", lambda: jnp.ones((c,), jnp.float32))
        scale = self.param("scale", nn.initializers.ones, (c,), self.param_dtype)
        bias = self.param("bias", nn.initializers.zeros, (c,), self.param_dtype)
        if self.use_running_average:
            inv = jax.lax.rsqrt(ra_var.value + self.epsilon)
            return ((x - ra_mean.value) * (scale * inv) + bias).astype(self.dtype)
        y, mean, var = bn_train(x, scale, bias, self.epsilon)
        if not self.is_initializing():
            ra_mean.value = self.momentum * ra_mean.value + (1 - self.momentum) * mean
            ra_var.value = self.momentum * ra_var.value + (1 - self.momentum) * var
        return y.astype(self.dtype)


orig = common.batch_norm


def custom(train, dtype, param_dtype, epsilon=1e-5, name=None):
    return BN(
        use_running_average=not train,
        momentum=0.9,
        epsilon=epsilon,
        dtype=dtype,
        param_dtype=param_dtype,
        name=name,
    )


import dl_arch.models.cnn.mobilenet as M
import dl_arch.models.cnn.resnet as R


def build(name, batch, mode, **kw):
    for mod in (common, M, R):
        mod.batch_norm = custom if mode == "custom" else orig
    rng = np.random.default_rng(0)
    images = jnp.asarray(rng.standard_normal((batch, 32, 32, 3), np.float32))
    labels = jnp.asarray(rng.integers(0, 10, batch).astype(np.int32))
    run, step, holder = our_sgd_step(MODELS.get(name)(num_classes=10, stem="small", **kw), images, labels)
    return run, holder


def timeit(run, n):
    for _ in range(2):
        jax.block_until_ready(run())
    ts = []
    for _ in range(n):
        t0 = time.perf_counter()
        jax.block_until_ready(run())
        ts.append(time.perf_counter() - t0)
    return np.median(ts) * 1e3


target = sys.argv[1]
name, batch = target.split(":")
kw = dict(dropout_rate=0.0) if name.startswith("mobilenet") else {}
runs = {m: build(name, int(batch), m, **kw) for m in ("flax", "custom")}
# same losses for a few steps from the same init
l = {m: [float(runs[m][0]()) for _ in range(3)] for m in runs}
print("losses", l)
for _r in range(3):
    print(
        target,
        " ".join(f"{m}={timeit(runs[m][0], 5 if 'resnet' in name else 10):.1f}ms" for m in runs),
        flush=True,
    )
