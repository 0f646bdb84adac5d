"""Scratch (stop 61): 256 steps of the LSTM's recurrent product with the batch leading
(h (32, 256) @ W (256, 1024), as the layer runs it) against the hidden size leading
(W^T (1024, 256) @ h^T (256, 32)); best of 3 x 20 calls, ms.

    PYTHONPATH=. python docs/results/cpu_zen4_2026-12-05/recurrent_dot_layout.py
"""
# ruff: noqa: E402, E741, E501, B007


from dl_arch.train.host_memory import keep_freed_memory

keep_freed_memory()

import jax
import jax.numpy as jnp
import numpy as np
from best_of import best_ms

from dl_arch.train.compile_options import model_jit

r = np.random.default_rng(0)
W = jnp.asarray(r.standard_normal((256, 1024)) * 0.05, jnp.float32)
WT = W.T.copy()
h0 = jnp.asarray(r.standard_normal((32, 256)), jnp.float32)


def bh(h, W):
    def step(h, _):
        z = h @ W
        return jnp.tanh(z[:, :256] + z[:, 256:512]), None

    return jax.lax.scan(step, h, None, length=256)[0]


def hb(hT, WT):
    def step(hT, _):
        z = WT @ hT
        return jnp.tanh(z[:256] + z[256:512]), None

    return jax.lax.scan(step, hT, None, length=256)[0]


f1, f2 = model_jit(bh), model_jit(hb)


def t(f, *a, n=20):
    return best_ms(lambda: f(*a), n)


for _ in range(2):
    print(f"B-major {t(f1, h0, W):.1f} ms, H-major {t(f2, h0.T.copy(), WT):.1f} ms")
print(np.abs(np.asarray(f1(h0, W)) - np.asarray(f2(h0.T.copy(), WT)).T).max())
