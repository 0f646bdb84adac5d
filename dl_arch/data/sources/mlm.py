"""BERT-style inputs: [CLS] sentence [SEP], zero padded, with a sentence-level label.

`synthetic_sentences` (no download) draws sentences of the procedural source language of
`translation.py`; the label is the sentence's topic. Topic words are many and each labelled
sentence shows only a few, so a classifier trained from scratch on a small labelled set
sees most words rarely, while masked-LM pretraining on unlabelled sentences learns which
words co-occur (= share a topic) — the setting where pretraining then fine-tuning pays off.
`noise` is the chance that a content word comes from another topic.

`pack_sentences` (RoBERTa's full-sentence inputs) fills each example with consecutive
sentences of its topic, each ended by [SEP], as many as fit in `max_len`: longer sequences
of one "document" instead of one padded sentence. The masking itself (15%, 80/10/10) happens
on device in `dl_arch.tasks.masked_lm`, afresh at every step.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from dl_arch.config.errors import ConfigError
from dl_arch.config.fields import Field
from dl_arch.data.sources.procedural import SPLIT_FIELDS, ProceduralSource, split_length
from dl_arch.data.sources.translation import LANGUAGE_FIELDS, language_of
from dl_arch.data.tokenizers import BOS, EOS, pad_to
from dl_arch.registry import register_dataset


class SyntheticSentences(ProceduralSource):
    """Example i: {inputs: [CLS] words [SEP] (max_len), label: topic}."""

    def __init__(self, cfg: Any, split: str, seed: int):
        super().__init__(split_length(cfg, split), seed, split)
        self.lang = language_of(cfg)
        self.max_len = int(cfg.max_len)
        self.max_adjs = int(cfg.max_adjectives)
        self.noise = float(cfg.noise)
        self.pack = bool(cfg.pack_sentences)
        worst = 3 * (2 + self.max_adjs) + 4  # three noun phrases, verb, prep, [CLS], [SEP]
        if worst > self.max_len:
            raise ConfigError(f"config.dataset.max_len={self.max_len} is shorter than the "
                             f"longest sentence ({worst} tokens); raise it")

    def _sentence(self, rng: np.random.Generator, topic: int) -> list[int]:
        src, _ = self.lang.sentence(rng, topic, self.max_adjs, 0.5, self.noise)
        return self.lang.tokenizer.encode(" ".join(src)) + [EOS]

    def make(self, rng: np.random.Generator, index: int) -> dict[str, Any]:
        topic = int(rng.integers(self.lang.num_topics))
        ids = [BOS] + self._sentence(rng, topic)
        while self.pack:  # the first sentence that does not fit ends the example
            more = self._sentence(rng, topic)
            if len(ids) + len(more) > self.max_len:
                break
            ids += more
        return {"inputs": pad_to(ids, self.max_len), "label": np.int32(topic)}


@register_dataset("synthetic_sentences", fields={
    **LANGUAGE_FIELDS,
    "noise": Field(0.0, "chance that a content word comes from another topic", low=0.0,
                   high=1.0, high_open=True),
    "max_len": Field(32, "tokens per example, [CLS] and [SEP] included (padded to it)", low=1),
    "pack_sentences": Field(False, "fill each example with consecutive sentences of its topic, "
                                   "each ended by [SEP], up to max_len (RoBERTa's full "
                                   "sentences; False: one sentence per example)"),
    **SPLIT_FIELDS})
def synthetic_sentences(cfg: Any, split: str, seed: int) -> SyntheticSentences:
    """Topic-labelled sentences of a procedural language for MLM pretraining/fine-tuning."""
    return SyntheticSentences(cfg, split, seed)
