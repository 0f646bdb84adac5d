"""The tokenizer saved in a Hugging Face model folder, behind our `Tokenizer` interface.

    tok = load_tokenizer("path/to/gpt2")     # tokenizer.json (or the legacy vocab files)
    ids = tok.encode("Hello world")          # content tokens, as transformers gives them
    text = tok.decode(ids)                   # up to the first end token, specials dropped

`config.dataset.tokenizer='hf:<folder>'` selects it (`dl_arch.data.tokenizers.tokenizer_from_spec`):
the `text` source then holds windows of its tokens and the language-model tasks encode
prompts and decode samples with it. A folder holds GPT-2's byte-level BPE or BERT's
WordPiece (or any other `tokenizers` pipeline) in `tokenizer.json`; older folders with only
`vocab.txt` or `vocab.json` + `merges.txt` are converted once through `transformers`.
Special tokens (begin, end, padding, mask) come from `tokenizer_config.json` /
`special_tokens_map.json`, as `transformers` reads them.
"""

from __future__ import annotations

import functools
import json
import os
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

from dl_arch.config.errors import ConfigError
from dl_arch.data.tokenizers import Tokenizer

TOKENIZER_FILES = ("tokenizer.json", "vocab.txt", "vocab.json")  # any one makes a tokenizer
SPECIAL_FILES = ("special_tokens_map.json", "tokenizer_config.json")  # later ones win
CHUNK_CHARS = 1 << 16  # long texts are encoded in pieces of about this size, cut at newlines


def has_tokenizer(folder: str) -> bool:
    """Whether `folder` holds tokenizer files (`TOKENIZER_FILES`)."""
    return any(os.path.isfile(os.path.join(folder, f)) for f in TOKENIZER_FILES)


def _special_names(folder: str) -> dict[str, str]:
    """Role ('bos_token', 'pad_token', ...) -> token text, from the folder's json files."""
    names: dict[str, str] = {}
    for fname in SPECIAL_FILES:
        path = os.path.join(folder, fname)
        if not os.path.isfile(path):
            continue
        with open(path) as f:
            data = json.load(f)
        for key, value in data.items():
            if not key.endswith("_token"):
                continue
            if isinstance(value, dict):
                value = value.get("content")
            if isinstance(value, str):
                names[key] = value
    return names


def _backend(folder: str) -> Any:
    """The folder's `tokenizers.Tokenizer`: tokenizer.json, else converted by transformers."""
    import tokenizers

    path = os.path.join(folder, "tokenizer.json")
    if os.path.isfile(path):
        return tokenizers.Tokenizer.from_file(path)
    import transformers

    return transformers.AutoTokenizer.from_pretrained(folder, local_files_only=True).backend_tokenizer


class HFTokenizer(Tokenizer):
    """A `tokenizers.Tokenizer` with the special ids of its folder.

    `bos_id` is the begin token (GPT-2's <|endoftext|>, BERT's [CLS]), `eos_id` the end
    token (<|endoftext|>, [SEP]), `pad_id` the padding token (the end token when the
    tokenizer has none, as for GPT-2), `mask_id` BERT's [MASK] (None without one).
    """

    def __init__(self, folder: str, source: str = ""):
        source = source or folder
        if not os.path.isdir(folder):
            raise ConfigError(f"{source}: '{folder}' is not a folder; give a Hugging Face model "
                              "folder (as save_pretrained writes it)")
        if not has_tokenizer(folder):
            raise ConfigError(f"{source}: '{folder}' has no tokenizer files "
                              f"({' / '.join(TOKENIZER_FILES)}); save the tokenizer there too "
                              "(tokenizer.save_pretrained(folder))")
        self.folder = folder
        self.backend = _backend(folder)
        self.backend.no_truncation()  # what a saved tokenizer.json may have switched on
        self.backend.no_padding()
        self.vocab_size = int(self.backend.get_vocab_size(with_added_tokens=True))
        ids = {role: self.backend.token_to_id(text) for role, text in _special_names(folder).items()}
        role = lambda *roles: next((ids[r] for r in roles if ids.get(r) is not None), None)
        self.bos_id = role("bos_token", "cls_token")
        self.eos_id = role("eos_token", "sep_token")
        self.pad_id = role("pad_token", "eos_token", "sep_token")
        self.mask_id = role("mask_token")

    def encode(self, text: str) -> list[int]:
        """Content tokens of `text`, no begin/end tokens (the LM text stream, prompts)."""
        return list(self.backend.encode(text, add_special_tokens=False).ids)

    def encode_sequence(self, text: str, max_len: int) -> tuple[np.ndarray, np.ndarray]:
        """(ids, character offsets (max_len, 2)) of one model input: the tokenizer's own
        begin/end tokens added (BERT: [CLS] text [SEP]), cut to `max_len` with them kept,
        padded with `pad_id` (offsets (0, 0) on specials and padding)."""
        enc = self.backend.encode(text, add_special_tokens=False)
        enc.truncate(max(max_len - self.backend.num_special_tokens_to_add(False), 0))
        enc = self.backend.post_process(enc)
        ids = np.full(max_len, self.pad_id if self.pad_id is not None else 0, np.int32)
        offsets = np.zeros((max_len, 2), np.int32)
        ids[:len(enc.ids)] = enc.ids
        offsets[:len(enc.ids)] = np.asarray(enc.offsets, np.int32).reshape(-1, 2)
        return ids, offsets

    def encode_long(self, text: str) -> np.ndarray:
        """Content tokens of a long text (a corpus) as int32, encoded in parallel pieces of
        about `CHUNK_CHARS` characters cut after a newline (so no word is cut in two)."""
        pieces, start = [], 0
        while start < len(text):
            end = min(start + CHUNK_CHARS, len(text))
            if end < len(text):
                cut = text.rfind("\n", start, end)
                end = cut + 1 if cut >= start else end
            pieces.append(text[start:end])
            start = end
        encoded = self.backend.encode_batch(pieces, add_special_tokens=False) if pieces else []
        return np.asarray([i for e in encoded for i in e.ids], np.int32)

    def decode(self, ids: Iterable[int]) -> str:
        """Text of the tokens up to the first end token, special tokens dropped."""
        kept = []
        for i in ids:
            i = int(i)
            if i == self.eos_id:
                break
            kept.append(i)
        return self.decode_content(kept)

    def decode_content(self, ids: Sequence[int]) -> str:
        return self.backend.decode([int(i) for i in ids], skip_special_tokens=True)


@functools.lru_cache(maxsize=8)
def load_tokenizer(folder: str, source: str = "") -> HFTokenizer:
    """The tokenizer of a Hugging Face model folder (cached per process); `source` names
    the config field in error messages."""
    return HFTokenizer(os.path.expanduser(folder), source)
