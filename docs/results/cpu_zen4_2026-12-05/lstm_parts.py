"""Scratch (stop 61): where the LSTM row's forward goes. 256 steps of: the recurrent dot
alone (`dot_only`), the dot and the textbook gates (`dot_gates`), our fused forward
(`ours_fwd`, `recurrence._fused_fwd`) and our forward and backward (`ours_fwd_bwd`);
T256 B32 D128 H256, best of 3 x 10 calls.

    PYTHONPATH=. python docs/results/cpu_zen4_2026-12-05/lstm_parts.py
"""
# ruff: noqa: E402, E741, E501, B007


from dl_arch.train.host_memory import keep_freed_memory

keep_freed_memory()

import jax
import jax.numpy as jnp
import numpy as np
from best_of import best_ms

from dl_arch.models.layers.recurrence import _fused_fwd, fused_recurrence
from dl_arch.train.compile_options import model_jit

T, B, D, H = 256, 32, 128, 256
r = np.random.default_rng(0)
x = jnp.asarray(r.standard_normal((T, B, D)), jnp.float32)
w_ih = jnp.asarray(r.standard_normal((D, 4 * H)) * 0.05, jnp.float32)
w_hh = jnp.asarray(r.standard_normal((H, 4 * H)) * 0.05, jnp.float32)
b = jnp.zeros((4 * H,), jnp.float32)
xg = jnp.asarray(r.standard_normal((T, B, 4 * H)), jnp.float32)
s0 = (jnp.zeros((B, H)), jnp.zeros((B, H)))


def dot_only(xg, w):
    def step(h, xg_t):
        return jnp.tanh((h @ w)[:, :H] + xg_t[:, :H]), None

    return jax.lax.scan(step, s0[1], xg)[0]


def dot_gates(xg, w):
    def step(s, xg_t):
        c, h = s
        z = h @ w + xg_t
        i, f, g, o = (
            jax.nn.sigmoid(z[:, :H]),
            jax.nn.sigmoid(z[:, H : 2 * H]),
            jnp.tanh(z[:, 2 * H : 3 * H]),
            jax.nn.sigmoid(z[:, 3 * H :]),
        )
        c = f * c + i * g
        h = o * jnp.tanh(c)
        return (c, h), None

    return jax.lax.scan(step, s0, xg)[0]


def ours_fwd(x, w):
    return _fused_fwd("lstm", "tanh", False, 1, 16, x, w_ih, b, w, None, s0, None)[0][0]


def ours_fwd_bwd(x, w):
    def loss(x, w):
        (fin, h) = fused_recurrence("lstm", x, w_ih, b, w, None, s0)
        return jnp.sum(h * h)

    return jax.grad(loss, argnums=(0, 1))(x, w)


fs = {
    "dot_only": (model_jit(dot_only), xg),
    "dot_gates": (model_jit(dot_gates), xg),
    "ours_fwd": (model_jit(ours_fwd), x),
    "ours_fwd_bwd": (model_jit(ours_fwd_bwd), x),
}


def t(f, a, n=10):
    return best_ms(lambda: f(a, w_hh), n)


for r_ in range(2):
    print(" ".join(f"{k}={t(f, a):.1f}ms" for k, (f, a) in fs.items()))
