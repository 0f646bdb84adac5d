"""Translation from your own parallel text: a TSV file of (source, target) sentence pairs.

    Go.<TAB>Va !
    Thank you.<TAB>Merci.

One pair a line, the source sentence, a tab, the target sentence (columns after a second
tab are ignored, such as the attribution column of Tatoeba's files; blank lines hold no pair
and are passed over). Both sides are tokenised by ONE SentencePiece model (a vocabulary
shared by the two languages, as in the original Transformer) trained by
`dl_arch.data.tokenizers.train_sentencepiece`, the trainer of TFDS translation, on the
sentences of the train split only. The model is cached in `tokenizer_dir` (default
`~/.cache/dl_arch/spm`) under a hash of its training text and settings, so a changed file
or split trains a new one and an unchanged one is reused.

Example: {inputs, targets} = ids + <eos> padded with <pad> to `max_len` (longer sentences are
cut; how many is logged), and `input_lengths`, the real source tokens (the RNN
encoder-decoder reads it; the Transformer masks <pad>). The batches of `synthetic_translation`,
`tfds_translation` and `dates_to_iso` have these keys. `tokenizer(cfg)` gives the model to
turn ids back into text (BLEU, `launch.py --sample`).

A line without a tab and an empty side are one-line errors naming the line.
"""

from __future__ import annotations

import functools
import logging
import os
from typing import Any

import numpy as np

from dl_arch.config.errors import ConfigError
from dl_arch.config.fields import Field
from dl_arch.data.table_rows import require_rows, text_lines, where
from dl_arch.data.tokenizers import EOS, SentencePieceTokenizer, train_sentencepiece
from dl_arch.data.user_files import USER_FILE_FIELDS, held_out, path_of
from dl_arch.registry import register_dataset

log = logging.getLogger(__name__)


@functools.lru_cache(maxsize=8)
def read_pairs(path: str, field: str, mtime: float) -> tuple[tuple[str, str], ...]:
    """Every (source, target) pair of a TSV file, checked (cached per file version)."""
    pairs = []
    for line, text in text_lines(path, field):
        parts = text.split("\t")
        if len(parts) < 2:
            raise ConfigError(f"{where(path, field, line)} has no tab; each line is a source "
                              f"sentence, a tab, then its translation")
        source, target = parts[0].strip(), parts[1].strip()
        if not source or not target:
            side = "source (before the tab)" if not source else "target (after the tab)"
            raise ConfigError(f"{where(path, field, line)}: the {side} is empty; give both "
                              f"sentences or delete the line")
        pairs.append((source, target))
    require_rows(pairs, path, field, "sentence pairs")
    return tuple(pairs)


def split_pairs(cfg: Any, split: str) -> list[tuple[str, str]]:
    """The pairs of `split`: the eval_path file, or a seeded eval_fraction of path."""
    field = "eval_path" if cfg.eval_path and split != cfg.train_split else "path"
    path = path_of(cfg, split)
    pairs = read_pairs(path, field, os.path.getmtime(path))
    if cfg.eval_path:
        return list(pairs)
    return [pairs[i] for i in held_out(len(pairs), cfg, split)]


_TOKENIZERS: dict[tuple, SentencePieceTokenizer] = {}  # per process, by what trained them


def tokenizer(cfg: Any) -> SentencePieceTokenizer:
    """The SentencePiece model of a `parallel_text` config: trained once on its train split's
    sentences, then loaded from `tokenizer_dir`."""
    from dl_arch.data.pipeline import resolve_dataset

    cfg = resolve_dataset(cfg)
    path = path_of(cfg, cfg.train_split)
    cache = cfg.tokenizer_dir or os.path.join(os.path.expanduser("~"), ".cache", "dl_arch", "spm")
    key = (path, os.path.getmtime(path), cfg.eval_path, cfg.eval_fraction, cfg.split_seed,
           cfg.train_split, cfg.vocab_size, cfg.tokenizer_sentences, cache)
    if key not in _TOKENIZERS:
        pairs = split_pairs(cfg, cfg.train_split)[:max(1, cfg.tokenizer_sentences // 2)]
        try:
            _TOKENIZERS[key] = train_sentencepiece([s for pair in pairs for s in pair],
                                                   cfg.vocab_size, cache,
                                                   max_sentences=cfg.tokenizer_sentences)
        except ImportError as e:
            raise ConfigError(f"config.dataset.name='parallel_text' needs the sentencepiece "
                              f"package ({e}); pip install sentencepiece") from None
    return _TOKENIZERS[key]


def encode(tok: SentencePieceTokenizer, texts: list[str], max_len: int
           ) -> tuple[np.ndarray, np.ndarray, int]:
    """(ids + <eos> zero padded to max_len (N, max_len), real lengths (N,), texts cut)."""
    ids = np.zeros((len(texts), max_len), np.int32)
    lengths = np.zeros(len(texts), np.int32)
    cut = 0
    for row, pieces in enumerate(tok.sp.encode(texts)):
        cut += len(pieces) > max_len - 1
        seq = list(pieces[:max_len - 1]) + [EOS]
        ids[row, :len(seq)] = seq
        lengths[row] = len(seq)
    return ids, lengths, cut


class ParallelText:
    """Sentence pairs of one split as padded SentencePiece ids (encoded once, when built)."""

    def __init__(self, pairs: list[tuple[str, str]], tok: SentencePieceTokenizer, max_len: int,
                 split: str):
        self.inputs, self.input_lengths, cut_src = encode(tok, [p[0] for p in pairs], max_len)
        self.targets, _, cut_tgt = encode(tok, [p[1] for p in pairs], max_len)
        if cut_src or cut_tgt:
            log.info("parallel_text %s: %d source and %d target sentences of %d are longer than "
                     "max_len=%d tokens and were cut", split, cut_src, cut_tgt, len(pairs),
                     max_len)

    def __len__(self) -> int:
        return len(self.inputs)

    def __getitem__(self, index: int) -> dict[str, Any]:
        return {k: v[0] for k, v in self.get_batch(np.array([index])).items()}

    def get_batch(self, indices: np.ndarray) -> dict[str, np.ndarray]:
        """The pairs `indices` stacked."""
        indices = np.asarray(indices, np.int64)
        return {"inputs": self.inputs[indices], "targets": self.targets[indices],
                "input_lengths": self.input_lengths[indices]}


@register_dataset("parallel_text", fields={
    **USER_FILE_FIELDS,
    "vocab_size": Field(8000, "SentencePiece vocabulary shared by both languages, the model's "
                              "vocab_size (5 ids are special; a small file may get fewer)",
                        low=6),
    "tokenizer_sentences": Field(200_000, "train-split sentences (both sides) the SentencePiece "
                                          "model is trained on", low=2),
    "tokenizer_dir": Field("", "where the trained SentencePiece model is cached "
                               "('' = ~/.cache/dl_arch/spm)"),
    "max_len": Field(64, "subword tokens per sentence, <eos> included (longer ones are cut)",
                     low=2),
})
def parallel_text(cfg: Any, split: str, seed: int) -> ParallelText:
    """(source, target) sentence pairs of your TSV file, SentencePiece-tokenised."""
    if split == cfg.train_split and cfg.eval_path:  # check the eval file before any step
        split_pairs(cfg, cfg.eval_split)
    return ParallelText(split_pairs(cfg, split), tokenizer(cfg), cfg.max_len, split)
