"""Recurrent layers: ours vs Flax `nn.RNN` cells and PyTorch on CPU; scan vs unrolled compile time.

    python -m benchmarks.bench_rnn [--quick]
    python -m benchmarks.run --only rnn [--quick]

Rows time forward + backward (gradients of sum(h^2) w.r.t. every weight) of one layer on
(batch 32, T 256, 128 -> 256), smaller with --quick. speedup > 1: ours is faster. The
compile rows time `jit(...).lower().compile()` of the same layer with a rolled `lax.scan`
(ours) against a fully unrolled loop (reference) as T grows: the scan stays flat.
Under `benchmarks.run` both sides reuse freed host memory (`dl_arch.train.host_memory`), as
a caching allocator would; by default glibc maps their large buffers afresh at each call.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from benchmarks.harness import Row, compare
from benchmarks.phases import phase_text
from dl_arch.models.rnn import Recurrent


def _ours(cell: str, x, hidden: int, unroll=1):
    """(jitted grad, params, loss): the loss is sum(h^2) of the layer's outputs."""
    layer = Recurrent(hidden, cell, unroll=unroll)
    params = layer.init(jax.random.key(1), x)

    def loss(p, xx):
        return jnp.sum(layer.apply(p, xx)[0] ** 2)

    return jax.jit(jax.grad(loss)), params, loss


def _flax(cell: str, x, hidden: int):
    c = nn.OptimizedLSTMCell(hidden) if cell == "lstm" else nn.GRUCell(hidden)
    layer = nn.RNN(c)
    params = layer.init(jax.random.key(1), x)
    fn = jax.jit(jax.grad(lambda p, xx: jnp.sum(layer.apply(p, xx) ** 2)))
    return fn, params


def _torch(cell: str, x_np: np.ndarray, hidden: int):
    import torch

    mod = (torch.nn.LSTM if cell == "lstm" else torch.nn.GRU)(x_np.shape[-1], hidden,
                                                              batch_first=True)
    xt = torch.from_numpy(np.array(x_np))

    def run():
        mod.zero_grad(set_to_none=True)
        y, _ = mod(xt)
        (y**2).sum().backward()
        return None

    return run


def rows(quick: bool) -> Iterator[Row]:
    """Forward+backward rows for LSTM and GRU, then compile-time rows."""
    yield from speed_rows(quick)
    yield from compile_rows(quick)


def speed_rows(quick: bool) -> Iterator[Row]:
    """Forward+backward time of our layers vs Flax and PyTorch."""
    b, t, d, h = (16, 64, 32, 64) if quick else (32, 256, 128, 256)
    x = jax.random.normal(jax.random.key(0), (b, t, d))
    x_np = np.asarray(x)
    for cell in ("lstm", "gru"):
        ours, p_ours, loss = _ours(cell, x, h)
        ref, p_ref = _flax(cell, x, h)
        flax_name = "flax_OptimizedLSTMCell" if cell == "lstm" else "flax_GRUCell"
        row = compare(f"{cell} fwd+bwd B{b} T{t} {d}->{h} vs flax", lambda: ours(p_ours, x),
                      lambda: ref(p_ref, x), flax_name, quick)
        phases = phase_text(loss, lambda: (p_ours, x), None, quick)  # once: same layer
        row.extra = phases
        yield row
        row = compare(f"{cell} fwd+bwd B{b} T{t} {d}->{h} vs torch", lambda: ours(p_ours, x),
                      _torch(cell, x_np, h), f"torch.nn.{cell.upper()}", quick)
        row.extra = phases
        yield row


def compile_rows(quick: bool) -> Iterator[Row]:
    """Compile time of the jitted fwd+bwd: rolled scan vs fully unrolled, as T grows."""
    for steps in ((8, 16, 32) if quick else (16, 32, 64)):
        xs = jax.random.normal(jax.random.key(0), (8, steps, 16))
        times = []
        for unroll in (1, True):
            layer = Recurrent(32, "lstm", unroll=unroll, time_chunk=steps)  # one chunk
            params = layer.init(jax.random.key(1), xs)
            fn = jax.jit(jax.grad(lambda p, xx, m=layer: jnp.sum(m.apply(p, xx)[0] ** 2)))
            t0 = time.perf_counter()
            fn.lower(params, xs).compile()
            times.append(time.perf_counter() - t0)
        yield Row(f"compile lstm fwd+bwd T={steps}: scan vs unrolled", times[0], times[1],
                  "unrolled", "phases: n/a (a compile-time row)")


if __name__ == "__main__":
    from benchmarks.run import main_for

    main_for("rnn")
