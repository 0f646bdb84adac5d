"""A 103 MB jitted output written each call: asynchronous vs synchronous CPU dispatch, both
with glibc's thresholds at 1 GiB. argv: async | sync."""

import ctypes
import sys
import time

libc = ctypes.CDLL("libc.so.6")
print(libc.mallopt(-3, 1 << 30), libc.mallopt(-1, 1 << 30))
import jax  # noqa: E402  (after mallopt, as keep_freed_memory does)
import jax.numpy as jnp  # noqa: E402

if sys.argv[1] == "sync":
    jax.config.update("jax_cpu_enable_async_dispatch", False)


def bench(f, *a, n=9):
    jax.block_until_ready(f(*a))
    ts = []
    for _ in range(n):
        t = time.perf_counter()
        jax.block_until_ready(f(*a))
        ts.append(time.perf_counter() - t)
    return min(ts) * 1e3


x = jnp.ones((32, 112, 112, 64))
print(sys.argv[1], "copy 103MB", bench(jax.jit(lambda x: x * 2), x))
