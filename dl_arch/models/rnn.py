"""Recurrent networks: simple RNN (Elman), LSTM and GRU layers, and the models built on them.

The equations below are written out as code in `layers/rnn_cells.py` (`cell_step`, and
`scan_recurrence`, its loop under JAX autodiff). `Recurrent` trains by default with
`layers/recurrence.py` (`fused_recurrence`): the same equations with the input projection
hoisted out of the time loop and a hand-written backward pass, tested against that scan.

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
from collections.abc import Sequence
from typing import Any, ClassVar

import flax.linen as nn
import jax
import jax.numpy as jnp

from dl_arch.config.errors import ConfigError
from dl_arch.models.layers.embed import Embed
from dl_arch.models.layers.recurrence import fused_recurrence, project_inputs
from dl_arch.models.layers.rnn_cells import (
    ACTIVATIONS,
    CELLS,
    State,
    num_gates,
    scan_recurrence,
    state_hidden,
    zero_state,
)
from dl_arch.registry import register_model

# Checks every registered recurrent model shares (see `dl_arch.config.fields.model_fields`).
RNN_CHECKS: dict[str, dict[str, Any]] = {"cell": dict(choices=tuple(CELLS)),
                                         "activation": dict(choices=tuple(ACTIVATIONS))}


class Recurrent(nn.Module):
    """One recurrent layer over (batch, time, features); returns (h_BTH, final state).

    `lengths_B` marks the real steps of each example (padding never changes them);
    `reverse` runs from each sequence's own last step back to its first;
    `unroll` is passed to `lax.scan` (1 = rolled loop, True = fully unrolled).
    Trains with `fused_recurrence`; `scan_recurrence` (autodiff of `cell_step`) runs when
    `fused_backward=False` or when hidden-state perturbations are asked for.
    """

    hidden_size: int
    cell: str = "lstm"
    activation: str = "tanh"  # simple RNN only: tanh | relu
    reverse: bool = False
    unroll: int | bool = 1
    forget_bias: float = 1.0  # LSTM forget-gate bias at init (Gers et al. 2000)
    fused_backward: bool = True  # hand-written BPTT backward pass; False: autodiff of the scan
    time_chunk: int | None = None  # steps per hoisted input matmul (None: by backend, see
    # `layers.recurrence.time_chunk_size`; >= T: all steps in one matmul)
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
                self.cell, x_TBD, w_ih, b, w_hh, b_hn, initial_state, mask_TB=mask_TB,
                reverse=self.reverse, unroll=self.unroll, activation=self.activation,
                time_chunk=self.time_chunk)
        else:  # autodiff of the scan; the input projection of all steps is one matmul
            final, h_TBH = scan_recurrence(
                self.cell, project_inputs(x_TBD, w_ih, b), w_hh, b_hn, initial_state,
                mask_TB=mask_TB, reverse=self.reverse, unroll=self.unroll, eps_TBH=eps_TBH,
                activation=self.activation)
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


def _stack(m: Any, *, bidirectional: bool = False, name: str = "rnn") -> RecurrentStack:
    """The stack a model's own fields describe (every model below declares them)."""
    return RecurrentStack(
        hidden_size=m.hidden_size, num_layers=m.num_layers, cell=m.cell, bidirectional=bidirectional,
        dropout=m.dropout, activation=m.activation, unroll=m.unroll, forget_bias=m.forget_bias,
        time_chunk=m.time_chunk, dtype=m.dtype, param_dtype=m.param_dtype, name=name)


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
        self.embed = Embed(self.vocab_size, self.embed_dim, dtype=self.dtype,
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
            x_BTD = Embed(self.vocab_size, self.embed_dim, dtype=self.dtype,
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
