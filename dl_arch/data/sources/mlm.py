"""BERT-style inputs: [CLS] sentence [SEP], zero padded, with a sentence-level label.

`synthetic_sentences` (no download) draws sentences of the procedural source language of
`translation.py`; the label is the sentence's topic. Topic words are many and each labelled
sentence shows only a few, so a classifier trained from scratch on a small labelled set
sees most words rarely, while masked-LM pretraining on unlabelled sentences learns which
words co-occur (= share a topic) — the setting where pretraining then fine-tuning pays off.
`noise` is the chance that a content word comes from another topic.

The masking itself (15%, 80/10/10) happens on device in `dl_arch.tasks.masked_lm`.
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
        worst = 3 * (2 + self.max_adjs) + 4  # three noun phrases, verb, prep, [CLS], [SEP]
        if worst > self.max_len:
            raise ConfigError(f"config.dataset.max_len={self.max_len} is shorter than the "
                             f"longest sentence ({worst} tokens); raise it")

    def make(self, rng: np.random.Generator, index: int) -> dict[str, Any]:
        topic = int(rng.integers(self.lang.num_topics))
        src, _ = self.lang.sentence(rng, topic, self.max_adjs, 0.5, self.noise)
        ids = [BOS] + self.lang.tokenizer.encode(" ".join(src)) + [EOS]
        return {"inputs": pad_to(ids, self.max_len), "label": np.int32(topic)}


@register_dataset("synthetic_sentences", fields={
    **LANGUAGE_FIELDS,
    "noise": Field(0.0, "chance that a content word comes from another topic", low=0.0,
                   high=1.0, high_open=True),
    "max_len": Field(32, "tokens per example, [CLS] and [SEP] included (padded to it)", low=1),
    **SPLIT_FIELDS})
def synthetic_sentences(cfg: Any, split: str, seed: int) -> SyntheticSentences:
    """Topic-labelled sentences of a procedural language for MLM pretraining/fine-tuning."""
    return SyntheticSentences(cfg, split, seed)
