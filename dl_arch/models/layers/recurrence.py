"""The fused recurrence: what `dl_arch.models.rnn.Recurrent` trains with by default.

It computes the equations of `rnn_cells.cell_step` (gate layouts in the docstring of
`dl_arch.models.rnn`) with two rewrites that change only rounding: the LSTM takes its four
gates with one tanh over the fused block, since sigmoid(z) = (1 + tanh(z/2)) / 2, and each
step saves the gate activations its backward pass reads. tests/test_rnn_layer.py checks
values and gradients against autodiff of `rnn_cells.scan_recurrence`; tests/test_rnn_cells.py
against numpy, finite differences and torch.nn.LSTM/GRU.

Performance layout, shared by every cell: the input projection of all time steps is one
large matmul hoisted out of the recurrence (`x_BTD @ w_ih -> xg_TBG`; on CPU one per chunk
of 16 steps, `time_chunk`, so the projection stays in cache), and each step does a single
fused matmul of the previous hidden state with the recurrent weights of every gate
(`h_BH @ w_hh -> hg_BG`, G = gates * H). Only that small matmul and the elementwise gate
maths run inside the `lax.scan`.

The backward pass is written by hand (`jax.custom_vjp`). Autodiff of the scan accumulates
dW_hh += h_{t-1}^T dz_t inside its backward loop, one small matmul per step; here the loop
only carries dL/dh (and dL/dc) and emits the gate gradients dz_t, and the weight gradients
become large (k*B)-long matmuls per chunk of k steps after it. Forward-mode differentiation
needs the autodiff path (`Recurrent(fused_backward=False)`).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp

from dl_arch.config.errors import ConfigError
from dl_arch.models.layers.rnn_cells import ACTIVATIONS, State, state_hidden


def _flat(a_TBX: jax.Array) -> jax.Array:
    """(T, B, X) -> (T*B, X), so weight gradients are plain 2-D matmuls."""
    return a_TBX.reshape(-1, a_TBX.shape[-1])


def project_inputs(x_TBD: jax.Array, w_ih: jax.Array, b: jax.Array) -> jax.Array:
    """The input part of every gate pre-activation, xg_TBG = x W_ih + b, as one 2-D matmul."""
    return (_flat(x_TBD) @ w_ih + b[None, :]).reshape(*x_TBD.shape[:2], -1)


def _prefetch_scan(body: Callable, init: Any, xs: Any, reverse: bool, unroll: int | bool
                   ) -> tuple[Any, Any]:
    """`lax.scan(body, init, xs)` that hands each step a slice of `xs` read one step early.

    The next step's slice travels in the carry, so XLA materialises it as a small buffer.
    A slice taken inside the step is instead fused into the gate arithmetic, and on CPU
    that fused dynamic-slice makes the elementwise work about twice as slow (measured in
    benchmarks/bench_rnn.py). Only for the hand-differentiated loops: autodiff through the
    carried slice would add a full-size cotangent on every step.
    """
    steps = jax.tree.leaves(xs)[0].shape[0]
    last = steps - 1

    def take(t):
        return jax.tree.map(lambda a: jax.lax.dynamic_index_in_dim(a, t, 0, keepdims=False), xs)

    def step(carry, t):
        state, current = carry
        nxt = take(jnp.clip(t - 1 if reverse else t + 1, 0, last))
        state, ys = body(state, current)
        return (state, nxt), ys

    (final, _), ys = jax.lax.scan(step, (init, take(last if reverse else 0)), jnp.arange(steps),
                                  reverse=reverse, unroll=unroll)
    return final, ys


CPU_TIME_CHUNK = 16  # steps per input matmul on CPU (benchmarks/bench_rnn.py: 1.15-1.25x)


def time_chunk_size(steps: int, chunk: int | None) -> int:
    """Steps per hoisted input matmul: the largest divisor of `steps` that is <= chunk.

    None picks by backend: all steps in one matmul on GPU/TPU; 16 on CPU, where writing
    the whole (T, B, G) projection to memory and reading it back costs more than the larger
    matmul saves (the chunk's slice stays in cache).
    """
    if chunk is None:
        chunk = CPU_TIME_CHUNK if jax.default_backend() == "cpu" else steps
    if chunk >= steps:
        return steps
    if chunk < 1:
        raise ConfigError(f"config.model.time_chunk={chunk} must be >= 1 (or None: all steps)")
    return max(k for k in range(1, chunk + 1) if steps % k == 0)


def _split(a: jax.Array | None, k: int) -> jax.Array | None:
    """(T, ...) -> (T/k, k, ...): chunks of k time steps."""
    return None if a is None else a.reshape(a.shape[0] // k, k, *a.shape[1:])


def _merge(tree: Any) -> Any:
    """(T/k, k, ...) -> (T, ...) for every array of a tree."""
    return jax.tree.map(lambda a: a.reshape(-1, *a.shape[2:]), tree)


def fused_recurrence(cell: str, x_TBD: jax.Array, w_ih: jax.Array, b: jax.Array, w_hh: jax.Array,
                     b_hn: jax.Array | None, state0: State, *, mask_TB: jax.Array | None = None,
                     reverse: bool = False, unroll: int | bool = 1, activation: str = "tanh",
                     time_chunk: int | None = None) -> tuple[State, jax.Array]:
    """Input projection plus recurrence with the hand-written backward pass; (final, h_TBH).

    Same contract as `rnn_cells.scan_recurrence` (masking, `reverse`, `unroll`),
    but from the raw inputs: the input projection of `time_chunk` steps at a time (None: by
    backend, see `time_chunk_size`) is one matmul outside the per-step loop, and so are the
    weight gradients in the backward pass.
    """
    k = time_chunk_size(x_TBD.shape[0], time_chunk)
    return _fused_recurrence(cell, activation, reverse, unroll, k, x_TBD, w_ih, b, w_hh, b_hn,
                             state0, mask_TB)


@functools.partial(jax.custom_vjp, nondiff_argnums=(0, 1, 2, 3, 4))
def _fused_recurrence(cell: str, activation: str, reverse: bool, unroll: int | bool, k: int,
                      x_TBD: jax.Array, w_ih: jax.Array, b: jax.Array, w_hh: jax.Array,
                      b_hn: jax.Array | None, state0: State, mask_TB: jax.Array | None
                      ) -> tuple[State, jax.Array]:
    out, _ = _fused_fwd(cell, activation, reverse, unroll, k, x_TBD, w_ih, b, w_hh, b_hn,
                        state0, mask_TB)
    return out


def _fused_fwd(cell, activation, reverse, unroll, k, x_TBD, w_ih, b, w_hh, b_hn, state0,
               mask_TB):
    """Forward: `rnn_cells.cell_step` of each cell, inlined; saves what the backward pass reads.

    Per step it keeps h_t, h_{t-1} and the cell's activations: h (rnn), the four gates,
    c_{t-1} and tanh(c_t) (lstm), r, z (called u here), n and h W_hn + b_hn (gru).
    """
    hid = w_hh.shape[0]
    act = ACTIVATIONS[activation]
    bh_G = None
    if b_hn is not None:
        bh_G = jnp.concatenate([jnp.zeros((2 * hid,), b_hn.dtype), b_hn])[None, :]
    if cell == "lstm":
        is_g = (jnp.arange(4 * hid) // hid) == 2
        half = jnp.where(is_g, 1.0, 0.5).astype(w_hh.dtype)
        shift = jnp.where(is_g, 0.0, 0.5).astype(w_hh.dtype)

    def step(state, xs):
        xg_BG, m_B = xs
        h_prev = state_hidden(cell, state)
        hg_BG = h_prev @ w_hh
        if cell == "rnn":
            h = act(xg_BG + hg_BG)
            new, res = h, (h,)
        elif cell == "lstm":
            # All four gates with ONE tanh over the fused block: sigmoid(z) = (1 + tanh(z/2))/2,
            # so a per-column scale (1/2 for i, f, o; 1 for g) and offset do it.
            gates = jnp.tanh((xg_BG + hg_BG) * half[None, :]) * half[None, :] + shift[None, :]
            i, f = gates[:, :hid], gates[:, hid:2 * hid]
            g, o = gates[:, 2 * hid:3 * hid], gates[:, 3 * hid:]
            c = f * state[0] + i * g
            tc = jnp.tanh(c)
            h = o * tc
            new, res = (c, h), (gates, state[0], tc)
        else:
            hg_BG = hg_BG + bh_G
            r = jax.nn.sigmoid(xg_BG[:, :hid] + hg_BG[:, :hid])
            u = jax.nn.sigmoid(xg_BG[:, hid:2 * hid] + hg_BG[:, hid:2 * hid])
            hn = hg_BG[:, 2 * hid:]
            n = jnp.tanh(xg_BG[:, 2 * hid:] + r * hn)
            h = (1.0 - u) * n + u * h_prev
            new, res = h, (r, u, n, hn)
        if m_B is not None:
            keep = m_B[:, None]
            new = jax.tree.map(lambda a, b: jnp.where(keep, a, b), new, state)
            h = jnp.where(keep, h, jnp.zeros_like(h))
        return new, (h, h_prev, res)

    def run_chunk(state, xs):
        x_KBD, m_KB = xs
        # The hoisted input projection of k steps: one (k*B, D) x (D, G) matmul.
        xg_KBG = project_inputs(x_KBD, w_ih, b)
        return _prefetch_scan(step, state, (xg_KBG, m_KB), reverse, unroll)

    final, outs = jax.lax.scan(run_chunk, state0, (_split(x_TBD, k), _split(mask_TB, k)),
                               reverse=reverse)
    h_TBH, hprev_TBH, res = _merge(outs)
    return (final, h_TBH), (x_TBD, w_ih, w_hh, hprev_TBH, res, mask_TB)


def _fused_bwd(cell, activation, reverse, unroll, k, saved, cotangents):
    """Backward: the derivatives of those equations, run from the last step to the first.

    Per step, dxg is dL/d(gate pre-activations) and dhg its part through h W_hh (for the
    GRU the candidate block is multiplied by r; z feeds h' directly, `direct`).
    """
    x_TBD, w_ih, w_hh, hprev_TBH, res, mask_TB = saved
    d_final, dy_TBH = cotangents
    w_t = w_hh.T
    hid = w_hh.shape[0]

    def step(dstate, xs):
        dy_BH, m_B, r_t, h_prev = xs
        dc = None
        if cell == "lstm":
            dc, dh = dstate
        else:
            dh = dstate
        if m_B is not None:
            dy_BH = jnp.where(m_B[:, None], dy_BH, jnp.zeros_like(dy_BH))
        dh = dh + dy_BH
        direct = None
        if cell == "rnn":
            (h,) = r_t
            grad = 1.0 - h * h if activation == "tanh" else (h > 0).astype(h.dtype)
            dxg = dh * grad
            dhg = dxg
        elif cell == "lstm":
            gates, c_prev, tc = r_t
            i, f = gates[:, :hid], gates[:, hid:2 * hid]
            g, o = gates[:, 2 * hid:3 * hid], gates[:, 3 * hid:]
            dc = dc + dh * o * (1.0 - tc * tc)
            dxg = jnp.concatenate([dc * g * i * (1.0 - i), dc * c_prev * f * (1.0 - f),
                                   dc * i * (1.0 - g * g), dh * tc * o * (1.0 - o)], axis=-1)
            dhg = dxg
            dc = dc * f
        else:
            r, u, n, hn = r_t
            dn = dh * (1.0 - u) * (1.0 - n * n)
            dr = dn * hn * r * (1.0 - r)
            du = dh * (h_prev - n) * u * (1.0 - u)
            dxg = jnp.concatenate([dr, du, dn], axis=-1)
            dhg = jnp.concatenate([dr, du, dn * r], axis=-1)
            direct = dh * u
        dh_prev = dhg @ w_t
        if direct is not None:
            dh_prev = dh_prev + direct
        new = (dc, dh_prev) if cell == "lstm" else dh_prev
        if m_B is not None:
            keep = m_B[:, None]
            new = jax.tree.map(lambda a, b: jnp.where(keep, a, b), new, dstate)
            dxg = jnp.where(keep, dxg, jnp.zeros_like(dxg))
            dhg = jnp.where(keep, dhg, jnp.zeros_like(dhg))
        return new, (dxg, dhg if cell == "gru" else None)

    f32 = jnp.float32

    def run_chunk(carry, xs):
        dstate, grads = carry
        x_KBD, dy_KBH, m_KB, r_K, hprev_KBH = xs
        dstate, (dxg_KBG, dhg_KBG) = _prefetch_scan(
            step, dstate, (dy_KBH, m_KB, r_K, hprev_KBH if cell == "gru" else None),
            not reverse, unroll)
        if dhg_KBG is None:
            dhg_KBG = dxg_KBG
        # Weight gradients of k steps at once, as 2-D (k*B)-long matmuls (~1.5x faster on
        # CPU than a dot contracting two axes), accumulated in float32.
        d_wih, d_b, d_whh, d_bhn = grads
        d_wih = d_wih + (_flat(x_KBD).T @ _flat(dxg_KBG)).astype(f32)
        d_b = d_b + dxg_KBG.sum(axis=(0, 1)).astype(f32)
        d_whh = d_whh + (_flat(hprev_KBH).T @ _flat(dhg_KBG)).astype(f32)
        if d_bhn is not None:
            d_bhn = d_bhn + dhg_KBG[..., 2 * hid:].sum(axis=(0, 1)).astype(f32)
        dx_KBD = (_flat(dxg_KBG) @ w_ih.T).reshape(x_KBD.shape)
        return (dstate, (d_wih, d_b, d_whh, d_bhn)), dx_KBD

    zeros = (jnp.zeros(w_ih.shape, f32), jnp.zeros(w_ih.shape[1:], f32),
             jnp.zeros(w_hh.shape, f32), jnp.zeros((hid,), f32) if cell == "gru" else None)
    xs = jax.tree.map(lambda a: _split(a, k), (x_TBD, dy_TBH, mask_TB, res, hprev_TBH))
    (d_state0, grads), dx_TBD = jax.lax.scan(run_chunk, (d_final, zeros), xs,
                                             reverse=not reverse)
    d_wih, d_b, d_whh, d_bhn = grads
    return (_merge(dx_TBD), d_wih.astype(w_ih.dtype), d_b.astype(w_ih.dtype),
            d_whh.astype(w_hh.dtype), None if d_bhn is None else d_bhn.astype(w_hh.dtype),
            d_state0, None)


_fused_recurrence.defvjp(_fused_fwd, _fused_bwd)
