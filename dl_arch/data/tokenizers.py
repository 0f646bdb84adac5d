"""Tokenizers with one interface: bytes, a closed word list, SentencePiece trained locally,
and the tokenizer saved with a Hugging Face checkpoint.

Our own tokenizers reserve the same special ids, so models and tasks need no per-tokenizer
code: 0 = <pad>, 1 = <bos> (BERT's [CLS]), 2 = <eos> (BERT's [SEP]), 3 = <mask>. A Hugging
Face tokenizer (`dl_arch.interop.hf_tokenizer`) keeps its checkpoint's ids and says which
they are (`bos_id`, `eos_id`, `pad_id`, `mask_id`).

A dataset's `tokenizer` field names the tokenizer of a whole run (`tokenizer_from_spec`):
the source tokenises with it and the task encodes prompts and decodes samples with it;
`run_tokenizer` also checks it against `config.model.vocab_size` and `config.init_from`.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

from dl_arch.config.errors import ConfigError

PAD, BOS, EOS, MASK = 0, 1, 2, 3
SPECIALS = ("<pad>", "<bos>", "<eos>", "<mask>")


class Tokenizer:
    """Text <-> int ids; `decode` stops at <eos> and drops the other special tokens."""

    pad_id, bos_id, eos_id, mask_id = PAD, BOS, EOS, MASK
    vocab_size: int
    num_special = len(SPECIALS)  # ids below this are never content tokens

    def encode(self, text: str) -> list[int]:
        raise NotImplementedError

    def decode_content(self, ids: Sequence[int]) -> str:
        raise NotImplementedError

    def decode(self, ids: Iterable[int]) -> str:
        """Content tokens up to the first <eos>, as text."""
        out = []
        for i in ids:
            i = int(i)
            if i == self.eos_id:
                break
            if i >= self.num_special:
                out.append(i)
        return self.decode_content(out)


class ByteTokenizer(Tokenizer):
    """UTF-8 bytes shifted past the special ids: vocabulary 256 + 4."""

    vocab_size = 256 + len(SPECIALS)

    def encode(self, text: str) -> list[int]:
        return [b + self.num_special for b in text.encode("utf-8")]

    def decode_content(self, ids: Sequence[int]) -> str:
        return bytes(i - self.num_special for i in ids).decode("utf-8", "replace")


class WordTokenizer(Tokenizer):
    """A closed vocabulary of whitespace-separated words (procedural languages)."""

    def __init__(self, words: Sequence[str]):
        self.words = list(SPECIALS) + list(words)
        self.index = {w: i for i, w in enumerate(self.words)}
        if len(self.index) != len(self.words):
            raise ValueError("WordTokenizer: the word list has duplicates")
        self.vocab_size = len(self.words)

    def encode(self, text: str) -> list[int]:
        try:
            return [self.index[w] for w in text.split()]
        except KeyError as e:
            raise ValueError(f"word {e} is not in the vocabulary of this procedural language"
                             ) from e

    def decode_content(self, ids: Sequence[int]) -> str:
        return " ".join(self.words[i] for i in ids)


class SentencePieceTokenizer(Tokenizer):
    """A SentencePiece model whose ids 0-3 are <pad>, <bos>, <eos>, <mask> (unk is 4)."""

    num_special = len(SPECIALS) + 1  # + <unk>

    def __init__(self, model_file: str):
        import sentencepiece as spm

        self.sp = spm.SentencePieceProcessor(model_file=model_file)
        self.vocab_size = int(self.sp.get_piece_size())
        if self.sp.id_to_piece(MASK) != "<mask>":
            raise ConfigError(f"{model_file} was not trained by train_sentencepiece(); delete it "
                              "(or change config.dataset.tokenizer_dir) to retrain it")

    def encode(self, text: str) -> list[int]:
        return list(self.sp.encode(text))

    def decode_content(self, ids: Sequence[int]) -> str:
        """Text of `ids`; ids past the trained pieces (a small corpus gets fewer than the
        model's vocab_size, which an untrained model can still emit) read as <unk>."""
        unk = len(SPECIALS)
        return self.sp.decode([int(i) if int(i) < self.vocab_size else unk for i in ids])


def train_sentencepiece(texts: Iterable[str], vocab_size: int, cache_dir: str,
                        model_type: str = "unigram", max_sentences: int = 200_000
                        ) -> SentencePieceTokenizer:
    """Trains (or reuses from `cache_dir`) a SentencePiece model on `texts`.

    The file name hashes the training text and settings, so a changed corpus retrains.
    """
    import sentencepiece as spm

    sentences = []
    digest = hashlib.sha256(f"{vocab_size}-{model_type}".encode())
    for i, t in enumerate(texts):
        if i >= max_sentences:
            break
        t = t.replace("\n", " ").strip()
        if t:
            sentences.append(t)
            digest.update(t.encode("utf-8", "replace"))
    if not sentences:
        raise ConfigError("train_sentencepiece: no training text; check config.dataset.train_split "
                          "and config.dataset.source_key/target_key")
    os.makedirs(cache_dir, exist_ok=True)
    prefix = os.path.join(cache_dir, f"spm_{digest.hexdigest()[:16]}")
    if not os.path.exists(prefix + ".model"):
        spm.SentencePieceTrainer.train(
            sentence_iterator=iter(sentences), model_prefix=prefix, vocab_size=vocab_size,
            model_type=model_type, pad_id=PAD, bos_id=BOS, eos_id=EOS, unk_id=len(SPECIALS),
            user_defined_symbols=["<mask>"], character_coverage=1.0,
            hard_vocab_limit=False, minloglevel=2)
    return SentencePieceTokenizer(prefix + ".model")


def pad_to(ids: Sequence[int], length: int) -> np.ndarray:
    """int32 array of `length`, zero (<pad>) padded; longer inputs are truncated."""
    out = np.zeros(length, np.int32)
    ids = list(ids)[:length]
    out[:len(ids)] = ids
    return out


TOKENIZER_FIELD_HELP = ("bytes: UTF-8 byte values (vocabulary 256); hf:<folder>: the tokenizer "
                        "saved in a Hugging Face model folder (tokenizer.json), e.g. the folder "
                        "of config.init_from")


def tokenizer_from_spec(spec: str, field: str = "config.dataset.tokenizer") -> Tokenizer | None:
    """The tokenizer a `tokenizer` field names: None for 'bytes' (raw byte values), the
    folder's own for 'hf:<folder>'."""
    if spec == "bytes":
        return None
    if not spec.startswith("hf:") or not spec[3:]:
        raise ConfigError(f"{field}='{spec}'; use bytes or hf:<Hugging Face model folder>")
    from dl_arch.interop.hf_tokenizer import load_tokenizer

    return load_tokenizer(spec[3:], f"{field}='{spec}'")


def _same_folder(a: str, b: str) -> bool:
    return os.path.realpath(os.path.expanduser(a)) == os.path.realpath(os.path.expanduser(b))


def run_tokenizer(config: Any) -> Tokenizer | None:
    """The tokenizer of a run (`config.dataset.tokenizer`; None: bytes), checked: its size
    must equal `config.model.vocab_size`, and a Hugging Face folder in `config.init_from`
    that holds a tokenizer must be the one the data is tokenised with."""
    spec = config.dataset.tokenizer if "tokenizer" in config.dataset else "bytes"
    init = config.init_from
    if init.startswith("hf:") and os.path.isdir(os.path.expanduser(init[3:])):
        from dl_arch.interop.hf_tokenizer import has_tokenizer

        folder = os.path.expanduser(init[3:])
        same = spec.startswith("hf:") and _same_folder(spec[3:], folder)
        if has_tokenizer(folder) and not same:
            if "tokenizer" not in config.dataset:
                raise ConfigError(f"config.init_from='{init}' comes with its own tokenizer, but "
                                  f"config.dataset.name='{config.dataset.name}' has no tokenizer "
                                  "field; use a source that has one (e.g. 'text')")
            raise ConfigError(f"config.init_from='{init}' comes with its own tokenizer, but "
                              f"config.dataset.tokenizer='{spec}'; set "
                              f"--config.dataset.tokenizer={init}")
    tok = tokenizer_from_spec(spec)
    if tok is not None and "vocab_size" in config.model and \
            config.model.vocab_size != tok.vocab_size:
        raise ConfigError(f"config.model.vocab_size={config.model.vocab_size} but the tokenizer "
                          f"of config.dataset.tokenizer='{spec}' has {tok.vocab_size} tokens; "
                          f"set --config.model.vocab_size={tok.vocab_size} (or use the tokenizer "
                          "saved with the checkpoint)")
    return tok
