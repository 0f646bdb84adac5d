"""A Transformer CTC encoder: conv subsampling, the Transformer family's encoder blocks with
sinusoidal positions, per-frame character logits (ESPnet's Transformer encoder with a CTC head).

`model.apply(variables, features_BTF, frame_len_B, train=...) -> (logits [B, T', vocab]
float32, out_len [B] int32)`. Layout:
  `conv1`, `conv2`: 3x3 convs over (time, mel) with ReLU, `emb_dim` channels, mel stride 2
    each, time stride 2 in conv1 and `subsampling / 2` in conv2 (ESPnet's Conv2dSubsampling,
    but padded by 1 so T' = ceil(ceil(T / 2) / (subsampling / 2)));
  `input_proj`: dense from each frame's (mel, channel) vector to `emb_dim`, scaled by
    sqrt(emb_dim), plus sinusoidal positions, then dropout;
  `encoder`: `TransformerStack` (`dl_arch.models.layers.transformer_block`), pre-LN by default
    with a final LayerNorm; keys past each example's `out_len` are masked out of attention;
  `head`: dense to the character vocabulary (blank = 0).
"""

from __future__ import annotations

import functools
from typing import Any, ClassVar

import flax.linen as nn
import jax
import jax.numpy as jnp

from dl_arch.config.errors import ConfigError
from dl_arch.models.cnn.common import head
from dl_arch.models.layers.attention import IMPLEMENTATIONS
from dl_arch.models.layers.position import sinusoidal_encoding
from dl_arch.models.layers.transformer_block import ACTIVATIONS, TransformerStack
from dl_arch.models.speech.common import (
    ConvSpec,
    check_features,
    flatten_mels,
    frame_mask,
    masked_conv_stack,
)
from dl_arch.registry import register_model

SUBSAMPLINGS = (2, 4)


class TransformerCTC(nn.Module):
    """Conv subsampling + Transformer encoder + character logits (module doc)."""

    vocab_size: int = 29  # CTC output classes, blank = 0 (dl_arch.data.speech_text.CHAR_VOCAB_SIZE)
    emb_dim: int = 256  # model width (and channels of the subsampling convs)
    num_heads: int = 4  # attention heads per layer
    num_layers: int = 12  # encoder blocks
    mlp_dim: int = 2048  # hidden width of each feed-forward layer
    subsampling: int = 4  # frames per output frame: 2 or 4
    dropout_rate: float = 0.1  # after the input projection and each sublayer in training
    attention_dropout: float = 0.0  # dropout on the attention weights in training
    pre_ln: bool = True  # LayerNorm before each sublayer (+ a final one); False: after
    activation: str = "relu"  # feed-forward activation
    layer_norm_eps: float = 1e-6  # LayerNorm epsilon
    scan: bool = False  # nn.scan over the layers (compile time flat in depth)
    remat: bool = False  # recompute activations in the backward pass to save memory
    attention_impl: str = "xla"  # attention kernel: xla | cudnn | auto | naive | blocked
    dtype: Any = jnp.float32
    param_dtype: Any = jnp.float32

    field_checks: ClassVar[dict[str, dict[str, Any]]] = {
        "subsampling": dict(choices=SUBSAMPLINGS), "activation": dict(choices=tuple(ACTIVATIONS)),
        "attention_impl": dict(choices=IMPLEMENTATIONS)}

    @nn.compact
    def __call__(self, features_BTF: jax.Array, frame_len_B: jax.Array, *, train: bool = False
                 ) -> tuple[jax.Array, jax.Array]:
        check_features(features_BTF, frame_len_B, "transformer_ctc")
        if self.subsampling not in SUBSAMPLINGS:
            raise ConfigError(f"config.model.subsampling={self.subsampling}; use 2 or 4")
        specs = [ConvSpec(self.emb_dim, (3, 3), (2, 2)),
                 ConvSpec(self.emb_dim, (3, 3), (self.subsampling // 2, 2))]
        x_BTFC, out_len_B = masked_conv_stack(
            features_BTF, frame_len_B, specs, train=train, use_batch_norm=False, act=nn.relu,
            dtype=self.dtype, param_dtype=self.param_dtype)
        x_BTD = nn.Dense(self.emb_dim, dtype=self.dtype, param_dtype=self.param_dtype,
                         name="input_proj")(flatten_mels(x_BTFC))
        b, t, _ = x_BTD.shape
        positions_BT = jnp.broadcast_to(jnp.arange(t)[None, :], (b, t))
        x_BTD = (x_BTD * jnp.sqrt(self.emb_dim).astype(self.dtype)
                 + sinusoidal_encoding(positions_BT, self.emb_dim).astype(self.dtype))
        x_BTD = nn.Dropout(self.dropout_rate)(x_BTD, deterministic=not train)
        # Keys only: a padded query still sees the real keys, so no softmax row is empty.
        mask_B11S = frame_mask(out_len_B, t)[:, None, None, :]
        block = dict(num_heads=self.num_heads, mlp_dim=self.mlp_dim, pre_ln=self.pre_ln,
                     activation=self.activation, dropout_rate=self.dropout_rate,
                     attention_dropout=self.attention_dropout, implementation=self.attention_impl,
                     layer_norm_eps=self.layer_norm_eps)
        x_BTD = TransformerStack(self.num_layers, block, scan=self.scan, remat=self.remat,
                                 final_norm=self.pre_ln, layer_norm_eps=self.layer_norm_eps,
                                 dtype=self.dtype, param_dtype=self.param_dtype, name="encoder")(
            x_BTD, None, mask_B11S, None, train=train)
        self.sow("intermediates", "encoder_out", x_BTD)
        return head(self.vocab_size, self.param_dtype)(x_BTD), out_len_B


register_model("transformer_ctc", TransformerCTC)
register_model("transformer_ctc_tiny", functools.partial(
    TransformerCTC, emb_dim=32, num_heads=2, num_layers=2, mlp_dim=64))
