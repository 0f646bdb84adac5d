"""Abstractive summarization: the translation task on (document, summary) pairs.

Training is translation's (teacher forcing, label-smoothed cross-entropy over real summary
tokens); so is decoding (greedy and beam search with the GNMT length penalty on the
Transformer's KV cache). The model is the encoder-decoder Transformer (`transformer_*`) or
the RNN encoder-decoder with attention (`seq2seq_attention*`), which is called with source
lengths read off the <pad> tokens and decodes with its own greedy and beam search. Eval
reports token loss/accuracy and greedy exact match on device; the `summaries` evaluator
(listed by default) scores beam and greedy summaries and the lead baseline with ROUGE-1/2/L
(`dl_arch.tasks.rouge`).

Fields of config.task: translation's, with `decode_len` defaulting to the dataset's
`summary_len`; `launch.py --sample` summarises config.sample.prompt.
"""

from __future__ import annotations

import functools
from typing import Any

import jax
import jax.numpy as jnp

from dl_arch.config.errors import ConfigError
from dl_arch.config.fields import Field
from dl_arch.data.tokenizers import PAD, Tokenizer
from dl_arch.models.seq2seq import Seq2SeqAttention
from dl_arch.registry import register_task
from dl_arch.tasks.base import Batch, MetricTotals, Variables
from dl_arch.tasks.translation import Translation, beam_search, greedy_decode, shift_right
from dl_arch.train.compile_options import model_jit


def source_lengths(source_BS: jax.Array) -> jax.Array:
    """Real tokens per row of a right-padded batch."""
    return jnp.sum(source_BS != PAD, axis=1).astype(jnp.int32)


class PaddedSourceRNN:
    """A `Seq2SeqAttention` with the encoder-decoder Transformer's call signature
    `(source_BS, target_in_BT)`: the source lengths come from its padding."""

    def __init__(self, module: Seq2SeqAttention):
        self.module = module
        self.vocab_size = module.tgt_vocab_size

    def init(self, rngs: Any, source_BS: jax.Array, target_in_BT: jax.Array, *,
             train: bool = False) -> Variables:
        return self.module.init(rngs, source_BS, source_lengths(source_BS), target_in_BT,
                                train=train)

    def apply(self, variables: Variables, source_BS: jax.Array, target_in_BT: jax.Array, *,
              train: bool = False, rngs: Any = None) -> jax.Array:
        return self.module.apply(variables, source_BS, source_lengths(source_BS), target_in_BT,
                                 train=train, rngs=rngs)

    def greedy(self, params: Any, source_BS: jax.Array, max_len: int) -> jax.Array:
        tokens, _ = self.module.apply({"params": params}, source_BS, source_lengths(source_BS),
                                      max_len, method="greedy")
        return tokens

    def beam(self, params: Any, source_BS: jax.Array, max_len: int, beam_size: int,
             alpha: float) -> jax.Array:
        return self.module.apply({"params": params}, source_BS, source_lengths(source_BS),
                                 max_len, beam_size, alpha, method="beam_search")


def tokenizer_of(dataset_config: Any) -> Tokenizer:
    """The tokenizer of a summarization dataset config (to turn ids into text for ROUGE)."""
    name = dataset_config.name
    if name == "reports":
        from dl_arch.data.sources.reports import tokenizer

        return tokenizer()
    if name == "tfds_summarization":
        from dl_arch.data.sources.summarization_tfds import tokenizer

        return tokenizer(dataset_config)
    if name == "parallel_text":  # a TSV of document TAB summary
        from dl_arch.data.sources.parallel_text import tokenizer

        return tokenizer(dataset_config)
    raise ConfigError(f"config.dataset.name='{name}' is not a summarization dataset; use "
                      "reports, tfds_summarization or parallel_text (document TAB summary)")


@register_task("summarization")
class Summarization(Translation):
    """Translation's training and decoding on documents; ROUGE in the `summaries` evaluator."""

    fields = {
        "decode_len": Field(0, "longest decoded summary in tokens (0: dataset.summary_len, or "
                               "max_len where the dataset has none)", low=0),
    }
    evaluators = ("summaries",)  # ROUGE of beam, greedy and lead summaries at each eval
    sections = {"sample": {"prompt": Field("", "documents to summarise, separated by '|'")}}

    def __init__(self, config: Any):
        super().__init__(config)
        d = config.dataset
        self.decode_len = config.task.decode_len or (
            d.summary_len if "summary_len" in d else d.max_len)
        if isinstance(self.model, Seq2SeqAttention):
            self.model = PaddedSourceRNN(self.model)
        if d.name == "reports" and self.model.vocab_size < self.tokenizer.vocab_size:
            raise ConfigError(f"the model's vocabulary ({self.model.vocab_size}) is smaller than "
                              f"the reports' ({self.tokenizer.vocab_size} words); set "
                              f"config.model.vocab_size (or src/tgt_vocab_size) to it")

    @property
    def recurrent(self) -> bool:
        return isinstance(self.model, PaddedSourceRNN)

    def greedy(self, params: Any, source_BS: jax.Array, max_len: int) -> jax.Array:
        """Greedy decoding of either model: (B, max_len) ids, <pad> after <eos>."""
        if self.recurrent:
            return self.model.greedy(params, source_BS, max_len)
        return greedy_decode(self.model, params, source_BS, max_len)

    def beam(self, params: Any, source_BS: jax.Array, max_len: int) -> jax.Array:
        """Beam search of either model (task.beam_size, task.length_penalty)."""
        if self.recurrent:
            return self.model.beam(params, source_BS, max_len, self.beam_size, self.alpha)
        return beam_search(self.model, params, source_BS, max_len, self.beam_size, self.alpha)

    def eval_metrics(self, variables: Variables, batch: Batch) -> MetricTotals:
        targets, mask = batch["targets"], batch["_mask"].astype(jnp.float32)
        params = variables["params"]
        logits = self.model.apply({"params": params}, batch["inputs"], shift_right(targets),
                                  train=False)
        w = (targets != PAD).astype(jnp.float32) * mask[:, None]
        nll, hit = self._token_scores(logits, targets, w)
        exact_B = jnp.all(self.greedy(params, batch["inputs"], targets.shape[1]) == targets,
                          axis=1)  # both are <pad> after <eos>
        return {"loss": (nll.sum(), w.sum()), "token_accuracy": (hit.sum(), w.sum()),
                "exact_match": ((exact_B * mask).sum(), mask.sum())}

    # ----- host side -----
    @functools.cached_property
    def tokenizer(self) -> Tokenizer:
        return tokenizer_of(self.config.dataset)

    @functools.cached_property
    def _decoders(self):
        greedy = model_jit(lambda p, s: self.greedy(p, s, self.decode_len))
        beam = model_jit(lambda p, s: self.beam(p, s, self.decode_len))
        return greedy, beam
