"""A Transformer encoder over a sequence -> one output per sequence or per step.

The attention counterpart of `{rnn,lstm,gru}_classifier` (same inputs, same call, same
tasks), so sequence studies can put a Transformer beside the recurrent cells on float-input
tasks such as the adding problem: tokens (`vocab_size > 0`) are embedded, float features
(B, T, F) are projected linearly; sinusoidal positions (any length); a pre-LN encoder with
full (bidirectional, optionally causal) attention; padding after each sequence's length is
masked out of every attention and of the pooling.
"""

from __future__ import annotations

from typing import Any, ClassVar

import flax.linen as nn
import jax
import jax.numpy as jnp

from dl_arch.config.errors import ConfigError
from dl_arch.models.layers.attention import IMPLEMENTATIONS, causal_mask, padding_mask
from dl_arch.models.layers.embed import Embed
from dl_arch.models.layers.position import sinusoidal_encoding
from dl_arch.models.layers.transformer_block import TransformerStack
from dl_arch.registry import register_model

POOLS = ("cls", "mean", "per_step")


class SequenceTransformer(nn.Module):
    """Embed or project inputs, add positions, encode, pool (`cls` | `mean` | `per_step`)."""

    num_outputs: int  # outputs of the head (classes, or regression targets)
    vocab_size: int = 0  # > 0: token ids, embedded; 0: (B, T, F) floats, projected
    emb_dim: int = 64  # model width
    num_layers: int = 2  # encoder blocks
    num_heads: int = 4  # attention heads per layer
    mlp_dim: int = 128  # hidden width of each feed-forward layer
    pool: str = "cls"  # cls: a learned summary token; mean: over real steps; per_step
    causal: bool = False  # each step attends only to earlier ones
    dropout_rate: float = 0.0  # dropout on the inputs and after each sublayer in training
    attention_impl: str = "xla"  # attention kernel: xla | cudnn | auto | naive | blocked
    dtype: Any = jnp.float32
    param_dtype: Any = jnp.float32

    field_checks: ClassVar[dict[str, dict[str, Any]]] = {
        "vocab_size": dict(low=0), "pool": dict(choices=POOLS),
        "attention_impl": dict(choices=IMPLEMENTATIONS)}

    @nn.compact
    def __call__(self, inputs: jax.Array, *, train: bool = False,
                 lengths_B: jax.Array | None = None) -> jax.Array:
        if self.pool not in POOLS:
            raise ConfigError(f"config.model.pool='{self.pool}'; use one of {POOLS}")
        common = dict(dtype=self.dtype, param_dtype=self.param_dtype)
        if self.vocab_size > 0:
            x_BTD = Embed(self.vocab_size, self.emb_dim, name="embed", **common)(inputs)
        else:
            x = inputs[..., None] if inputs.ndim == 2 else inputs
            x_BTD = nn.Dense(self.emb_dim, name="input_proj", **common)(x.astype(self.dtype))
        batch, steps = x_BTD.shape[:2]
        valid_BT = jnp.ones((batch, steps), jnp.bool_)
        if lengths_B is not None:
            valid_BT = jnp.arange(steps)[None, :] < lengths_B[:, None]
        positions_BT = jnp.broadcast_to(jnp.arange(steps)[None, :], (batch, steps))
        x_BTD = x_BTD + sinusoidal_encoding(positions_BT, self.emb_dim).astype(self.dtype)
        if self.pool == "cls":  # a learned token in front, always valid, sees every step
            cls = self.param("cls_token", nn.initializers.normal(0.02), (1, 1, self.emb_dim),
                             self.param_dtype)
            x_BTD = jnp.concatenate(
                [jnp.broadcast_to(cls.astype(self.dtype), (batch, 1, self.emb_dim)), x_BTD], 1)
            valid_BT = jnp.concatenate([jnp.ones((batch, 1), jnp.bool_), valid_BT], axis=1)
        x_BTD = nn.Dropout(self.dropout_rate, deterministic=not train)(x_BTD)
        mask = padding_mask(valid_BT)
        if self.causal:
            mask = mask & causal_mask(x_BTD.shape[1])
        block = dict(num_heads=self.num_heads, mlp_dim=self.mlp_dim, pre_ln=True,
                     activation="gelu", dropout_rate=self.dropout_rate,
                     attention_dropout=0.0, implementation=self.attention_impl)
        h_BTD = TransformerStack(self.num_layers, block, final_norm=True, name="encoder",
                                 **common)(x_BTD, None, mask, None, train=train)
        if self.pool == "cls":
            feat = h_BTD[:, 0]
        elif self.pool == "mean":
            w_BT = valid_BT.astype(h_BTD.dtype)
            feat = (h_BTD * w_BT[..., None]).sum(1) / jnp.maximum(w_BT.sum(1), 1)[:, None]
        else:
            feat = h_BTD
        out = nn.Dense(self.num_outputs, name="head", **common)(feat)
        return out.astype(jnp.float32)


register_model("transformer_classifier", SequenceTransformer)
