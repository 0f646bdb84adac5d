"""The character vocabulary of transcription (CTC) tasks: blank, space, a-z, apostrophe.

Id 0 is the CTC blank and also pads `labels`; 1 is the space, 2..27 the letters 'a'..'z',
28 the apostrophe (LibriSpeech's transcripts use no other character).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np

from dl_arch.config.errors import ConfigError

BLANK = 0  # CTC blank, and the padding of `labels`
CHARS = " abcdefghijklmnopqrstuvwxyz'"  # ids 1..28 in order
CHAR_VOCAB_SIZE = len(CHARS) + 1  # 29: the blank plus the characters
_ID_OF = {c: i + 1 for i, c in enumerate(CHARS)}


def encode_transcript(text: str) -> np.ndarray:
    """`text` (lower-cased) -> int32 character ids; a character outside the vocabulary is a
    ValueError naming it (callers turn it into a ConfigError naming their field)."""
    ids = []
    for ch in text.lower():
        if ch not in _ID_OF:
            raise ValueError(f"character {ch!r} (U+{ord(ch):04X}) is outside the vocabulary "
                             f"(space, a-z, apostrophe)")
        ids.append(_ID_OF[ch])
    return np.asarray(ids, np.int32)


def decode_ids(ids: Iterable[int]) -> str:
    """Character ids -> text; blanks (0) are dropped, so padded `labels` decode as well."""
    return "".join(CHARS[i - 1] for i in (int(x) for x in ids) if i != BLANK)


def keep_known(text: str) -> str:
    """`text` lower-cased without the characters outside the vocabulary (runs of spaces
    left behind collapse to one)."""
    kept = "".join(ch for ch in text.lower() if ch in _ID_OF)
    return " ".join(kept.split())


def label_example(text: str, max_label_len: int, where: str,
                  field: str = "max_label_len") -> dict[str, Any]:
    """`labels` int32 [max_label_len] (0-padded) and `label_len` for `text`; an empty
    transcript, a character outside the vocabulary or one longer than `max_label_len` is
    a one-line ConfigError starting with `where`."""
    if not text.strip():
        raise ConfigError(f"{where}: the transcript is empty; give every file its text (or "
                          f"remove the file)")
    try:
        ids = encode_transcript(text)
    except ValueError as e:
        raise ConfigError(f"{where}: {e}; write it out in letters or remove it") from None
    if len(ids) > max_label_len:
        raise ConfigError(f"{where}: the transcript has {len(ids)} characters, more than "
                          f"config.dataset.{field}={max_label_len}; raise {field} to at least "
                          f"{len(ids)}")
    labels = np.zeros(max_label_len, np.int32)
    labels[:len(ids)] = ids
    return {"labels": labels, "label_len": np.int32(len(ids))}
