"""A convolution-only CTC model (Wav2Letter-like): Deep Speech 2's strided front end, then 1-D
convolutions over time in place of the recurrent stack, per-frame character logits.

The CNN arm of the speech comparison: every output frame sees a fixed window of the input
(the front end's plus `num_layers * (kernel - 1)` output frames), computed in parallel over
time, where a recurrent layer sees the whole utterance sequentially.
`model.apply(variables, features_BTF, frame_len_B, train=...) -> (logits [B, T', vocab]
float32, out_len [B] int32)`. Layout: `conv1`, `bn1`, `conv2`, `bn2` (as `deepspeech2`), then
`tconv{i}` + `tbn{i}` + ReLU for i = 1..num_layers (stride 1, zero past each example's length,
BatchNorm over real frames), dropout, `head`.
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
from dl_arch.models.cnn.common import batch_norm, conv_init, head
from dl_arch.models.speech.common import (
    check_features,
    clipped_relu,
    flatten_mels,
    frame_mask,
    masked_conv_stack,
)
from dl_arch.models.speech.deepspeech2 import SUBSAMPLINGS, front_end_specs
from dl_arch.registry import register_model


class ConvCTC(nn.Module):
    """Strided 2-D front end + 1-D time convolutions + character logits (module doc)."""

    vocab_size: int = 29  # CTC output classes, blank = 0 (dl_arch.data.speech_text.CHAR_VOCAB_SIZE)
    conv_channels: Sequence[int] = (32, 32)  # channels of conv1, conv2
    time_kernels: Sequence[int] = (11, 11)  # time extent of the conv1, conv2 kernels (odd)
    mel_kernels: Sequence[int] = (41, 21)  # mel extent of the conv1, conv2 kernels
    time_subsampling: int = 2  # frames per output frame: 2 or 4
    channels: int = 256  # channels of each time convolution
    kernel: int = 11  # time extent of each time convolution (odd)
    num_layers: int = 5  # time convolutions
    dropout: float = 0.1  # before the head in training
    dtype: Any = jnp.float32
    param_dtype: Any = jnp.float32

    field_checks: ClassVar[dict[str, dict[str, Any]]] = {
        "time_subsampling": dict(choices=SUBSAMPLINGS), "channels": dict(low=1),
        "kernel": dict(low=1), "num_layers": dict(low=0), "dropout": dict(low=0.0, high=1.0),
        "conv_channels": dict(each=Field(1, "channels of a conv layer", low=1)),
        "time_kernels": dict(each=Field(1, "an odd kernel extent", low=1)),
        "mel_kernels": dict(each=Field(1, "a kernel extent", low=1))}

    @nn.compact
    def __call__(self, features_BTF: jax.Array, frame_len_B: jax.Array, *, train: bool = False
                 ) -> tuple[jax.Array, jax.Array]:
        check_features(features_BTF, frame_len_B, "conv_ctc")
        if self.kernel % 2 == 0:
            raise ConfigError(f"config.model.kernel={self.kernel}; use an odd size so the time "
                              "padding is the same on both sides")
        specs = front_end_specs(self.conv_channels, self.time_kernels, self.mel_kernels,
                                self.time_subsampling)
        x_BTFC, out_len_B = masked_conv_stack(
            features_BTF, frame_len_B, specs, train=train, use_batch_norm=True,
            act=clipped_relu, dtype=self.dtype, param_dtype=self.param_dtype)
        x_BTD = flatten_mels(x_BTFC)
        keep_BT1 = frame_mask(out_len_B, x_BTD.shape[1])[:, :, None]
        pad = self.kernel // 2
        for i in range(1, self.num_layers + 1):
            x_BTD = nn.Conv(self.channels, (self.kernel,), padding=((pad, pad),), use_bias=False,
                            kernel_init=conv_init, dtype=self.dtype, param_dtype=self.param_dtype,
                            name=f"tconv{i}")(x_BTD)
            x_BTD = batch_norm(train, self.dtype, self.param_dtype, name=f"tbn{i}")(
                x_BTD, mask=keep_BT1)
            x_BTD = jnp.where(keep_BT1, nn.relu(x_BTD), 0)
        self.sow("intermediates", "conv_out", x_BTD)
        x_BTD = nn.Dropout(self.dropout)(x_BTD, deterministic=not train)
        return head(self.vocab_size, self.param_dtype)(x_BTD), out_len_B


register_model("conv_ctc", ConvCTC)
register_model("conv_ctc_tiny", functools.partial(
    ConvCTC, conv_channels=(8, 8), time_kernels=(5, 5), mel_kernels=(9, 5), channels=32,
    kernel=5, num_layers=2))
