"""Keyword spotting on log-mel features: a small CNN, and the same CNN with a GRU on top.

Both are called `model.apply(variables, features_BTF, frame_len_B, train=...)` and return
class logits [B, num_classes] in float32. The front end is `conv{i}`/`bn{i}` (3x3 conv, BN,
ReLU; stride 2 over mels and `time_strides[i]` over time) for each entry of `channels`;
padding frames are masked out of every layer, the BN statistics and the pooling.

- `KeywordCNN`: the mean of the conv map over each example's real frames, flattened over
  (mel, channel), dropout, `head`.
- `KeywordCRNN`: each frame's (mel, channel) vector into a recurrent stack (`rnn`, from
  `dl_arch.models.rnn`, with the frame lengths), then the last real state (both directions'
  final states when bidirectional) or the mean over real frames, dropout, `head`.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any, ClassVar

import flax.linen as nn
import jax
import jax.numpy as jnp

from dl_arch.config.errors import ConfigError
from dl_arch.config.fields import Field
from dl_arch.models.cnn.common import head
from dl_arch.models.layers.rnn_cells import state_hidden
from dl_arch.models.rnn import RNN_CHECKS, _stack
from dl_arch.models.speech.common import (
    ConvSpec,
    check_features,
    flatten_mels,
    masked_conv_stack,
    masked_time_mean,
)
from dl_arch.registry import register_model

_CONV_CHECKS: dict[str, dict[str, Any]] = {
    "channels": dict(each=Field(1, "channels of a conv block", low=1)),
    "time_strides": dict(each=Field(1, "time stride of a conv block", low=1)),
}


def _front_end(m: Any, features_BTF: jax.Array, frame_len_B: jax.Array, train: bool, what: str
               ) -> tuple[jax.Array, jax.Array]:
    """The shared conv blocks of a keyword model `m` (reads `channels`, `time_strides`)."""
    check_features(features_BTF, frame_len_B, what)
    if len(m.channels) != len(m.time_strides):
        raise ConfigError(f"config.model.channels has {len(m.channels)} entries and "
                          f"config.model.time_strides {len(m.time_strides)}; give one stride per block")
    specs = [ConvSpec(c, (3, 3), (s, 2)) for c, s in zip(m.channels, m.time_strides, strict=True)]
    return masked_conv_stack(features_BTF, frame_len_B, specs, train=train, use_batch_norm=True,
                             act=nn.relu, dtype=m.dtype, param_dtype=m.param_dtype)


class KeywordCNN(nn.Module):
    """Conv blocks, masked mean over time, dense to the classes (module doc)."""

    num_classes: int = 12  # keywords + 'silence' + 'unknown' (Speech Commands v0.02: 12)
    channels: Sequence[int] = (16, 32, 64)  # channels of each conv block
    time_strides: Sequence[int] = (1, 2, 2)  # time stride of each block's conv (mels: always 2)
    dropout_rate: float = 0.1  # on the pooled features in training
    dtype: Any = jnp.float32
    param_dtype: Any = jnp.float32

    field_checks: ClassVar[dict[str, dict[str, Any]]] = _CONV_CHECKS

    @nn.compact
    def __call__(self, features_BTF: jax.Array, frame_len_B: jax.Array, *, train: bool = False
                 ) -> jax.Array:
        x_BTFC, len_B = _front_end(self, features_BTF, frame_len_B, train, "kws_cnn")
        self.sow("intermediates", "conv_out", x_BTFC)
        pooled_BFC = masked_time_mean(x_BTFC, len_B)
        feat = pooled_BFC.reshape(pooled_BFC.shape[0], -1)
        feat = nn.Dropout(self.dropout_rate)(feat, deterministic=not train)
        return head(self.num_classes, self.param_dtype)(feat)


class KeywordCRNN(nn.Module):
    """Conv blocks, a recurrent stack over time, last state or masked mean, dense (module doc)."""

    num_classes: int = 12  # keywords + 'silence' + 'unknown' (Speech Commands v0.02: 12)
    channels: Sequence[int] = (16, 32)  # channels of each conv block
    time_strides: Sequence[int] = (1, 2)  # time stride of each block's conv (mels: always 2)
    hidden_size: int = 64  # hidden units per recurrent layer (and direction)
    num_layers: int = 1  # stacked recurrent layers
    cell: str = "gru"  # rnn | lstm | gru
    bidirectional: bool = False  # a second, reversed pass per layer from each real last frame
    pool: str = "last"  # last: final real state(s); mean: mean over real frames
    dropout: float = 0.1  # between recurrent layers and on the pooled state in training
    activation: str = "tanh"  # simple RNN only: tanh | relu
    unroll: int | bool = 1  # time steps per lax.scan iteration (1: rolled loop)
    forget_bias: float = 1.0  # LSTM forget-gate bias at init (Gers et al. 2000)
    time_chunk: int | None = None  # steps per hoisted input matmul (None: by backend)
    dtype: Any = jnp.float32
    param_dtype: Any = jnp.float32

    field_checks: ClassVar[dict[str, dict[str, Any]]] = {
        **_CONV_CHECKS, **RNN_CHECKS, "pool": dict(choices=("last", "mean"))}

    @nn.compact
    def __call__(self, features_BTF: jax.Array, frame_len_B: jax.Array, *, train: bool = False
                 ) -> jax.Array:
        if self.pool not in ("last", "mean"):
            raise ConfigError(f"config.model.pool='{self.pool}' is unknown; use 'last' or 'mean'")
        x_BTFC, len_B = _front_end(self, features_BTF, frame_len_B, train, "kws_crnn")
        x_BTD = flatten_mels(x_BTFC)
        self.sow("intermediates", "rnn_inputs", x_BTD)
        h_BTH, finals = _stack(self, bidirectional=self.bidirectional)(x_BTD, len_B, train=train)
        self.sow("intermediates", "rnn_outputs", h_BTH)
        if self.pool == "mean":
            feat = masked_time_mean(h_BTH, len_B)
        else:
            states = finals[-1] if self.bidirectional else (finals[-1],)
            feat = jnp.concatenate([state_hidden(self.cell, s) for s in states], axis=-1)
        feat = nn.Dropout(self.dropout)(feat, deterministic=not train)
        return head(self.num_classes, self.param_dtype)(feat)


register_model("kws_cnn", KeywordCNN)
register_model("kws_cnn_tiny", functools.partial(KeywordCNN, channels=(8, 16), time_strides=(1, 2)))
register_model("kws_crnn", KeywordCRNN)
register_model("kws_crnn_tiny", functools.partial(
    KeywordCRNN, channels=(8,), time_strides=(2,), hidden_size=16))
