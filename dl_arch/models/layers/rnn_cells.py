"""The recurrent cells' equations: simple RNN (Elman), LSTM and GRU, one step and a plain scan.

`cell_step` is the readable definition of each cell (gate layouts and conventions in the
docstring of `dl_arch.models.rnn`); `scan_recurrence` loops it with `lax.scan` under JAX
autodiff. `dl_arch.models.layers.recurrence.fused_recurrence`, what `Recurrent` trains with
by default, computes the same equations faster and is tested against this scan. The
seq2seq decoder calls `cell_step` directly.

States: `rnn`/`gru` carry `h_BH`; `lstm` carries the tuple `(c_BH, h_BH)`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp

from dl_arch.config.errors import ConfigError

CELLS = {"rnn": 1, "lstm": 4, "gru": 3}  # cell name -> number of gate blocks
# The simple RNN's activations (the fused kernel writes out their derivatives).
ACTIVATIONS: dict[str, Callable[[jax.Array], jax.Array]] = {"tanh": jnp.tanh, "relu": jax.nn.relu}

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
                    state0: State, *, mask_TB: jax.Array | None = None, reverse: bool = False,
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
