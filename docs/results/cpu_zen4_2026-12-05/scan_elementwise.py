"""Scratch (stop 61): what one elementwise function of a 32x1024 carry costs in a 256-step
`lax.scan` (tanh, sigmoid, exp, a rational tanh), against the same tanh on all steps at
once; best of 3 x 20 calls, ms.

    PYTHONPATH=. python docs/results/cpu_zen4_2026-12-05/scan_elementwise.py
"""
# ruff: noqa: E402, E741, E501, B007

import time

from dl_arch.train.host_memory import keep_freed_memory

keep_freed_memory()

import jax
import jax.numpy as jnp
import numpy as np
from best_of import best_ms

from dl_arch.train.compile_options import model_jit

r = np.random.default_rng(0)
z0 = jnp.asarray(r.standard_normal((32, 1024)), jnp.float32)
xs = jnp.asarray(r.standard_normal((256, 32, 1024)), jnp.float32)


def mk(fn):
    def run(z0, xs):
        def step(z, x):
            return fn(z * 0.5 + x), None

        return jax.lax.scan(step, z0, xs)[0]

    return model_jit(run)


fns = {
    "add_only": lambda z: z * 0.9,
    "tanh": jnp.tanh,
    "tanh_via_exp": lambda z: 1.0 - 2.0 / (jnp.exp(2.0 * z) + 1.0),
    "sigmoid": jax.nn.sigmoid,
    "exp": lambda z: jnp.exp(-jnp.abs(z)),
    "tanh_rational": lambda z: (
        jnp.clip(z, -9, 9) * (27 + jnp.clip(z, -9, 9) ** 2) / (27 + 9 * jnp.clip(z, -9, 9) ** 2)
    ),
}


def t(f, n=20):
    return best_ms(lambda: f(z0, xs), n)


for k, fn in fns.items():
    f = mk(fn)
    print(k, f"{t(f):.2f} ms / 256 steps")
# no scan: one big elementwise
big = model_jit(lambda x: jnp.tanh(x * 0.5))
for _ in range(2):
    big(xs).block_until_ready()
t0 = time.perf_counter()
for _ in range(20):
    big(xs).block_until_ready()
print("tanh on all 256x32x1024 at once", (time.perf_counter() - t0) / 20 * 1e3, "ms")
