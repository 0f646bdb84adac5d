"""BERT for extractive question answering: the encoder plus a start/end logit per token.

The input is one window `[CLS] question [SEP] passage [SEP]` (token types 0 then 1); a
Dense layer `span_head` maps every token's final state to two logits, the score of the
answer starting there and of it ending there (Devlin et al. 2019, SQuAD set-up). With
`question_match`, a learned vector is added to the embedding of every passage token that is
also a word of the question (DrQA's exact-match feature), so that finding the question's
name in the passage is one look-up from the input rather than a comparison the encoder must
learn; it starts at zero, so the model starts as plain BERT. Which positions may hold an
answer, and the best span across windows, are the task's business
(`dl_arch.tasks.question_answering`).

The encoder's parameters sit at the same paths as in `dl_arch.models.transformer.Bert`
(`token_embed`, `position_embed`, `type_embed`, `embed_norm`, `encoder`), so `init_from`
an MLM pretraining run or an imported Hugging Face BERT (`hf:<folder>`) loads all of it;
only `span_head` (and `match_embed`) is new.

Registered: bert_span_base, bert_span_large, bert_span_mini, bert_span_tiny (the sizes of
the BERT variants).
"""

from __future__ import annotations

import functools
from typing import Any, ClassVar

import flax.linen as nn
import jax
import jax.numpy as jnp

from dl_arch.models.layers.embed import Embed
from dl_arch.models.transformer import COMMON_CHECKS, bert_sequence
from dl_arch.registry import register_model

Array = jax.Array


def question_word_mask(tokens_BT: Array, token_types_BT: Array | None) -> Array:
    """(B, T) bool: passage tokens (type 1) whose id is one of the question's words, the
    exact-match feature of DrQA (Chen et al. 2017). The window is `[CLS] question [SEP]
    passage [SEP] pad`: question words are the type-0 tokens but the first and the last."""
    if token_types_BT is None:
        return jnp.zeros(tokens_BT.shape, bool)
    question = token_types_BT == 0
    next_is_question = jnp.pad(question[:, 1:], ((0, 0), (0, 1)), constant_values=False)
    first = (jnp.arange(tokens_BT.shape[1]) == 0)[None]
    words_BT = question & next_is_question & ~first & (tokens_BT > 0)  # not [CLS], [SEP], pad
    same_BTT = tokens_BT[:, :, None] == tokens_BT[:, None, :]
    return (token_types_BT == 1) & jnp.any(same_BTT & words_BT[:, None, :], axis=-1)


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
    attention_impl: str = "xla"  # attention kernel: xla | cudnn | auto | naive | blocked
    question_match: bool = False  # learned vector on passage tokens that are question words
    dtype: Any = jnp.float32
    param_dtype: Any = jnp.float32

    field_checks: ClassVar[dict[str, dict[str, Any]]] = dict(COMMON_CHECKS)

    @nn.compact
    def __call__(self, tokens_BT: Array, token_types_BT: Array | None = None, *,
                 train: bool = False) -> Array:
        extra_BTD = None
        if self.question_match:
            match_BT = question_word_mask(tokens_BT, token_types_BT)
            extra_BTD = Embed(2, self.hidden, embedding_init=nn.initializers.zeros,
                              name="match_embed", dtype=self.dtype,
                              param_dtype=self.param_dtype)(match_BT.astype(jnp.int32))
        x_BTD, _ = bert_sequence(self, tokens_BT, token_types_BT, train, extra_BTD)
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
