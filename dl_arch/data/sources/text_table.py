"""Sequence classification from your own table: CSV, TSV or JSON lines of (text, label).

    text,label                      {"text": "a fine film", "label": "pos"}
    "a fine film, really",1         {"text": "dull", "label": "neg"}

CSV and TSV files start with a header row naming the columns; JSON lines hold one object
per line. `text_column` and `label_column` name the two used (other columns are ignored).
Labels are integers 0..classes-1, or names mapped to class ids in sorted order (the names
of `path` and `eval_path` together, so both splits agree; the mapping is logged).

Texts become the tokens of the byte-level text configs: `tokenizer=bytes` gives UTF-8 byte
values with 0 as padding (vocabulary 256, as `text_classification` from TFDS: gru_imdb,
bert_imdb); `special_bytes` gives <bos> bytes <eos> with the special ids of
`dl_arch.data.tokenizers` (vocabulary 260, BERT's [CLS] ... [SEP]). A text is cut to
`max_len` tokens and zero padded; `lengths` counts its real tokens, so padding never counts.
`tokenizer=hf:<folder>` gives the ids of the tokenizer saved in a Hugging Face model folder,
as `transformers` makes them (BERT: [CLS] wordpieces [SEP], cut to `max_len` with both kept,
padded with [PAD]): the input an imported checkpoint (`init_from=hf:<folder>`) was trained on.
Example: {inputs (max_len,) int32, lengths () int32, label () int32}.

The file is checked when the source is built: a missing column (the line lists those that
exist), an empty file, a row without a label or with a label that is not an integer, a
label outside `num_classes`: each is one line naming the file and the line.
"""

from __future__ import annotations

import functools
import logging
import os
import re
from typing import Any

import numpy as np

from dl_arch.config.errors import ConfigError
from dl_arch.config.fields import Field
from dl_arch.data.table_rows import csv_rows, jsonl_rows, require_rows, table_format, where
from dl_arch.data.tokenizers import BOS, EOS, SPECIALS, Tokenizer, tokenizer_from_spec
from dl_arch.data.user_files import USER_FILE_FIELDS, path_of, user_split
from dl_arch.registry import register_dataset

log = logging.getLogger(__name__)

TOKENIZERS = ("bytes", "special_bytes")
LABEL_TYPES = ("auto", "int", "name")
FORMATS = ("auto", "csv", "tsv", "jsonl")
_INT = re.compile(r"[+-]?\d+")


def _cell(value: Any) -> str | None:
    """A table cell as stripped text; None when it is missing or blank."""
    if value is None:
        return None
    text = value.strip() if isinstance(value, str) else str(value)
    return text or None


def _as_int(value: Any) -> int | None:
    """The integer a label cell holds (JSON numbers and digit strings), else None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str) and _INT.fullmatch(value.strip()):
        return int(value)
    return None


def _rows(path: str, fmt: str, field: str, columns: tuple[str, str]
          ) -> list[tuple[int, Any, Any]]:
    """(line, text cell, label cell) of every row; a missing column is an error."""
    if fmt == "jsonl":
        out = []
        for line, row in jsonl_rows(path, field):
            if not out:
                _check_columns(path, field, columns, sorted(row))
            out.append((line, row.get(columns[0]), row.get(columns[1])))
        require_rows(out, path, field, "rows")
        return out
    rows = list(csv_rows(path, fmt, field))
    require_rows(rows, path, field, "header row")
    header = [name.strip() for name in rows[0][1]]
    _check_columns(path, field, columns, header)
    text_at, label_at = header.index(columns[0]), header.index(columns[1])
    out = []
    for line, cells in rows[1:]:
        if len(cells) > len(header):
            raise ConfigError(f"{where(path, field, line)}: {len(cells)} cells but the header has "
                              f"{len(header)}; quote texts that contain the delimiter "
                              f"({'a tab' if fmt == 'tsv' else 'a comma'})")
        text = cells[text_at] if text_at < len(cells) else None
        out.append((line, text, cells[label_at] if label_at < len(cells) else None))
    require_rows(out, path, field, "rows below its header")
    return out


def _check_columns(path: str, field: str, wanted: tuple[str, str], present: list[str]) -> None:
    for key, name in zip(("text_column", "label_column"), wanted, strict=True):
        if name not in present:
            raise ConfigError(f"config.dataset.{key}={name!r} is not a column of "
                              f"{where(path, field)}; its columns: {', '.join(present)}")


@functools.lru_cache(maxsize=8)
def read_table(path: str, fmt: str, field: str, text_column: str, label_column: str,
               mtime: float) -> tuple[list[bytes], list[Any], list[int]]:
    """(UTF-8 texts, label cells, line numbers) of a table (cached per file version)."""
    texts, labels, lines = [], [], []
    for line, text, label in _rows(path, table_format(path, fmt, field), field,
                                   (text_column, label_column)):
        if text is None:
            raise ConfigError(f"{where(path, field, line)}: the text (column {text_column!r}) is "
                              f"missing; every row needs a text and a label")
        if _cell(label) is None:
            raise ConfigError(f"{where(path, field, line)}: the label (column {label_column!r}) "
                              f"is missing; every row needs a text and a label")
        texts.append((text if isinstance(text, str) else str(text)).encode("utf-8"))
        labels.append(label)
        lines.append(line)
    return texts, labels, lines


def _table(cfg: Any, path: str, field: str) -> tuple[list[bytes], list[Any], list[int]]:
    return read_table(path, cfg.format, field, cfg.text_column, cfg.label_column,
                      os.path.getmtime(path))


def _files(cfg: Any) -> list[tuple[str, str]]:
    """(path, field) of every file of the data set: the class names are drawn from all."""
    files = [(path_of(cfg, cfg.train_split), "path")]
    if cfg.eval_path:
        files.append((path_of(cfg, cfg.eval_split), "eval_path"))
    return files


def label_names(cfg: Any) -> tuple[str, ...] | None:
    """The sorted class names when the labels are names (ids are their positions), else None
    (integer labels). `label_type=auto` decides by the first row of `path`."""
    files = [(p, f, _table(cfg, p, f)[1]) for p, f in _files(cfg)]
    kind = cfg.label_type
    if kind == "auto":
        kind = "int" if _as_int(files[0][2][0]) is not None else "name"
    if kind == "int":
        return None
    names = tuple(sorted({_cell(v) for _, _, labels in files for v in labels}))
    if cfg.num_classes and len(names) > cfg.num_classes:
        raise ConfigError(f"{where(files[0][0], files[0][1])} holds {len(names)} label names "
                          f"({', '.join(names[:10])}{', ...' if len(names) > 10 else ''}) but the "
                          f"model has config.dataset.num_classes={cfg.num_classes} classes; raise "
                          f"the model's classes (e.g. the config's classes= option)")
    log.info("text_table: label names -> class ids %s", dict(zip(names, range(len(names)),
                                                                strict=True)))
    return names


def class_ids(cfg: Any, path: str, field: str, labels: list[Any], lines: list[int],
              names: tuple[str, ...] | None) -> np.ndarray:
    """int32 class ids of the label cells, checked against `num_classes`."""
    if names is not None:
        index = {n: i for i, n in enumerate(names)}
        return np.array([index[_cell(v)] for v in labels], np.int32)
    ids = []
    for value, line in zip(labels, lines, strict=True):
        label = _as_int(value)
        if label is None:
            raise ConfigError(f"{where(path, field, line)}: label {value!r} is not an integer; "
                              f"fix it, or set config.dataset.label_type=name to map label "
                              f"names to class ids")
        top = cfg.num_classes - 1 if cfg.num_classes else None
        if label < 0 or (top is not None and label > top):
            bounds = f"0..{top}" if top is not None else ">= 0"
            raise ConfigError(f"{where(path, field, line)}: label {label} is outside the classes "
                              f"{bounds} (config.dataset.num_classes={cfg.num_classes}); fix the "
                              f"label or raise the model's classes (the config's classes= option)")
        ids.append(label)
    return np.array(ids, np.int32)


def table_tokenizer(spec: str) -> Tokenizer | None:
    """The Hugging Face tokenizer `hf:<folder>` names (checked), None for the byte ones."""
    if spec in TOKENIZERS:
        return None
    if not spec.startswith("hf:"):
        raise ConfigError(f"config.dataset.tokenizer='{spec}'; use {', '.join(TOKENIZERS)} or "
                          "hf:<Hugging Face model folder>")
    return tokenizer_from_spec(spec)


class TextTable:
    """Every row of one table file as tokens (bytes or a Hugging Face tokenizer's ids), its
    length and its class id."""

    def __init__(self, texts: list[bytes], labels: np.ndarray, max_len: int, tokenizer: str):
        self.texts, self.labels = texts, labels
        self.max_len, self.tokenizer = int(max_len), tokenizer
        self.hf = table_tokenizer(tokenizer)
        if tokenizer == "special_bytes" and self.max_len < 3:
            raise ConfigError(f"config.dataset.max_len={max_len}; tokenizer=special_bytes needs "
                              f">= 3 (<bos>, a byte, <eos>)")
        if self.hf is not None:
            self.specials = int(self.hf.backend.num_special_tokens_to_add(False))
            if self.max_len <= self.specials:
                raise ConfigError(f"config.dataset.max_len={max_len}; tokenizer={tokenizer} adds "
                                  f"{self.specials} special tokens, so it needs >= "
                                  f"{self.specials + 1}")

    def __len__(self) -> int:
        return len(self.texts)

    def tokens(self, index: int) -> np.ndarray:
        """The int32 token ids of text `index`, cut to max_len (unpadded)."""
        data = self.texts[index]
        if self.hf is not None:
            ids, length = self.hf_tokens(index)
            return ids[:length]
        if self.tokenizer == "bytes":
            return np.frombuffer(data[:self.max_len], np.uint8).astype(np.int32)
        body = np.frombuffer(data[:self.max_len - 2], np.uint8).astype(np.int32) + len(SPECIALS)
        return np.concatenate([[BOS], body, [EOS]]).astype(np.int32)

    def hf_tokens(self, index: int) -> tuple[np.ndarray, int]:
        """(ids (max_len,) padded with the tokenizer's pad id, real tokens) of text `index`
        under the Hugging Face tokenizer: specials added, cut to max_len with them kept."""
        text = self.texts[index].decode("utf-8")
        ids, _ = self.hf.encode_sequence(text, self.max_len)
        return ids, min(len(self.hf.encode(text)) + self.specials, self.max_len)

    def __getitem__(self, index: int) -> dict[str, Any]:
        return {k: v[0] for k, v in self.get_batch(np.array([index])).items()}

    def get_batch(self, indices: np.ndarray) -> dict[str, np.ndarray]:
        """The texts `indices` padded into one (B, max_len) array, with lengths and labels."""
        indices = np.asarray(indices, np.int64)
        inputs = np.zeros((len(indices), self.max_len), np.int32)
        lengths = np.ones(len(indices), np.int32)
        for row, i in enumerate(indices.tolist()):
            if self.hf is not None:  # padded by the tokenizer (BERT: [PAD] = 0)
                inputs[row], length = self.hf_tokens(i)
                lengths[row] = max(length, 1)
                continue
            ids = self.tokens(i)
            inputs[row, :len(ids)] = ids
            lengths[row] = max(len(ids), 1)
        return {"inputs": inputs, "lengths": lengths, "label": self.labels[indices]}


@register_dataset("text_table", fields={
    **USER_FILE_FIELDS,
    "format": Field("auto", "csv | tsv (a header row names the columns) | jsonl (one object a "
                            "line); auto: by the file's extension", choices=FORMATS),
    "text_column": Field("text", "the column (CSV/TSV header name, JSON key) holding the text"),
    "label_column": Field("label", "the column holding the class: an integer or a name"),
    "label_type": Field("auto", "int: labels are class ids; name: names mapped to ids in sorted "
                                "order; auto: int when the first row's label is an integer",
                        choices=LABEL_TYPES),
    "num_classes": Field(0, "classes of the model: every label must be below it (0: not "
                            "checked; the configs' data= option sets it)", low=0),
    "tokenizer": Field("bytes", "bytes: UTF-8 byte values, 0 = padding (vocabulary 256); "
                                "special_bytes: <bos> bytes+4 <eos> (vocabulary 260); "
                                "hf:<folder>: the tokenizer saved in a Hugging Face model "
                                "folder (e.g. that of config.init_from), its own specials "
                                "and padding"),
    "max_len": Field(512, "tokens kept per text (longer ones are cut, shorter ones padded)",
                     low=1),
})
def text_table(cfg: Any, split: str, seed: int) -> Any:
    """(text, label) rows of your CSV / TSV / JSONL file for sequence classification.

    Building the training split checks every file (`eval_path` too), so a bad label anywhere
    stops the run before its first step.
    """
    table_tokenizer(cfg.tokenizer)  # a bad tokenizer field or folder: before reading the data
    names = label_names(cfg)
    files = _files(cfg)
    if split == cfg.train_split:
        for path, field in files[1:]:
            class_ids(cfg, path, field, *_table(cfg, path, field)[1:], names)
    path, field = files[-1] if split != cfg.train_split else files[0]
    texts, labels, lines = _table(cfg, path, field)
    ids = class_ids(cfg, path, field, labels, lines, names)
    return user_split(TextTable(texts, ids, cfg.max_len, cfg.tokenizer), cfg, split)
