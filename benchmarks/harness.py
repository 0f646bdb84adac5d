"""Side-by-side timing: ours and a reference in one process, reported as a ratio.

Machines here are shared and noisy, so rows alternate ours/reference measurements and
report medians; a ratio > 1 means ours is faster. `python -m benchmarks.run --quick`.
"""

from __future__ import annotations

import dataclasses
import os
import statistics
import time
from collections.abc import Callable
from typing import Any

import jax

# PyTorch's OpenMP workers spin-wait after each parallel region (GNU default: 300k spins),
# stealing the cores that XLA's next alternating measurement needs: our LSTM row measured
# 133 ms beside torch vs 108 ms alone. A short spin keeps torch at its own speed (99 vs
# 106 ms) and ours too; OMP_WAIT_POLICY=PASSIVE instead slowed torch 1.5x. Must be set
# before torch is first imported.
os.environ.setdefault("GOMP_SPINCOUNT", "20000")


def block(x: Any) -> Any:
    """Waits for every jax array in `x` (numpy/torch outputs pass through)."""
    return jax.block_until_ready(x)


def median_seconds(fn: Callable[[], Any], repeats: int) -> list[float]:
    """Per-call wall times of `fn()` (already warmed up), `repeats` times."""
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        block(fn())
        times.append(time.perf_counter() - t0)
    return times


@dataclasses.dataclass
class Row:
    """One benchmark line: our time, the reference's, and their ratio."""

    name: str
    ours_s: float
    ref_s: float | None = None
    ref_name: str = ""
    extra: str = ""  # e.g. "images/s=1234 MFU=3.1%"

    def line(self) -> str:
        if not self.ours_s:  # an information row (e.g. the measured peak)
            return f"{self.name:<48} {self.extra}"
        s = f"{self.name:<48} ours={self.ours_s * 1e3:9.3f} ms"
        if self.ref_s is not None:
            s += f"  {self.ref_name}={self.ref_s * 1e3:9.3f} ms  speedup={self.ref_s / self.ours_s:6.2f}x"
        if self.extra:
            s += f"  {self.extra}"
        return s


def compare(name: str, ours: Callable[[], Any], ref: Callable[[], Any] | None,
            ref_name: str = "ref", quick: bool = False, extra: Callable[[float], str] | None = None
            ) -> Row:
    """Warms both up, then alternates timed rounds so noise hits both alike."""
    warm, rounds, per_round = (1, 3, 2) if quick else (2, 7, 5)
    for _ in range(warm):
        block(ours())
        if ref is not None:
            block(ref())
    t_ours, t_ref = [], []
    for _ in range(rounds):
        t_ours += median_seconds(ours, per_round)
        if ref is not None:
            t_ref += median_seconds(ref, per_round)
    ours_s = statistics.median(t_ours)
    ref_s = statistics.median(t_ref) if ref is not None else None
    return Row(name, ours_s, ref_s, ref_name, extra(ours_s) if extra else "")


_PEAK_CACHE: dict[str, float] = {}


def peak_matmul_flops(quick: bool = False) -> float:
    """Measured float32 matmul FLOP/s of this machine's default device (the MFU denominator)."""
    import jax.numpy as jnp

    key = jax.default_backend()
    if key in _PEAK_CACHE:
        return _PEAK_CACHE[key]
    n = 1024 if (quick or key == "cpu") else 8192
    dtype = jnp.float32 if key == "cpu" else jnp.bfloat16
    a = jnp.ones((n, n), dtype)
    f = jax.jit(lambda x: x @ x)
    block(f(a))
    best = min(median_seconds(lambda: f(a), 5 if quick else 20))
    _PEAK_CACHE[key] = 2 * n**3 / best
    return _PEAK_CACHE[key]


def mfu_text(flops: float, seconds: float, quick: bool = False) -> str:
    """'MFU=x%' of a step taking `seconds`, against the measured peak."""
    return f"MFU={100 * flops / seconds / peak_matmul_flops(quick):.1f}%"


def alternate(fns: list[Callable[[], Any]], quick: bool = False) -> list[float]:
    """Median seconds of each of `fns`, warmed up then timed in alternating rounds (as
    `compare` does for two), so noise hits every one alike."""
    warm, rounds, per_round = (1, 3, 2) if quick else (2, 7, 5)
    for _ in range(warm):
        for fn in fns:
            block(fn())
    times: list[list[float]] = [[] for _ in fns]
    for _ in range(rounds):
        for fn, t in zip(fns, times):
            t += median_seconds(fn, per_round)
    return [statistics.median(t) for t in times]
