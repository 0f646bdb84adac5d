"""BERT for extractive question answering: the encoder plus a start/end logit per token.

The input is one window `[CLS] question [SEP] passage [SEP]` (token types 0 then 1); a
Dense layer `span_head` maps every token's final state to two logits, the score of the
answer starting there and of it ending there (Devlin et al. 2019, SQuAD set-up). Which
positions may hold an answer, and the best span across windows, are the task's business
(`dl_arch.tasks.question_answering`).

The encoder's parameters sit at the same paths as in `dl_arch.models.transformer.Bert`
(`token_embed`, `position_embed`, `type_embed`, `embed_norm`, `encoder`), so `init_from`
an MLM pretraining run or an imported Hugging Face BERT (`hf:<folder>`) loads all of it;
only `span_head` is new.

Registered: bert_span_base, bert_span_large, bert_span_mini, bert_span_tiny (the sizes of
the BERT variants).
"""

from __future__ import annotations

import functools
from typing import Any, ClassVar

import flax.linen as nn
import jax
import jax.numpy as jnp

from dl_arch.models.layers.attention import padding_mask
from dl_arch.models.layers.position import LearnedPositionEmbedding
from dl_arch.models.layers.transformer_block import TransformerStack
from dl_arch.models.transformer import COMMON_CHECKS, _check_length
from dl_arch.registry import register_model

Array = jax.Array


def bert_sequence(module: nn.Module, tokens_BT: Array, token_types_BT: Array | None,
                  train: bool) -> Array:
    """BERT's token path, built in `module`'s compact `__call__`: token + learned position +
    token-type embeddings, LayerNorm, dropout, post-LN `encoder`. Returns the states
    (B, T, D). The submodule names are `Bert`'s, so parameters move between the two by path.
    Reads the BERT fields of `module` (vocab_size, hidden, num_layers, num_heads, mlp_dim,
    max_len, type_vocab_size, dropout rates, activation, layer_norm_eps, init_std, scan,
    remat, attention_impl, dtype, param_dtype).
    """
    m = module
    b, t = tokens_BT.shape
    _check_length(t, m.max_len, "input")
    init = nn.initializers.normal(m.init_std)
    common = dict(dtype=m.dtype, param_dtype=m.param_dtype)
    if token_types_BT is None:
        token_types_BT = jnp.zeros_like(tokens_BT)
    positions_BT = jnp.broadcast_to(jnp.arange(t)[None], (b, t))
    x_BTD = (nn.Embed(m.vocab_size, m.hidden, embedding_init=init, name="token_embed",
                      **common)(tokens_BT)
             + LearnedPositionEmbedding(m.max_len, m.hidden, init, name="position_embed",
                                        **common)(positions_BT)
             + nn.Embed(m.type_vocab_size, m.hidden, embedding_init=init, name="type_embed",
                        **common)(token_types_BT))
    x_BTD = nn.LayerNorm(m.layer_norm_eps, name="embed_norm", **common)(x_BTD)
    x_BTD = nn.Dropout(m.dropout_rate)(x_BTD, deterministic=not train)
    block = dict(num_heads=m.num_heads, mlp_dim=m.mlp_dim, pre_ln=False,
                 activation=m.activation, dropout_rate=m.dropout_rate,
                 attention_dropout=m.attention_dropout, implementation=m.attention_impl,
                 layer_norm_eps=m.layer_norm_eps, kernel_init=init)
    return TransformerStack(m.num_layers, block, scan=m.scan, remat=m.remat, final_norm=False,
                            name="encoder", **common)(
        x_BTD, None, padding_mask(tokens_BT > 0), None, train=train)


class BertSpanQA(nn.Module):
    """BERT encoder + `span_head`: (B, T, 2) float32 logits, [..., 0] start and [..., 1] end."""

    vocab_size: int = 30522  # WordPiece vocabulary
    hidden: int = 768  # model width
    num_layers: int = 12  # encoder blocks
    num_heads: int = 12  # attention heads per layer
    mlp_dim: int = 3072  # hidden width of each feed-forward layer
    max_len: int = 512  # longest input window (learned position table)
    type_vocab_size: int = 2  # token types (question 0, passage 1)
    dropout_rate: float = 0.1  # dropout on embeddings and after each sublayer in training
    attention_dropout: float = 0.0  # dropout on the attention weights in training
    activation: str = "gelu"  # feed-forward activation
    layer_norm_eps: float = 1e-12  # LayerNorm epsilon
    init_std: float = 0.02  # std of the normal weight init
    scan: bool = False  # nn.scan over the layers (compile time flat in depth)
    remat: bool = False  # recompute activations in the backward pass to save memory
    attention_impl: str = "xla"  # attention kernel: xla | cudnn | auto | naive
    dtype: Any = jnp.float32
    param_dtype: Any = jnp.float32

    field_checks: ClassVar[dict[str, dict[str, Any]]] = dict(COMMON_CHECKS)

    @nn.compact
    def __call__(self, tokens_BT: Array, token_types_BT: Array | None = None, *,
                 train: bool = False) -> Array:
        x_BTD = bert_sequence(self, tokens_BT, token_types_BT, train)
        self.sow("intermediates", "sequence", x_BTD)
        logits_BT2 = nn.Dense(2, kernel_init=nn.initializers.normal(self.init_std),
                              name="span_head", dtype=self.dtype,
                              param_dtype=self.param_dtype)(x_BTD)
        return logits_BT2.astype(jnp.float32)


def _register(name: str, **fields: Any) -> None:
    register_model(name, functools.partial(BertSpanQA, **fields))


_register("bert_span_base")
_register("bert_span_large", hidden=1024, num_layers=24, num_heads=16, mlp_dim=4096)
_register("bert_span_mini", hidden=256, num_layers=4, num_heads=4, mlp_dim=1024)
_register("bert_span_tiny", hidden=128, num_layers=2, num_heads=2, mlp_dim=512)
