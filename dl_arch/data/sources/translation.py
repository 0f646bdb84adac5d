"""Translation sources: an offline procedural language pair, and TFDS translation datasets.

`synthetic_translation` (no download): sentences of a small grammar in a "source" language
with English-like order (subject verb object, adjectives before nouns, determiner first)
are translated word by word through a fixed bilingual lexicon AND reordered into a "target"
language with verb-final order (subject object [prepositional phrase] verb) and
noun-adjectives-determiner noun phrases, so a model must learn both the lexicon and
long-range reordering. Words are grouped into topics (a sentence keeps to one topic),
which the BERT sources in `mlm.py` reuse. Example: {inputs, targets} = word ids + <eos>,
zero padded to `max_len`; `tokenizer(cfg)` turns ids back into text for BLEU.

`tfds_translation`: a TFDS translation dataset (`wmt14_translate/de-en`,
`ted_hrlr_translate/pt_to_en`, ...) tokenised by a SentencePiece model trained locally on
its training text (cached under `config.dataset.tokenizer_dir`).
"""

from __future__ import annotations

import functools
import os
from typing import Any

import numpy as np

from dl_arch.config.errors import ConfigError
from dl_arch.config.fields import Field, Fields
from dl_arch.data.sources.procedural import SPLIT_FIELDS, ProceduralSource, split_length
from dl_arch.data.tfds_source import TFDS_FIELDS
from dl_arch.data.tokenizers import (
    EOS,
    SentencePieceTokenizer,
    Tokenizer,
    WordTokenizer,
    pad_to,
    train_sentencepiece,
)
from dl_arch.registry import register_dataset

_ONSETS = ("b", "d", "f", "g", "k", "l", "m", "n", "p", "r", "s", "t", "v", "z", "ch", "sh")
_VOWELS = ("a", "e", "i", "o", "u", "ai", "ou")
_CODAS = ("", "", "n", "r", "s", "k", "l")


def _pseudo_words(rng: np.random.Generator, count: int, syllables: tuple[int, int],
                  taken: set[str]) -> list[str]:
    """`count` distinct pronounceable nonsense words not already in `taken`."""
    words: list[str] = []
    while len(words) < count:
        n = int(rng.integers(syllables[0], syllables[1] + 1))
        w = "".join(rng.choice(_ONSETS) + rng.choice(_VOWELS) + rng.choice(_CODAS)
                    for _ in range(n))
        if w not in taken:
            taken.add(w)
            words.append(w)
    return words


class SyntheticLanguage:
    """A two-language lexicon over `num_topics` topics, fixed by `language_seed`."""

    CATEGORIES = ("noun", "verb", "adj")

    def __init__(self, num_topics: int = 4, words_per_topic: int = 12, language_seed: int = 0):
        rng = np.random.default_rng([language_seed, 1234])
        taken: set[str] = set()
        self.num_topics = num_topics
        # source lexicon: topic words per category + shared function words
        self.src: dict[str, list[list[str]]] = {
            c: [_pseudo_words(rng, words_per_topic, (1, 2), taken) for _ in range(num_topics)]
            for c in self.CATEGORIES}
        self.src_det = _pseudo_words(rng, 3, (1, 1), taken)
        self.src_prep = _pseudo_words(rng, 3, (1, 1), taken)
        source_words = [w for c in self.CATEGORIES for t in self.src[c] for w in t]
        source_words += self.src_det + self.src_prep
        target_words = _pseudo_words(rng, len(source_words), (2, 3), taken)
        self.lexicon = dict(zip(source_words, target_words, strict=True))
        self.source_words, self.target_words = source_words, target_words

    @functools.cached_property
    def tokenizer(self) -> WordTokenizer:
        """One vocabulary for both languages (the original Transformer shares it)."""
        return WordTokenizer(self.source_words + self.target_words)

    def _noun_phrase(self, rng: np.random.Generator, topic: int, max_adjs: int,
                     noise: float) -> list[tuple[str, str]]:
        pick = lambda cat: self._word(rng, cat, topic, noise)
        adjs = [pick("adj") for _ in range(int(rng.integers(0, max_adjs + 1)))]
        return [(rng.choice(self.src_det), "det")] + [(a, "adj") for a in adjs] + \
            [(pick("noun"), "noun")]

    def _word(self, rng: np.random.Generator, cat: str, topic: int, noise: float) -> str:
        if noise > 0 and rng.random() < noise:  # an off-topic word
            topic = int(rng.integers(self.num_topics))
        return str(rng.choice(self.src[cat][topic]))

    def sentence(self, rng: np.random.Generator, topic: int, max_adjs: int = 2,
                 pp_prob: float = 0.5, noise: float = 0.0) -> tuple[list[str], list[str]]:
        """(source words, target words) of one random sentence about `topic`."""
        subj = self._noun_phrase(rng, topic, max_adjs, noise)
        verb = self._word(rng, "verb", topic, noise)
        obj = self._noun_phrase(rng, topic, max_adjs, noise)
        pp = []
        if rng.random() < pp_prob:
            pp = [(str(rng.choice(self.src_prep)), "prep")] + \
                self._noun_phrase(rng, topic, max_adjs, noise)
        source = [w for w, _ in subj] + [verb] + [w for w, _ in obj] + [w for w, _ in pp]

        def reorder_np(np_):  # det adj1 adj2 noun -> noun adj2 adj1 det
            return [w for w, _ in reversed(np_)]

        target_src = reorder_np(subj) + reorder_np(obj)
        if pp:
            target_src += reorder_np(pp[1:]) + [pp[0][0]]  # postposition
        target_src.append(verb)  # verb-final
        return source, [self.lexicon[w] for w in target_src]


@functools.lru_cache(maxsize=4)
def synthetic_language(num_topics: int, words_per_topic: int, language_seed: int
                       ) -> SyntheticLanguage:
    return SyntheticLanguage(num_topics, words_per_topic, language_seed)


# The procedural language pair, shared by `synthetic_translation` and `synthetic_sentences`.
LANGUAGE_FIELDS: Fields = {
    "num_topics": Field(4, "topics of the procedural language (a sentence keeps to one)", low=1),
    "words_per_topic": Field(12, "words per topic in each category (noun, verb, adjective)",
                             low=1),
    "language_seed": Field(0, "seed of the lexicon: another seed is another language pair"),
    "max_adjectives": Field(2, "most adjectives in one noun phrase", low=0),
}


def language_of(cfg: Any) -> SyntheticLanguage:
    """The procedural language a dataset config describes."""
    from dl_arch.data.pipeline import resolve_dataset

    cfg = resolve_dataset(cfg)
    return synthetic_language(cfg.num_topics, cfg.words_per_topic, cfg.language_seed)


class SyntheticTranslation(ProceduralSource):
    """Example i: a random sentence pair, as padded word ids ending in <eos>."""

    def __init__(self, cfg: Any, split: str, seed: int):
        super().__init__(split_length(cfg, split), seed, split)
        self.lang = language_of(cfg)
        self.max_len = int(cfg.max_len)
        self.max_adjs = int(cfg.max_adjectives)
        self.pp_prob = float(cfg.pp_prob)
        worst = 3 * (2 + self.max_adjs) + 3  # three noun phrases, verb, preposition, <eos>
        if worst > self.max_len:
            raise ConfigError(f"config.dataset.max_len={self.max_len} is shorter than the "
                             f"longest sentence ({worst} tokens); raise it")

    def make(self, rng: np.random.Generator, index: int) -> dict[str, Any]:
        topic = int(rng.integers(self.lang.num_topics))
        src, tgt = self.lang.sentence(rng, topic, self.max_adjs, self.pp_prob)
        tok = self.lang.tokenizer
        return {"inputs": pad_to(tok.encode(" ".join(src)) + [EOS], self.max_len),
                "targets": pad_to(tok.encode(" ".join(tgt)) + [EOS], self.max_len)}


@register_dataset("synthetic_translation", fields={
    **LANGUAGE_FIELDS,
    "pp_prob": Field(0.5, "chance that a sentence ends in a prepositional phrase", low=0.0,
                     high=1.0),
    "max_len": Field(32, "tokens per sentence, <eos> included (padded to it)", low=1),
    **SPLIT_FIELDS})
def synthetic_translation(cfg: Any, split: str, seed: int) -> SyntheticTranslation:
    """Offline translation between two procedural languages (word-level, shared vocab)."""
    return SyntheticTranslation(cfg, split, seed)


def _tfds_pairs(cfg: Any, split: str):
    import tensorflow_datasets as tfds

    if not cfg.tfds_name:
        raise ConfigError("config.dataset.tfds_name is empty; set it, e.g. 'wmt14_translate/de-en'")
    return tfds.data_source(cfg.tfds_name, split=split, data_dir=cfg.data_dir or None,
                            download=cfg.download)


def _text(value: Any) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


@functools.lru_cache(maxsize=4)
def _spm_for(name: str, split: str, data_dir: str, download: bool, src_key: str, tgt_key: str,
             vocab: int, cache_dir: str, max_sentences: int) -> SentencePieceTokenizer:
    import tensorflow_datasets as tfds

    source = tfds.data_source(name, split=split, data_dir=data_dir or None, download=download)
    n = min(len(source), max_sentences // 2)

    def texts():
        for i in range(n):
            ex = source[i]
            yield _text(ex[src_key])
            yield _text(ex[tgt_key])

    return train_sentencepiece(texts(), vocab, cache_dir, max_sentences=max_sentences)


def tokenizer(cfg: Any) -> Tokenizer:
    """The tokenizer of a translation dataset config (to decode ids into text for BLEU)."""
    from dl_arch.data.pipeline import resolve_dataset

    if cfg.name == "synthetic_translation":
        return language_of(cfg).tokenizer
    if cfg.name == "tfds_translation":
        cfg = resolve_dataset(cfg)
        cache = cfg.tokenizer_dir or os.path.join(os.path.expanduser("~"), ".cache", "dl_arch",
                                                  "spm")
        return _spm_for(cfg.tfds_name, cfg.train_split, cfg.data_dir, cfg.download,
                        cfg.source_key, cfg.target_key, cfg.vocab_size, cache,
                        cfg.tokenizer_sentences)
    if cfg.name == "parallel_text":
        from dl_arch.data.sources.parallel_text import tokenizer as parallel_tokenizer

        return parallel_tokenizer(cfg)
    raise ConfigError(f"config.dataset.name='{cfg.name}' is not a translation dataset; use "
                     "synthetic_translation, tfds_translation or parallel_text")


class TfdsTranslation:
    """TFDS (source, target) sentence pairs as SentencePiece ids + <eos>, padded/truncated."""

    def __init__(self, cfg: Any, split: str):
        self.source = _tfds_pairs(cfg, split)
        self.tok = tokenizer(cfg)
        self.src_key, self.tgt_key = cfg.source_key, cfg.target_key
        self.max_len = int(cfg.max_len)

    def __len__(self) -> int:
        return len(self.source)

    def __getitem__(self, index: int) -> dict[str, Any]:
        ex = self.source[index]
        src = self.tok.encode(_text(ex[self.src_key]))[: self.max_len - 1] + [EOS]
        tgt = self.tok.encode(_text(ex[self.tgt_key]))[: self.max_len - 1] + [EOS]
        return {"inputs": pad_to(src, self.max_len), "targets": pad_to(tgt, self.max_len)}


@register_dataset("tfds_translation", fields={
    "tfds_name": Field("wmt14_translate/de-en", "TFDS translation dataset, e.g. "
                       "'ted_hrlr_translate/pt_to_en'"),
    "source_key": Field("de", "feature of the source sentence"),
    "target_key": Field("en", "feature of the target sentence"),
    **TFDS_FIELDS,
    "vocab_size": Field(8000, "SentencePiece vocabulary, shared by both languages (5 ids are "
                              "special)", low=6),
    "tokenizer_sentences": Field(200_000, "training sentences (both sides) the SentencePiece "
                                          "model is trained on", low=1),
    "tokenizer_dir": Field("", "where trained SentencePiece models are cached "
                               "('' = ~/.cache/dl_arch/spm)"),
    "max_len": Field(64, "subword tokens per sentence, <eos> included (longer ones are cut)",
                     low=2)})
def tfds_translation(cfg: Any, split: str, seed: int) -> TfdsTranslation:
    """WMT14 / TED translation from TFDS with a locally trained SentencePiece vocabulary."""
    return TfdsTranslation(cfg, split)
