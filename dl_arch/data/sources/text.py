"""Text: next-token windows over local files or TFDS text, and TFDS text classification.

`text` reads every file matched by `config.dataset.path` (a path or glob; '' = this Python
installation's standard-library `.py` files, a corpus that exists wherever the package
runs), or the `text` feature of a TFDS dataset (`tfds_name='tiny_shakespeare'`), as one
byte stream (vocabulary 256), or, with `tokenizer='hf:<folder>'`, as the stream of tokens
the tokenizer of that Hugging Face model folder makes of it (an imported GPT-2 reads its
own vocabulary; the split is made on the bytes, then each split is tokenised). Local text
is split into train and eval by whole files (`split_by=hash`) or by position (`position`:
the last `eval_fraction` of the stream is held out); the default `auto` splits one file by
position and several by file. A split too small for one window is an error when the
training split is built, before any step. Example i is the window
`stream[i*T : i*T + T + 1]` (T tokens) split into `inputs`/`targets`. With
`stream_batch_size=B` the windows are ordered for truncated BPTT: row b of consecutive
batches continues the same stretch of text, and `reset` marks the first window of each row.
"""

from __future__ import annotations

import functools
import glob
import os
import sysconfig
import zlib
from typing import Any

import numpy as np

from dl_arch.config.errors import ConfigError
from dl_arch.config.fields import Field, Fields
from dl_arch.data.tfds_source import TFDS_FIELDS
from dl_arch.data.tokenizers import TOKENIZER_FIELD_HELP, tokenizer_from_spec
from dl_arch.registry import register_dataset

SPLIT_BY = ("auto", "hash", "position")


def default_corpus_files() -> list[str]:
    """The standard library's own `.py` files (site-packages excluded), sorted."""
    root = sysconfig.get_paths()["stdlib"]
    files = glob.glob(os.path.join(root, "**", "*.py"), recursive=True)
    return sorted(f for f in files if "site-packages" not in f and "dist-packages" not in f)


def _in_eval_by_hash(path: str, eval_fraction: float) -> bool:
    return zlib.crc32(os.path.basename(path).encode() + path.encode()) % 10000 < (
        eval_fraction * 10000)


def split_files(path: str, split_by: str, eval_fraction: float
                ) -> tuple[str, list[str], list[str]]:
    """(mode, train files, eval files) of local text: `auto` becomes `position` for one file
    and `hash` for several; a hash split that leaves a split without files is an error."""
    files = default_corpus_files() if not path else sorted(glob.glob(path, recursive=True))
    files = [f for f in files if os.path.isfile(f)]
    if not files:
        raise ConfigError(f"config.dataset.path='{path}' matches no file; give a file or glob")
    if split_by not in SPLIT_BY:
        raise ConfigError(f"config.dataset.split_by='{split_by}'; use {' | '.join(SPLIT_BY)}")
    mode = split_by if split_by != "auto" else ("position" if len(files) == 1 else "hash")
    if mode == "position":
        return mode, files, files
    if len(files) == 1:
        raise ConfigError(f"config.dataset.split_by=hash keeps whole files apart, but "
                          f"config.dataset.path='{path}' matches one file, so the eval split "
                          f"would be empty; set config.dataset.split_by=position (or auto) to "
                          f"hold out the last eval_fraction of it")
    in_eval = [_in_eval_by_hash(f, eval_fraction) for f in files]
    train = [f for f, e in zip(files, in_eval, strict=True) if not e]
    held = [f for f, e in zip(files, in_eval, strict=True) if e]
    if not train or not held:
        empty = "train" if not train else "eval"
        raise ConfigError(f"config.dataset.split_by=hash puts none of the {len(files)} files of "
                          f"config.dataset.path='{path}' in the {empty} split "
                          f"(eval_fraction={eval_fraction}); set config.dataset.split_by=position "
                          f"to split the text by position, or change eval_fraction")
    return mode, train, held


@functools.lru_cache(maxsize=8)
def local_stream(path: str, split_by: str, eval_fraction: float, train: bool,
                 max_bytes: int) -> np.ndarray:
    """The byte stream of one split of local files (cached per process)."""
    split_by, train_files, eval_files = split_files(path, split_by, eval_fraction)
    files = train_files if train else eval_files
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


def open_tfds(name: str, split: str, data_dir: str, download: bool = True) -> Any:
    """`tfds.data_source` with one clear error line when the dataset is not prepared."""
    import tensorflow_datasets as tfds

    try:
        return tfds.data_source(name, split=split, data_dir=data_dir or None, download=download)
    except Exception as e:  # noqa: BLE001 - TFDS raises many types; one clear line instead
        first = (str(e).strip().splitlines() or [type(e).__name__])[0]
        raise ConfigError(f"config.dataset.tfds_name='{name}' split '{split}' could not be opened "
                         f"({type(e).__name__}: {first}); prepare it once with "
                         "pip install 'dl_arch[tfds]', or set config.dataset.data_dir") from e


@functools.lru_cache(maxsize=8)
def tfds_stream(name: str, split: str, feature: str, data_dir: str, download: bool,
                max_bytes: int) -> np.ndarray:
    """All `feature` texts of a TFDS split joined by newlines (random-access data source)."""
    source = open_tfds(name, split, data_dir, download)
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

    def __init__(self, stream: np.ndarray, seq_len: int, stream_batch_size: int = 0,
                 split: str = "text"):
        if seq_len < 1:
            raise ConfigError(f"config.dataset.seq_len={seq_len}; must be >= 1")
        self.stream, self.seq_len, self.rows = stream, seq_len, int(stream_batch_size)
        if self.rows > 0:
            self.row_len = (len(stream) - 1) // self.rows
            self.per_row = self.row_len // seq_len
            count = self.rows * self.per_row
        else:
            count = (len(stream) - 1) // seq_len
        if count < 1:
            rows = f" x config.dataset.stream_batch_size={self.rows}" if self.rows > 0 else ""
            raise ConfigError(f"config.dataset: the {split} split has {len(stream)} tokens, too few "
                              f"for one window of config.dataset.seq_len={seq_len}{rows}; use more "
                              f"text, a shorter seq_len or another eval_fraction")
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

    def get_batch(self, indices: np.ndarray) -> dict[str, np.ndarray]:
        """Windows `indices` stacked, gathered in one indexing operation."""
        indices = np.asarray(indices, np.int64)
        if len(indices) and not (0 <= indices.min() and indices.max() < self._length):
            raise IndexError(f"indices out of range [0, {self._length})")
        if self.rows > 0:
            step, row = np.divmod(indices, self.rows)
            start = row * self.row_len + step * self.seq_len
            reset = (step == 0).astype(np.int32)
        else:
            start, reset = indices * self.seq_len, np.ones(len(indices), np.int32)
        windows = self.stream[start[:, None] + np.arange(self.seq_len + 1)].astype(np.int32)
        return {"inputs": np.ascontiguousarray(windows[:, :-1]),
                "targets": np.ascontiguousarray(windows[:, 1:]), "reset": reset}


TFDS_TEXT_FIELDS: Fields = {
    "tfds_name": Field("", "TFDS text dataset to read instead of local files, e.g. "
                           "'tiny_shakespeare' ('' = the files of `path`)"),
    "tfds_feature": Field("text", "the TFDS string feature joined into one byte stream"),
    **TFDS_FIELDS,
}


def _split_stream(cfg: Any, split: str) -> np.ndarray:
    """The token stream of split `split` (local files or TFDS) of a `text` config: byte
    values, or the ids of `cfg.tokenizer`."""
    if cfg.tfds_name:
        key = ("tfds", cfg.tfds_name, split, cfg.tfds_feature, cfg.data_dir, cfg.download,
               cfg.max_bytes)
    else:
        key = ("local", cfg.path, cfg.split_by, cfg.eval_fraction, split == cfg.train_split,
               cfg.max_bytes)
    return _tokens(key, cfg.tokenizer)


@functools.lru_cache(maxsize=8)
def _tokens(key: tuple, tokenizer: str) -> np.ndarray:
    """The byte stream `key` names, tokenised by `tokenizer` (cached per process)."""
    data = tfds_stream(*key[1:]) if key[0] == "tfds" else local_stream(*key[1:])
    tok = tokenizer_from_spec(tokenizer)
    if tok is None:
        return data
    return tok.encode_long(data.tobytes().decode("utf-8", "replace"))


@register_dataset("text", fields={
    "path": Field("", "text file or glob, '**' recursive ('' = this Python's standard-library "
                      ".py files)"),
    "split_by": Field("auto", "local train/eval split: hash = whole files by a hash of their "
                              "path, position = the last eval_fraction of the text, auto = "
                              "position for one file, hash for several", choices=SPLIT_BY),
    "eval_fraction": Field(0.05, "share of the local text (files or bytes) held out for eval",
                           low=0.0, high=1.0, low_open=True, high_open=True),
    "seq_len": Field(128, "tokens (bytes with tokenizer=bytes) per window (the model reads "
                          "seq_len, predicts the next ones)", low=1),
    "tokenizer": Field("bytes", TOKENIZER_FIELD_HELP),
    "max_bytes": Field(0, "bytes kept per split (0: all the text)", low=0),
    "stream_batch_size": Field(0, "rows of stream-ordered windows for truncated BPTT (set it "
                                  "to batch_size; 0: windows in plain order)", low=0),
    **TFDS_TEXT_FIELDS})
def text(cfg: Any, split: str, seed: int) -> TextWindows:
    """Language-modelling windows (bytes or a checkpoint's tokens) over local files or a TFDS
    text dataset.

    Building the training split also checks that the eval split holds a window, so a run
    whose evaluation would fail stops before its first step.
    """
    train = split == cfg.train_split
    if train:
        TextWindows(_split_stream(cfg, cfg.eval_split), cfg.seq_len, 0, "eval")
    return TextWindows(_split_stream(cfg, split), cfg.seq_len,
                       cfg.stream_batch_size if train else 0, "train" if train else "eval")


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


@register_dataset("text_classification", fields={
    "tfds_name": Field("imdb_reviews", "TFDS dataset of (text, label) examples"),
    **TFDS_FIELDS,
    "max_len": Field(512, "bytes kept per text (longer ones are cut, shorter ones padded)",
                     low=1),
    "text_feature": Field("text", "the TFDS feature holding the text"),
    "label_feature": Field("label", "the TFDS feature holding the integer class"),
})
def text_classification(cfg: Any, split: str, seed: int) -> TextClassification:
    """Byte-level sentiment/topic classification over a TFDS dataset (e.g. imdb_reviews)."""
    if not cfg.tfds_name:
        raise ConfigError("config.dataset.tfds_name is empty; set it, e.g. 'imdb_reviews'")
    source = open_tfds(cfg.tfds_name, split, cfg.data_dir, cfg.download)
    return TextClassification(source, cfg.max_len, cfg.text_feature, cfg.label_feature)
