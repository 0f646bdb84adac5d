"""Byte-level text: next-token windows over local files or TFDS text, and TFDS text classification.

`text` reads every file matched by `config.dataset.path` (a path or glob; '' = this Python
installation's standard-library `.py` files, a corpus that exists wherever the package
runs), or the `text` feature of a TFDS dataset (`tfds_name='tiny_shakespeare'`), as one
byte stream (vocabulary 256). Example i is the window `stream[i*T : i*T + T + 1]` split into
`inputs`/`targets`. With `stream_batch_size=B` the windows are ordered for truncated BPTT:
row b of consecutive batches continues the same stretch of text, and `reset` marks the
first window of each row.
"""

from __future__ import annotations

import functools
import glob
import os
import sysconfig
import zlib
from typing import Any

import numpy as np

from dl_arch.registry import register_dataset


def default_corpus_files() -> list[str]:
    """The standard library's own `.py` files (site-packages excluded), sorted."""
    root = sysconfig.get_paths()["stdlib"]
    files = glob.glob(os.path.join(root, "**", "*.py"), recursive=True)
    return sorted(f for f in files if "site-packages" not in f and "dist-packages" not in f)


def _in_eval_by_hash(path: str, eval_fraction: float) -> bool:
    return zlib.crc32(os.path.basename(path).encode() + path.encode()) % 10000 < (
        eval_fraction * 10000)


@functools.lru_cache(maxsize=8)
def local_stream(path: str, split_by: str, eval_fraction: float, train: bool,
                 max_bytes: int) -> np.ndarray:
    """The byte stream of one split of local files (cached per process)."""
    files = default_corpus_files() if not path else sorted(glob.glob(path, recursive=True))
    files = [f for f in files if os.path.isfile(f)]
    if not files:
        raise ValueError(f"config.dataset.path='{path}' matches no file; give a file or glob")
    if split_by == "hash":
        files = [f for f in files if _in_eval_by_hash(f, eval_fraction) != train]
    elif split_by != "position":
        raise ValueError(f"config.dataset.split_by='{split_by}'; use hash | position")
    chunks, total = [], 0
    limit = max_bytes if max_bytes > 0 and split_by == "hash" else 0
    for f in files:
        with open(f, "rb") as fh:
            data = fh.read()
        chunks.append(data)
        total += len(data)
        if limit and total >= limit:
            break
    stream = np.frombuffer(b"\n".join(chunks), np.uint8)
    if split_by == "position":
        cut = int(len(stream) * (1.0 - eval_fraction))
        stream = stream[:cut] if train else stream[cut:]
    if max_bytes > 0:
        stream = stream[:max_bytes]
    return stream


def open_tfds(name: str, split: str, data_dir: str) -> Any:
    """`tfds.data_source` with one clear error line when the dataset is not prepared."""
    import tensorflow_datasets as tfds

    try:
        return tfds.data_source(name, split=split, data_dir=data_dir or None)
    except Exception as e:  # noqa: BLE001 - TFDS raises many types; one clear line instead
        first = (str(e).strip().splitlines() or [type(e).__name__])[0]
        raise ValueError(f"config.dataset.tfds_name='{name}' split '{split}' could not be opened "
                         f"({type(e).__name__}: {first}); prepare it once with "
                         "pip install 'dl_arch[tfds]', or set config.dataset.data_dir") from e


@functools.lru_cache(maxsize=8)
def tfds_stream(name: str, split: str, feature: str, data_dir: str, max_bytes: int
                ) -> np.ndarray:
    """All `feature` texts of a TFDS split joined by newlines (random-access data source)."""
    source = open_tfds(name, split, data_dir)
    chunks, total = [], 0
    for i in range(len(source)):
        text = source[i][feature]
        data = text if isinstance(text, bytes) else str(text).encode()
        chunks.append(data)
        total += len(data) + 1
        if max_bytes > 0 and total >= max_bytes:
            break
    stream = np.frombuffer(b"\n".join(chunks), np.uint8)
    return stream[:max_bytes] if max_bytes > 0 else stream


class TextWindows:
    """Random-access next-byte windows over one byte stream."""

    def __init__(self, stream: np.ndarray, seq_len: int, stream_batch_size: int = 0):
        if seq_len < 1:
            raise ValueError(f"config.dataset.seq_len={seq_len}; must be >= 1")
        self.stream, self.seq_len, self.rows = stream, seq_len, int(stream_batch_size)
        if self.rows > 0:
            self.row_len = (len(stream) - 1) // self.rows
            self.per_row = self.row_len // seq_len
            count = self.rows * self.per_row
        else:
            count = (len(stream) - 1) // seq_len
        if count < 1:
            raise ValueError(f"the text split has {len(stream)} bytes, too few for "
                             f"config.dataset.seq_len={seq_len} (x stream_batch_size); use "
                             "more text or a shorter seq_len")
        self._length = count

    def __len__(self) -> int:
        return self._length

    def __getitem__(self, index: int) -> dict[str, Any]:
        if not 0 <= index < self._length:
            raise IndexError(index)
        reset = 1
        if self.rows > 0:
            step, row = divmod(int(index), self.rows)
            start = row * self.row_len + step * self.seq_len
            reset = int(step == 0)
        else:
            start = int(index) * self.seq_len
        window = self.stream[start:start + self.seq_len + 1].astype(np.int32)
        return {"inputs": window[:-1], "targets": window[1:], "reset": np.int32(reset)}


@register_dataset("text")
def text(cfg: Any, split: str, seed: int) -> TextWindows:
    """Byte-level language-modelling windows over local files or a TFDS text dataset."""
    seq_len = int(cfg.get("seq_len", 128))
    max_bytes = int(cfg.get("max_bytes", 0))
    rows = int(cfg.get("stream_batch_size", 0))
    if cfg.get("tfds_name", ""):
        stream = tfds_stream(cfg.tfds_name, split, cfg.get("tfds_feature", "text"),
                             cfg.get("data_dir", ""), max_bytes)
    else:
        fraction = float(cfg.get("eval_fraction", 0.05))
        if not 0.0 < fraction < 1.0:
            raise ValueError(f"config.dataset.eval_fraction={fraction}; use a value in (0, 1)")
        train = split == cfg.get("train_split", "train")
        stream = local_stream(cfg.get("path", ""), cfg.get("split_by", "hash"), fraction, train,
                              max_bytes)
    return TextWindows(stream, seq_len, rows if split == cfg.get("train_split", "train") else 0)


class TextClassification:
    """TFDS (text, label) examples as byte tokens padded to `max_len`, with `lengths`."""

    def __init__(self, source: Any, max_len: int, text_feature: str, label_feature: str):
        self.source, self.max_len = source, max_len
        self.text_feature, self.label_feature = text_feature, label_feature

    def __len__(self) -> int:
        return len(self.source)

    def __getitem__(self, index: int) -> dict[str, Any]:
        ex = self.source[index]
        raw = ex[self.text_feature]
        data = raw if isinstance(raw, bytes) else str(raw).encode()
        tokens = np.frombuffer(data[:self.max_len], np.uint8).astype(np.int32)
        inputs = np.zeros(self.max_len, np.int32)
        inputs[:len(tokens)] = tokens
        return {"inputs": inputs, "lengths": np.int32(max(len(tokens), 1)),
                "label": np.int32(ex[self.label_feature])}


@register_dataset("text_classification")
def text_classification(cfg: Any, split: str, seed: int) -> TextClassification:
    """Byte-level sentiment/topic classification over a TFDS dataset (e.g. imdb_reviews)."""
    name = cfg.get("tfds_name", "")
    if not name:
        raise ValueError("config.dataset.tfds_name is empty; set it, e.g. 'imdb_reviews'")
    source = open_tfds(name, split, cfg.get("data_dir", ""))
    return TextClassification(source, int(cfg.get("max_len", 512)),
                              cfg.get("text_feature", "text"), cfg.get("label_feature", "label"))
