"""A 103 MB jitted output written each call: asynchronous vs synchronous CPU dispatch, both
with glibc's thresholds at 1 GiB. argv: async | sync."""

import ctypes
import sys

libc = ctypes.CDLL("libc.so.6")
print(libc.mallopt(-3, 1 << 30), libc.mallopt(-1, 1 << 30))
import jax  # noqa: E402  (after mallopt, as keep_freed_memory does)
import jax.numpy as jnp  # noqa: E402

from benchmarks.harness import block, median_seconds  # noqa: E402

if sys.argv[1] == "sync":
    jax.config.update("jax_cpu_enable_async_dispatch", False)


def bench(f, *a, n=9):
    """Fastest of n warmed-up calls, ms."""
    block(f(*a))
    return min(median_seconds(lambda: f(*a), n)) * 1e3


x = jnp.ones((32, 112, 112, 64))
print(sys.argv[1], "copy 103MB", bench(jax.jit(lambda x: x * 2), x))
