"""The stop-61 scratch scripts' timer: ms a call, the best of 3 rounds of `calls` calls after 2
warm-up calls (each call waited for)."""

import time

import jax


def best_ms(fn, calls: int) -> float:
    """ms per call of `fn()`: the fastest round's mean."""
    for _ in range(2):
        jax.block_until_ready(fn())
    best = float("inf")
    for _ in range(3):
        start = time.perf_counter()
        for _ in range(calls):
            jax.block_until_ready(fn())
        best = min(best, (time.perf_counter() - start) / calls)
    return best * 1e3
