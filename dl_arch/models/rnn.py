"""Recurrent networks: simple RNN (Elman), LSTM and GRU on `lax.scan`, and models built on them.

Performance layout, shared by every cell: the input projection of ALL time steps is one
large matmul hoisted out of the recurrence (`x_BTD @ w_ih -> xg_TBG`; on CPU one per chunk
of 16 steps, `time_chunk`, so the projection stays in cache), and each step does a
single fused matmul of the previous hidden state with the recurrent weights of every gate
(`h_BH @ w_hh -> hg_BG`, G = gates * H). Only that small matmul and the elementwise gate
maths run inside the `lax.scan`. The backward pass is written by hand (`jax.custom_vjp`):
its loop carries only dL/dh (and dL/dc), and the recurrent weight gradient becomes one
large matmul after the loop instead of T small ones inside it (`fused_backward=False`
falls back to autodiff of the scan, e.g. for forward-mode differentiation).

Gate layouts (columns of `w_ih`, `w_hh`, `b`):
- `rnn`:  h' = act(x W_ih + h W_hh + b)                         G = H
- `lstm`: [i, f, g, o]; c' = f*c + i*g, h' = o*tanh(c')          G = 4H; forget bias = 1
- `gru`:  [r, z, n]; r, z = sigmoid(.), n = tanh(x W_in + b_in + r * (h W_hn + b_hn)),
          h' = (1 - z) * n + z * h                              G = 3H
  The GRU uses the "reset after" convention (cuDNN, PyTorch, Keras `reset_after=True`, Flax
  `GRUCell`): the reset gate multiplies `h W_hn + b_hn` instead of `h` before the matmul
  (Cho et al. 2014). That is what lets all three recurrent matmuls fuse into one; it needs
  the extra recurrent bias `b_hn`, which is inside the reset gate's reach.

States: `rnn`/`gru` carry `h_BH`; `lstm` carries the tuple `(c_BH, h_BH)`.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import Any, ClassVar

import flax.linen as nn
import jax
import jax.numpy as jnp

from dl_arch.config.errors import ConfigError
from dl_arch.registry import register_model

CELLS = {"rnn": 1, "lstm": 4, "gru": 3}  # cell name -> number of gate blocks
ACTIVATIONS = {"tanh": jnp.tanh, "relu": jax.nn.relu}
# Checks every registered recurrent model shares (see `dl_arch.config.fields.model_fields`).
RNN_CHECKS: dict[str, dict[str, Any]] = {"cell": dict(choices=tuple(CELLS)),
                                         "activation": dict(choices=tuple(ACTIVATIONS))}

State = Any  # h_BH, or (c_BH, h_BH) for the LSTM


def num_gates(cell: str) -> int:
    """Gate blocks of a cell; a clear error for unknown names."""
    if cell not in CELLS:
        raise ConfigError(f"config.model.cell='{cell}' is unknown; use one of {sorted(CELLS)}")
    return CELLS[cell]


def zero_state(cell: str, batch: int, hidden: int, dtype: Any = jnp.float32) -> State:
    """The all-zero initial state of one recurrent layer."""
    num_gates(cell)
    h = jnp.zeros((batch, hidden), dtype)
    return (h, h) if cell == "lstm" else h


def state_hidden(cell: str, state: State) -> jax.Array:
    """The hidden output h_BH of a state."""
    return state[1] if cell == "lstm" else state


def cell_step(cell: str, xg_BG: jax.Array, hg_BG: jax.Array, state: State,
              activation: Callable[[jax.Array], jax.Array] = jnp.tanh) -> State:
    """One recurrence step from the two pre-activations: x-part (+bias) and h-part.

    `hg_BG` already holds `b_hn` for the GRU (it sits inside the reset gate).
    """
    if cell == "rnn":
        return activation(xg_BG + hg_BG)
    if cell == "lstm":
        c_BH, _ = state
        i, f, g, o = jnp.split(xg_BG + hg_BG, 4, axis=-1)
        c_BH = jax.nn.sigmoid(f) * c_BH + jax.nn.sigmoid(i) * jnp.tanh(g)
        return c_BH, jax.nn.sigmoid(o) * jnp.tanh(c_BH)
    if cell == "gru":
        h_BH = state
        xr, xz, xn = jnp.split(xg_BG, 3, axis=-1)
        hr, hz, hn = jnp.split(hg_BG, 3, axis=-1)
        r = jax.nn.sigmoid(xr + hr)
        z = jax.nn.sigmoid(xz + hz)
        n = jnp.tanh(xn + r * hn)
        return (1.0 - z) * n + z * h_BH
    raise ConfigError(f"config.model.cell='{cell}' is unknown; use one of {sorted(CELLS)}")


def _add_to_hidden(cell: str, state: State, eps_BH: jax.Array) -> State:
    return (state[0], state[1] + eps_BH) if cell == "lstm" else state + eps_BH


def scan_recurrence(cell: str, xg_TBG: jax.Array, w_hh: jax.Array, b_hn: jax.Array | None,
                    state0: State, mask_TB: jax.Array | None = None, reverse: bool = False,
                    unroll: int | bool = 1, eps_TBH: jax.Array | None = None,
                    activation: str = "tanh") -> tuple[State, jax.Array]:
    """The recurrence over time-major pre-activations, differentiated by JAX autodiff.

    Returns (final state, h_TBH). Masked steps (`mask_TB` false) keep the state unchanged
    and output zeros, so each example's final state is the one at its own last real step
    (first, when reversed). `eps_TBH` is added to each new hidden state: a zero perturbation
    whose gradient is the total dL/dh_t of backpropagation through time. `fused_recurrence`
    computes the same with a hand-written backward pass; the two agree to rounding.
    """
    act = ACTIVATIONS[activation]
    bh_G = None
    if b_hn is not None:  # the GRU's recurrent bias sits on the candidate block only
        bh_G = jnp.concatenate([jnp.zeros_like(b_hn), jnp.zeros_like(b_hn), b_hn])[None, :]

    def step(state, xs):
        xg_BG, m_B, eps_BH = xs
        hg_BG = state_hidden(cell, state) @ w_hh
        if bh_G is not None:
            hg_BG = hg_BG + bh_G
        new = cell_step(cell, xg_BG, hg_BG, state, act)
        if eps_BH is not None:
            new = _add_to_hidden(cell, new, eps_BH)
        h_BH = state_hidden(cell, new)
        if m_B is not None:
            keep = m_B[:, None]
            new = jax.tree.map(lambda n, o: jnp.where(keep, n, o), new, state)
            h_BH = jnp.where(keep, h_BH, jnp.zeros_like(h_BH))
        return new, h_BH

    return jax.lax.scan(step, state0, (xg_TBG, mask_TB, eps_TBH), reverse=reverse, unroll=unroll)


# ----- the recurrence with a hand-written backward pass -----
# Autodiff of the scan accumulates dW_hh += h_{t-1}^T dz_t inside the backward loop, one
# small matmul per step. Here the backward loop only propagates dL/dh (one matmul per
# step, like the forward) and emits the gate gradients dz_t; dW_hh is then ONE large
# (H, T*B) x (T*B, G) matmul after the loop, and the forward saves the gate activations
# so nothing is recomputed.


def _flat(a_TBX: jax.Array) -> jax.Array:
    """(T, B, X) -> (T*B, X), so weight gradients are plain 2-D matmuls."""
    return a_TBX.reshape(-1, a_TBX.shape[-1])


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
                     b_hn: jax.Array | None, state0: State, mask_TB: jax.Array | None = None,
                     reverse: bool = False, unroll: int | bool = 1, activation: str = "tanh",
                     time_chunk: int | None = None) -> tuple[State, jax.Array]:
    """Input projection plus recurrence with the hand-written backward pass; (final, h_TBH).

    The input projection of `time_chunk` steps at a time (None: by backend, see
    `time_chunk_size`) is one matmul outside the per-step loop, and so are the weight
    gradients in the backward pass.
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
        xg_KBG = (_flat(x_KBD) @ w_ih + b[None, :]).reshape(k, *x_KBD.shape[1:2], -1)
        return _prefetch_scan(step, state, (xg_KBG, m_KB), reverse, unroll)

    final, outs = jax.lax.scan(run_chunk, state0, (_split(x_TBD, k), _split(mask_TB, k)),
                               reverse=reverse)
    h_TBH, hprev_TBH, res = _merge(outs)
    return (final, h_TBH), (x_TBD, w_ih, w_hh, hprev_TBH, res, mask_TB)


def _fused_bwd(cell, activation, reverse, unroll, k, saved, cotangents):
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


class Recurrent(nn.Module):
    """One recurrent layer over (batch, time, features); returns (h_BTH, final state).

    `lengths_B` marks the real steps of each example (padding never changes them);
    `reverse` runs from each sequence's own last step back to its first;
    `unroll` is passed to `lax.scan` (1 = rolled loop, True = fully unrolled).
    """

    hidden_size: int
    cell: str = "lstm"
    activation: str = "tanh"  # simple RNN only: tanh | relu
    reverse: bool = False
    unroll: int | bool = 1
    forget_bias: float = 1.0  # LSTM forget-gate bias at init (Gers et al. 2000)
    fused_backward: bool = True  # hand-written BPTT backward pass; False: autodiff of the scan
    time_chunk: int | None = None  # steps per hoisted input matmul (None: by backend, see
    # `time_chunk_size`; >= T: all steps in one matmul)
    dtype: Any = jnp.float32
    param_dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x_BTD: jax.Array, lengths_B: jax.Array | None = None,
                 initial_state: State | None = None) -> tuple[jax.Array, State]:
        gates = num_gates(self.cell)
        if self.activation not in ACTIVATIONS:
            raise ConfigError(f"config.model.activation='{self.activation}' is unknown; "
                             f"use one of {sorted(ACTIVATIONS)}")
        batch, steps, features = x_BTD.shape
        hid = self.hidden_size
        w_ih = self.param("w_ih", nn.initializers.lecun_normal(), (features, gates * hid),
                          self.param_dtype)
        w_hh = self.param("w_hh", nn.initializers.orthogonal(), (hid, gates * hid),
                          self.param_dtype)

        def bias_init(key, shape, dtype):
            b = jnp.zeros(shape, dtype)
            return b.at[hid:2 * hid].set(self.forget_bias) if self.cell == "lstm" else b

        b = self.param("b", bias_init, (gates * hid,), self.param_dtype)
        b_hn = (self.param("b_hn", nn.initializers.zeros, (hid,), self.param_dtype)
                if self.cell == "gru" else None)
        x_BTD, w_ih, w_hh, b = nn.dtypes.promote_dtype(x_BTD, w_ih, w_hh, b, dtype=self.dtype)
        if b_hn is not None:
            b_hn = b_hn.astype(self.dtype)

        # Time-major input: transposing the narrow input first is ~3x faster on CPU than
        # asking the input-projection matmul for a time-major output.
        x_TBD = jnp.swapaxes(x_BTD, 0, 1)
        mask_TB = None
        if lengths_B is not None:
            mask_TB = jnp.arange(steps)[:, None] < lengths_B[None, :]
        if initial_state is None:
            initial_state = zero_state(self.cell, batch, hid, self.dtype)
        eps_TBH = None
        # Only when asked for (gradient-flow diagnostics), never as a side effect of init.
        if self.has_variable("perturbations", "hidden") or (
                self.is_mutable_collection("perturbations") and not self.is_initializing()):
            eps_TBH = self.perturb("hidden", jnp.zeros((steps, batch, hid), self.dtype))
        if eps_TBH is None and self.fused_backward:
            final, h_TBH = fused_recurrence(
                self.cell, x_TBD, w_ih, b, w_hh, b_hn, initial_state, mask_TB, self.reverse,
                self.unroll, self.activation, self.time_chunk)
        else:  # autodiff of the scan; the input projection of all steps is one matmul
            xg_TBG = (_flat(x_TBD) @ w_ih + b[None, :]).reshape(steps, batch, gates * hid)
            final, h_TBH = scan_recurrence(
                self.cell, xg_TBG, w_hh, b_hn, initial_state, mask_TB, self.reverse,
                self.unroll, eps_TBH, self.activation)
        return jnp.swapaxes(h_TBH, 0, 1), final


class RecurrentStack(nn.Module):
    """Stacked (optionally bidirectional) recurrent layers with dropout between layers.

    `initial_state` / the returned final state: a list with one entry per layer, each a
    state, or a (forward, backward) pair when bidirectional.
    """

    hidden_size: int
    num_layers: int = 1
    cell: str = "lstm"
    bidirectional: bool = False
    dropout: float = 0.0  # between layers, active when train=True
    activation: str = "tanh"
    unroll: int | bool = 1
    forget_bias: float = 1.0
    time_chunk: int | None = None  # steps per hoisted input matmul (None: by backend)
    dtype: Any = jnp.float32
    param_dtype: Any = jnp.float32

    def _layer(self, name: str, reverse: bool) -> Recurrent:
        return Recurrent(self.hidden_size, self.cell, activation=self.activation, reverse=reverse,
                         unroll=self.unroll, forget_bias=self.forget_bias,
                         time_chunk=self.time_chunk, dtype=self.dtype,
                         param_dtype=self.param_dtype, name=name)

    @nn.compact
    def __call__(self, x_BTD: jax.Array, lengths_B: jax.Array | None = None,
                 initial_state: Sequence[Any] | None = None, *, train: bool = False
                 ) -> tuple[jax.Array, list[Any]]:
        if self.num_layers < 1:
            raise ConfigError(f"config.model.num_layers={self.num_layers}; must be >= 1")
        if initial_state is not None and len(initial_state) != self.num_layers:
            raise ValueError(f"initial_state has {len(initial_state)} layers; the model has "
                             f"num_layers={self.num_layers}")
        finals = []
        h_BTH = x_BTD
        for i in range(self.num_layers):
            if i > 0 and self.dropout > 0:
                h_BTH = nn.Dropout(self.dropout, deterministic=not train)(h_BTH)
            s0 = None if initial_state is None else initial_state[i]
            if self.bidirectional:
                fwd0, bwd0 = (None, None) if s0 is None else s0
                y_f, s_f = self._layer(f"layer_{i}_fwd", False)(h_BTH, lengths_B, fwd0)
                y_b, s_b = self._layer(f"layer_{i}_bwd", True)(h_BTH, lengths_B, bwd0)
                h_BTH = jnp.concatenate([y_f, y_b], axis=-1)
                finals.append((s_f, s_b))
            else:
                h_BTH, s = self._layer(f"layer_{i}", False)(h_BTH, lengths_B, s0)
                finals.append(s)
        return h_BTH, finals

    def zero_state(self, batch: int) -> list[Any]:
        """Zero initial states for every layer (and direction)."""
        s = zero_state(self.cell, batch, self.hidden_size, self.dtype)
        return [(s, s) if self.bidirectional else s for _ in range(self.num_layers)]


def _stack(m: Any, name: str = "rnn", bidirectional: bool = False) -> RecurrentStack:
    return RecurrentStack(m.hidden_size, m.num_layers, m.cell, bidirectional, m.dropout,
                          m.activation, m.unroll, m.forget_bias, time_chunk=m.time_chunk,
                          dtype=m.dtype, param_dtype=m.param_dtype, name=name)


class RNNLanguageModel(nn.Module):
    """Token embedding -> stacked RNN -> logits over the vocabulary (next-token prediction).

    `initial_state`/`return_state` carry the state across windows (truncated BPTT) and
    drive step-by-step generation.
    """

    vocab_size: int = 256  # token vocabulary (256: bytes)
    embed_dim: int = 128  # width of the token embedding
    hidden_size: int = 512  # hidden units per recurrent layer
    num_layers: int = 1  # stacked recurrent layers
    cell: str = "lstm"  # rnn | lstm | gru
    dropout: float = 0.0  # on embeddings, between layers and before the output layer
    tie_embeddings: bool = False  # output layer = embedding^T (needs embed_dim == hidden_size)
    activation: str = "tanh"  # simple RNN only: tanh | relu
    unroll: int | bool = 1  # time steps per lax.scan iteration (1: rolled loop)
    forget_bias: float = 1.0  # LSTM forget-gate bias at init (Gers et al. 2000)
    time_chunk: int | None = None  # steps per hoisted input matmul (None: by backend)
    dtype: Any = jnp.float32
    param_dtype: Any = jnp.float32

    field_checks: ClassVar[dict[str, dict[str, Any]]] = RNN_CHECKS

    recurrent = True  # tasks may carry the state between batches

    def setup(self) -> None:
        if self.tie_embeddings and self.embed_dim != self.hidden_size:
            raise ConfigError("config.model.tie_embeddings needs embed_dim == hidden_size; "
                             f"got {self.embed_dim} and {self.hidden_size}")
        self.embed = nn.Embed(self.vocab_size, self.embed_dim, dtype=self.dtype,
                              param_dtype=self.param_dtype)
        self.rnn = _stack(self)
        self.drop = nn.Dropout(self.dropout)
        if not self.tie_embeddings:
            self.head = nn.Dense(self.vocab_size, dtype=self.dtype, param_dtype=self.param_dtype)

    def __call__(self, tokens_BT: jax.Array, *, train: bool = False,
                 initial_state: list[Any] | None = None, return_state: bool = False,
                 lengths_B: jax.Array | None = None) -> Any:
        x_BTE = self.drop(self.embed(tokens_BT), deterministic=not train)
        h_BTH, state = self.rnn(x_BTE, lengths_B, initial_state, train=train)
        h_BTH = self.drop(h_BTH, deterministic=not train)
        if self.tie_embeddings:
            logits_BTV = self.embed.attend(h_BTH)
        else:
            logits_BTV = self.head(h_BTH)
        logits_BTV = logits_BTV.astype(jnp.float32)
        return (logits_BTV, state) if return_state else logits_BTV

    def zero_state(self, batch: int) -> list[Any]:
        """Zero initial state for `initial_state` (call through `apply(method=...)`)."""
        return self.rnn.zero_state(batch)


class RNNSequenceModel(nn.Module):
    """Stacked RNN over tokens or feature vectors -> one output vector per sequence or per step.

    Used for classification (sentiment, long-range tasks, pixel-by-pixel images) and
    regression (the adding problem). `pool='last'` reads each sequence's final state
    (both directions when bidirectional); `mean` averages its real steps; `per_step`
    returns outputs at every step (copy-memory).
    """

    num_outputs: int  # outputs of the head (classes, or regression targets)
    vocab_size: int = 0  # > 0: inputs are token ids, embedded; 0: inputs are (B, T, F) floats
    embed_dim: int = 64  # width of the token embedding (vocab_size > 0)
    hidden_size: int = 128  # hidden units per recurrent layer (and direction)
    num_layers: int = 1  # stacked recurrent layers
    cell: str = "lstm"  # rnn | lstm | gru
    bidirectional: bool = False  # a second, reversed pass per layer; outputs concatenated
    dropout: float = 0.0  # on embeddings, between layers and before the head in training
    pool: str = "last"  # last | mean | per_step
    activation: str = "tanh"  # simple RNN only: tanh | relu
    unroll: int | bool = 1  # time steps per lax.scan iteration (1: rolled loop)
    forget_bias: float = 1.0  # LSTM forget-gate bias at init (Gers et al. 2000)
    time_chunk: int | None = None  # steps per hoisted input matmul (None: by backend)
    dtype: Any = jnp.float32
    param_dtype: Any = jnp.float32

    field_checks: ClassVar[dict[str, dict[str, Any]]] = {
        **RNN_CHECKS, "vocab_size": dict(low=0), "pool": dict(choices=("last", "mean", "per_step"))}

    @nn.compact
    def __call__(self, inputs: jax.Array, *, train: bool = False,
                 lengths_B: jax.Array | None = None) -> jax.Array:
        if self.pool not in ("last", "mean", "per_step"):
            raise ConfigError(f"config.model.pool='{self.pool}'; use last | mean | per_step")
        if self.vocab_size > 0:
            x_BTD = nn.Embed(self.vocab_size, self.embed_dim, dtype=self.dtype,
                             param_dtype=self.param_dtype, name="embed")(inputs)
            x_BTD = nn.Dropout(self.dropout, deterministic=not train)(x_BTD)
        else:
            if inputs.ndim == 2:
                inputs = inputs[..., None]
            x_BTD = inputs.astype(self.dtype)
        h_BTH, finals = _stack(self, bidirectional=self.bidirectional)(
            x_BTD, lengths_B, train=train)
        if self.pool == "per_step":
            feat = h_BTH
        elif self.pool == "mean":
            steps = h_BTH.shape[1]
            n_B = (jnp.full((h_BTH.shape[0],), steps) if lengths_B is None else lengths_B)
            feat = h_BTH.sum(axis=1) / jnp.maximum(n_B, 1)[:, None].astype(h_BTH.dtype)
        else:
            last = finals[-1]
            if self.bidirectional:
                feat = jnp.concatenate([state_hidden(self.cell, s) for s in last], axis=-1)
            else:
                feat = state_hidden(self.cell, last)
        feat = nn.Dropout(self.dropout, deterministic=not train)(feat)
        out = nn.Dense(self.num_outputs, dtype=self.dtype, param_dtype=self.param_dtype,
                       name="head")(feat)
        return out.astype(jnp.float32)


class RNNForecaster(nn.Module):
    """Encodes a context window (B, T, F) and predicts the next `horizon` steps at once.

    With `residual=True` the head predicts the change from the last observed value,
    so an untrained model starts at the naive last-value forecast.
    """

    horizon: int  # future steps predicted at once
    hidden_size: int = 64  # hidden units per recurrent layer
    num_layers: int = 1  # stacked recurrent layers
    cell: str = "lstm"  # rnn | lstm | gru
    dropout: float = 0.0  # between layers in training
    residual: bool = True  # predict the change from the last observed value
    activation: str = "tanh"  # simple RNN only: tanh | relu
    unroll: int | bool = 1  # time steps per lax.scan iteration (1: rolled loop)
    forget_bias: float = 1.0  # LSTM forget-gate bias at init (Gers et al. 2000)
    time_chunk: int | None = None  # steps per hoisted input matmul (None: by backend)
    dtype: Any = jnp.float32
    param_dtype: Any = jnp.float32

    field_checks: ClassVar[dict[str, dict[str, Any]]] = RNN_CHECKS

    @nn.compact
    def __call__(self, x_BTF: jax.Array, *, train: bool = False) -> jax.Array:
        if x_BTF.ndim == 2:
            x_BTF = x_BTF[..., None]
        feats = x_BTF.shape[-1]
        _, finals = _stack(self)(x_BTF.astype(self.dtype), train=train)
        h_BH = state_hidden(self.cell, finals[-1])
        out = nn.Dense(self.horizon * feats, dtype=self.dtype, param_dtype=self.param_dtype,
                       kernel_init=nn.initializers.zeros if self.residual
                       else nn.initializers.lecun_normal(), name="head")(h_BH)
        y_BHF = out.reshape(x_BTF.shape[0], self.horizon, feats).astype(jnp.float32)
        if self.residual:
            y_BHF = y_BHF + x_BTF[:, -1:, :].astype(jnp.float32)
        return y_BHF


for _cell in CELLS:
    register_model(f"{_cell}_lm", functools.partial(RNNLanguageModel, cell=_cell))
    register_model(f"{_cell}_classifier", functools.partial(RNNSequenceModel, cell=_cell))
    register_model(f"{_cell}_forecaster", functools.partial(RNNForecaster, cell=_cell))
# Tiny test variant, Karpathy's char-rnn default (2x512 LSTM, bytes) and the word-level
# LSTM LMs of Zaremba et al. 2014 (2 layers, 10k vocabulary, untied, one bias per gate).
register_model("lstm_lm-tiny", functools.partial(
    RNNLanguageModel, cell="lstm", vocab_size=256, embed_dim=16, hidden_size=32))
register_model("lstm_lm-char_rnn", functools.partial(
    RNNLanguageModel, cell="lstm", vocab_size=256, embed_dim=512, hidden_size=512,
    num_layers=2))
for _size, _hid in (("small", 200), ("medium", 650), ("large", 1500)):
    register_model(f"lstm_lm-zaremba_{_size}", functools.partial(
        RNNLanguageModel, cell="lstm", vocab_size=10000, embed_dim=_hid, hidden_size=_hid,
        num_layers=2))
