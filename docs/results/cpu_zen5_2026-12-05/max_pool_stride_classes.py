"""Scratch (stop 56, not adopted): the 3x3 stride-2 max-pool with its taps read from the
input's stride classes (no padded copy) and its gradient summed per class, then interleaved;
against `common.max_pool` (taps of the padded input) and PyTorch. Prints ms a call."""

import functools
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np
import torch

from benchmarks.harness import block, median_seconds
from dl_arch.models.cnn.common import max_pool

torch.set_num_threads(2)


def _grid_taps(x, k, s, pads, fill):
    """tap (u,v) of the padded input, from the stride classes of the unpadded input."""
    B, H, W, C = x.shape
    (lh, hh), (lw, hw) = pads
    OH, OW = (H + lh + hh - k) // s + 1, (W + lw + hw - k) // s + 1
    out = []
    for u in range(k):
        a, qa = (u - lh) % s, (u - lh) // s
        for v in range(k):
            b, qb = (v - lw) % s, (v - lw) // s
            g = x[:, a::s, b::s]
            M, N = g.shape[1:3]
            out.append(
                jax.lax.pad(
                    g,
                    jnp.array(fill, x.dtype),
                    ((0, 0, 0), (-qa, OH - M + qa, 0), (-qb, OW - N + qb, 0), (0, 0, 0)),
                )
            )
    return out


def _argmax_of(taps):
    best, idx = taps[0], jnp.zeros(taps[0].shape, jnp.int8)
    for t, tap in enumerate(taps[1:], 1):
        better = tap > best
        idx = jnp.where(better, jnp.int8(t), idx)
        best = jnp.maximum(best, tap)
    return best, idx


def _scatter_back(dy, idx, xshape, k, s, pads):
    B, H, W, C = xshape
    (lh, hh), (lw, hw) = pads
    OH, OW = dy.shape[1:3]
    Mx, Nx = -(-H // s), -(-W // s)
    rows = []
    for a in range(s):
        cols = []
        for b in range(s):
            acc = None
            for u in range(k):
                if (u - lh) % s != a:
                    continue
                qa = (u - lh) // s
                for v in range(k):
                    if (v - lw) % s != b:
                        continue
                    qb = (v - lw) // s
                    g = jnp.where(idx == u * k + v, dy, jnp.zeros_like(dy))
                    g = jax.lax.pad(
                        g,
                        jnp.zeros((), dy.dtype),
                        ((0, 0, 0), (qa, Mx - OH - qa, 0), (qb, Nx - OW - qb, 0), (0, 0, 0)),
                    )
                    acc = g if acc is None else acc + g
            if acc is None:
                acc = jnp.zeros((B, Mx, Nx, C), dy.dtype)
            cols.append(acc)
        rows.append(jnp.stack(cols, axis=3))  # B Mx Nx s C
    full = jnp.stack(rows, axis=2)  # B Mx s Nx s C
    return full.reshape(B, Mx * s, Nx * s, C)[:, :H, :W]


@functools.partial(jax.custom_vjp, nondiff_argnums=(1, 2, 3))
def pool_a(x, k, s, pads):
    return _argmax_of(_grid_taps(x, k, s, pads, -jnp.inf))[0]


def _fa(x, k, s, pads):
    y, idx = _argmax_of(_grid_taps(x, k, s, pads, -jnp.inf))
    return y, (idx, x.shape)


def _ba(k, s, pads, res, dy):
    idx, shape = res
    return (_scatter_back(dy, idx, shape, k, s, pads),)


pool_a.defvjp(_fa, _ba)


@functools.partial(jax.custom_vjp, nondiff_argnums=(1, 2, 3))
def pool_b(x, k, s, pads):
    return _argmax_of(_grid_taps(x, k, s, pads, -jnp.inf))[0]


def _fb(x, k, s, pads):
    return pool_b(x, k, s, pads), x


def _bb(k, s, pads, x, dy):
    _, idx = _argmax_of(_grid_taps(x, k, s, pads, -jnp.inf))
    return (_scatter_back(dy, idx, x.shape, k, s, pads),)


pool_b.defvjp(_fb, _bb)


def bench(f, *a, n=7):
    """Fastest of n warmed-up calls, ms."""
    block(f(*a))
    return min(median_seconds(lambda: f(*a), n)) * 1e3


B, HW, C = (32, 112, 64) if len(sys.argv) < 2 else tuple(map(int, sys.argv[1:4]))
k, s, p = (3, 2, 1) if len(sys.argv) < 5 else tuple(map(int, sys.argv[4:7]))
x_np = np.random.default_rng(0).standard_normal((B, HW, HW, C), dtype=np.float32)
x = jnp.asarray(x_np)
pads = ((p, p), (p, p))
cur = jax.jit(jax.grad(lambda x: jnp.sum(max_pool(x, k, s, padding=p) ** 2)))
A = jax.jit(jax.grad(lambda x: jnp.sum(pool_a(x, k, s, pads) ** 2)))
Bf = jax.jit(jax.grad(lambda x: jnp.sum(pool_b(x, k, s, pads) ** 2)))
fw_cur = jax.jit(lambda x: max_pool(x, k, s, padding=p))
fw_a = jax.jit(lambda x: pool_a(x, k, s, pads))
g0 = cur(x)
for f, nm in [(A, "A"), (Bf, "B")]:
    g = f(x)
    print(nm, "maxabs diff", float(jnp.max(jnp.abs(g - g0))))
print("fwd equal", bool(jnp.all(fw_cur(x) == fw_a(x))))
xt = torch.from_numpy(x_np).permute(0, 3, 1, 2).requires_grad_(True)


def tref():
    xt.grad = None
    (torch.nn.functional.max_pool2d(xt, k, s, p) ** 2).sum().backward()
    return xt.grad


tref()
for _ in range(2):
    tt = []
    for _ in range(7):
        t = time.perf_counter()
        tref()
        tt.append(time.perf_counter() - t)
    print(
        f"cur {bench(cur, x):.1f}  A(saved idx) {bench(A, x):.1f}  "
        f"B(recompute) {bench(Bf, x):.1f}  torch {min(tt) * 1e3:.1f} | "
        f"fwd cur {bench(fw_cur, x):.1f} new {bench(fw_a, x):.1f}"
    )
