"""TFDS summarization datasets: CNN/DailyMail and XSum news articles with their summaries.

`tfds_summarization` reads `cnn_dailymail` (features `article`, `highlights`) or `xsum`
(`document`, `summary`) through `tfds.data_source`; other TFDS summarization datasets work
when `document_key` and `summary_key` name their features. Documents and summaries are
tokenised by one SentencePiece model trained locally on the train split's sentences
(cached under `tokenizer_dir`, as for TFDS translation); a document is cut to `max_len`
tokens and a summary to `summary_len` (<eos> included).
Example: {inputs, targets} = ids + <eos> zero padded to max_len / summary_len.
"""

from __future__ import annotations

import functools
import importlib
import os
import re
from typing import Any

from dl_arch.config.errors import ConfigError
from dl_arch.config.fields import Field
from dl_arch.data.tfds_source import TFDS_FIELDS
from dl_arch.data.tokenizers import EOS, SentencePieceTokenizer, pad_to, train_sentencepiece
from dl_arch.registry import register_dataset

# dataset (TFDS name without config or version) -> (document feature, summary feature)
KNOWN_KEYS = {"cnn_dailymail": ("article", "highlights"), "xsum": ("document", "summary")}

_SENTENCE_BREAK = re.compile(r"(?<=[.!?])\s+|\n+")


def _base_name(tfds_name: str) -> str:
    return tfds_name.split("/")[0].split(":")[0]


def keys_of(cfg: Any) -> tuple[str, str]:
    """(document feature, summary feature): the config's, else the dataset's known ones."""
    base = _base_name(cfg.tfds_name)
    if cfg.document_key and cfg.summary_key:
        return cfg.document_key, cfg.summary_key
    if base not in KNOWN_KEYS:
        raise ConfigError(f"config.dataset.tfds_name='{cfg.tfds_name}' has no known features; "
                          f"set config.dataset.document_key and summary_key")
    known = KNOWN_KEYS[base]
    return cfg.document_key or known[0], cfg.summary_key or known[1]


def open_split(tfds_name: str, split: str, data_dir: str, download: bool) -> Any:
    """A random-access TFDS split; the builder module is imported first, since TFDS's lazy
    import of the whole summarization package needs TensorFlow."""
    import tensorflow_datasets as tfds

    base = _base_name(tfds_name)
    if base in KNOWN_KEYS:
        importlib.import_module(f"tensorflow_datasets.summarization.{base}")
    return tfds.data_source(tfds_name, split=split, data_dir=data_dir or None, download=download)


def _text(value: Any) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


@functools.lru_cache(maxsize=4)
def _spm_for(name: str, split: str, data_dir: str, download: bool, doc_key: str, sum_key: str,
             vocab: int, cache_dir: str, max_sentences: int) -> SentencePieceTokenizer:
    source = open_split(name, split, data_dir, download)

    def texts():  # sentences, since SentencePiece skips very long lines
        for i in range(len(source)):
            ex = source[i]
            for key in (doc_key, sum_key):
                yield from _SENTENCE_BREAK.split(_text(ex[key]))

    return train_sentencepiece(texts(), vocab, cache_dir, max_sentences=max_sentences)


def tokenizer(cfg: Any) -> SentencePieceTokenizer:
    """The SentencePiece model of a `tfds_summarization` config (trained once, then cached)."""
    from dl_arch.data.pipeline import resolve_dataset

    cfg = resolve_dataset(cfg)
    cache = cfg.tokenizer_dir or os.path.join(os.path.expanduser("~"), ".cache", "dl_arch", "spm")
    doc_key, sum_key = keys_of(cfg)
    return _spm_for(cfg.tfds_name, cfg.train_split, cfg.data_dir, cfg.download, doc_key, sum_key,
                    cfg.vocab_size, cache, cfg.tokenizer_sentences)


class TfdsSummarization:
    """(document, summary) pairs of one TFDS split as SentencePiece ids + <eos>, padded/cut."""

    def __init__(self, cfg: Any, split: str):
        self.source = open_split(cfg.tfds_name, split, cfg.data_dir, cfg.download)
        self.doc_key, self.sum_key = keys_of(cfg)
        if len(self.source):
            features = sorted(self.source[0])
            for field, key in (("document_key", self.doc_key), ("summary_key", self.sum_key)):
                if key not in features:
                    raise ConfigError(f"config.dataset.{field}='{key}' is not a feature of "
                                      f"{cfg.tfds_name} ({', '.join(features)}); pick one of them")
        self.tok = tokenizer(cfg)
        self.max_len, self.summary_len = int(cfg.max_len), int(cfg.summary_len)

    def __len__(self) -> int:
        return len(self.source)

    def __getitem__(self, index: int) -> dict[str, Any]:
        ex = self.source[index]
        doc = self.tok.encode(_text(ex[self.doc_key]))[: self.max_len - 1] + [EOS]
        summary = self.tok.encode(_text(ex[self.sum_key]))[: self.summary_len - 1] + [EOS]
        return {"inputs": pad_to(doc, self.max_len), "targets": pad_to(summary, self.summary_len)}


@register_dataset("tfds_summarization", fields={
    "tfds_name": Field("cnn_dailymail", "TFDS summarization dataset: 'cnn_dailymail' or 'xsum' "
                                        "(a config or version may follow)"),
    "document_key": Field("", "feature of the document ('' = the dataset's: article, document)"),
    "summary_key": Field("", "feature of the reference summary ('' = the dataset's: "
                             "highlights, summary)"),
    **TFDS_FIELDS,
    "vocab_size": Field(16000, "SentencePiece vocabulary of documents and summaries (5 ids are "
                               "special)", low=6),
    "tokenizer_sentences": Field(400_000, "train-split sentences (documents and summaries) the "
                                          "SentencePiece model is trained on", low=1),
    "tokenizer_dir": Field("", "where trained SentencePiece models are cached "
                               "('' = ~/.cache/dl_arch/spm)"),
    "max_len": Field(512, "document tokens, <eos> included (longer documents are cut)", low=2),
    "summary_len": Field(128, "summary tokens, <eos> included (longer summaries are cut)",
                         low=2),
})
def tfds_summarization(cfg: Any, split: str, seed: int) -> TfdsSummarization:
    """CNN/DailyMail or XSum from TFDS with a locally trained SentencePiece vocabulary."""
    return TfdsSummarization(cfg, split)
