"""Deep Speech 2 (Amodei et al. 2016) for character CTC: strided 2-D convs, a bidirectional
recurrent stack, per-frame character logits.

`model.apply(variables, features_BTF, frame_len_B, train=...) -> (logits [B, T', vocab]
float32, out_len [B] int32)`. Layout:
  `conv1`, `bn1`, `conv2`, `bn2`: 2-D convs over (time, mel), no bias, BatchNorm, clipped ReLU
    min(max(x, 0), 20); the paper's layers: 32 channels, kernels 11x41 and 11x21 (time x mel),
    mel stride 2 each; time stride 2 in conv1 and `time_subsampling / 2` in conv2;
  `rnn`: `RecurrentStack` (`dl_arch.models.rnn`), bidirectional, `cell` lstm | gru (| rnn),
    with the conv output lengths, so the backward pass starts at each example's last real frame;
  `head`: dense to the character vocabulary (blank = 0).
T' = ceil(ceil(T / 2) / (time_subsampling / 2)) and `out_len` is the same formula on the real
frame counts (each conv pads kernel // 2 frames on both sides).
Differences from the paper, on purpose: the two directions are concatenated (the paper sums
them), and there is no BatchNorm between recurrent layers (dropout instead).
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
from dl_arch.models.rnn import RNN_CHECKS, _stack
from dl_arch.models.speech.common import (
    ConvSpec,
    check_features,
    clipped_relu,
    flatten_mels,
    masked_conv_stack,
)
from dl_arch.registry import register_model

SUBSAMPLINGS = (2, 4)


def front_end_specs(conv_channels: Sequence[int], time_kernels: Sequence[int],
                    mel_kernels: Sequence[int], time_subsampling: int) -> list[ConvSpec]:
    """Deep Speech 2's two strided convs (conv1 time stride 2, conv2 `time_subsampling / 2`,
    mel stride 2 each), checked: one-line errors for impossible settings."""
    if time_subsampling not in SUBSAMPLINGS:
        raise ConfigError(f"config.model.time_subsampling={time_subsampling}; use 2 or 4")
    if {len(conv_channels), len(time_kernels), len(mel_kernels)} != {2}:
        raise ConfigError("config.model.conv_channels, time_kernels and mel_kernels need two "
                          "entries each (conv1, conv2)")
    if any(k % 2 == 0 for k in time_kernels):
        raise ConfigError(f"config.model.time_kernels={tuple(time_kernels)}; use odd sizes "
                          "so the time padding is the same on both sides")
    strides = (2, time_subsampling // 2)
    return [ConvSpec(c, (kt, kf), (st, 2)) for c, kt, kf, st in zip(
        conv_channels, time_kernels, mel_kernels, strides, strict=True)]


class DeepSpeech2(nn.Module):
    """Strided conv front end + bidirectional recurrent stack + character logits (module doc)."""

    vocab_size: int = 29  # CTC output classes, blank = 0 (dl_arch.data.speech_text.CHAR_VOCAB_SIZE)
    conv_channels: Sequence[int] = (32, 32)  # channels of conv1, conv2
    time_kernels: Sequence[int] = (11, 11)  # time extent of the conv1, conv2 kernels (odd)
    mel_kernels: Sequence[int] = (41, 21)  # mel extent of the conv1, conv2 kernels
    time_subsampling: int = 2  # frames per output frame: 2 (paper, characters) or 4
    hidden_size: int = 512  # hidden units per recurrent layer and direction
    num_layers: int = 3  # stacked bidirectional recurrent layers
    cell: str = "lstm"  # lstm | gru (rnn: the paper's simple recurrence with `activation`)
    dropout: float = 0.1  # between recurrent layers and before the head in training
    activation: str = "tanh"  # simple RNN only: tanh | relu
    unroll: int | bool = 1  # time steps per lax.scan iteration (1: rolled loop)
    forget_bias: float = 1.0  # LSTM forget-gate bias at init (Gers et al. 2000)
    time_chunk: int | None = None  # steps per hoisted input matmul (None: by backend)
    dtype: Any = jnp.float32
    param_dtype: Any = jnp.float32

    field_checks: ClassVar[dict[str, dict[str, Any]]] = {
        **RNN_CHECKS, "time_subsampling": dict(choices=SUBSAMPLINGS),
        "conv_channels": dict(each=Field(1, "channels of a conv layer", low=1)),
        "time_kernels": dict(each=Field(1, "an odd kernel extent", low=1)),
        "mel_kernels": dict(each=Field(1, "a kernel extent", low=1))}

    def _specs(self) -> list[ConvSpec]:
        return front_end_specs(self.conv_channels, self.time_kernels, self.mel_kernels,
                               self.time_subsampling)

    @nn.compact
    def __call__(self, features_BTF: jax.Array, frame_len_B: jax.Array, *, train: bool = False
                 ) -> tuple[jax.Array, jax.Array]:
        check_features(features_BTF, frame_len_B, "deepspeech2")
        x_BTFC, out_len_B = masked_conv_stack(
            features_BTF, frame_len_B, self._specs(), train=train, use_batch_norm=True,
            act=clipped_relu, dtype=self.dtype, param_dtype=self.param_dtype)
        x_BTD = flatten_mels(x_BTFC)
        self.sow("intermediates", "rnn_inputs", x_BTD)
        h_BTH, _ = _stack(self, bidirectional=True)(x_BTD, out_len_B, train=train)
        self.sow("intermediates", "rnn_outputs", h_BTH)
        h_BTH = nn.Dropout(self.dropout)(h_BTH, deterministic=not train)
        return head(self.vocab_size, self.param_dtype)(h_BTH), out_len_B


register_model("deepspeech2", DeepSpeech2)
register_model("deepspeech2_tiny", functools.partial(
    DeepSpeech2, conv_channels=(8, 8), time_kernels=(5, 5), mel_kernels=(9, 5), hidden_size=32,
    num_layers=2))
