"""Rows of a user's text files (CSV, TSV, JSON lines, plain lines), each with its line number.

The table sources (`text_table`, `series_csv`, `parallel_text`) read through these readers so
that a mistake in a file is one line naming the file, the line and the fix: bytes that are
not UTF-8, a malformed CSV quote, a line that is not JSON, an empty file. A byte-order mark
is dropped (spreadsheet exports write one). Blank lines hold no example and are passed over.
"""

from __future__ import annotations

import csv
import io
import json
import os
from collections.abc import Iterator
from typing import Any

from dl_arch.config.errors import ConfigError

# File extensions -> the table format they hold.
EXTENSIONS = {".csv": "csv", ".tsv": "tsv", ".tab": "tsv", ".jsonl": "jsonl", ".ndjson": "jsonl"}
DELIMITERS = {"csv": ",", "tsv": "\t"}


def where(path: str, field: str, line: int | None = None) -> str:
    """The start of an error line: `config.dataset.<field>='<path>'` and the line, when known."""
    return f"config.dataset.{field}={path!r}" + (f" line {line}" if line is not None else "")


def table_format(path: str, fmt: str, field: str) -> str:
    """`fmt` when given, else the format named by `path`'s extension (csv, tsv or jsonl)."""
    if fmt != "auto":
        return fmt
    ext = os.path.splitext(path)[1].lower()
    if ext not in EXTENSIONS:
        raise ConfigError(f"{where(path, field)}: cannot tell the format from the extension "
                          f"{ext or '(none)'!r}; name the file .csv, .tsv or .jsonl, or set "
                          f"config.dataset.format to csv, tsv or jsonl")
    return EXTENSIONS[ext]


def read_text(path: str, field: str) -> str:
    """The whole file as text; bytes that are not UTF-8 are an error naming their line."""
    with open(path, "rb") as f:
        data = f.read()
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line = data[:e.start].count(b"\n") + 1
        raise ConfigError(f"{where(path, field, line)}: byte {data[e.start]:#04x} is not UTF-8 "
                          f"text; save the file as UTF-8") from None


def text_lines(path: str, field: str) -> Iterator[tuple[int, str]]:
    """(line number from 1, line without its newline) for every non-blank line of `path`."""
    for number, line in enumerate(read_text(path, field).splitlines(), start=1):
        if line.strip():
            yield number, line


def csv_rows(path: str, fmt: str, field: str) -> Iterator[tuple[int, list[str]]]:
    """(line number where the row starts, its cells) for every non-blank row of a CSV/TSV file;
    the header row is the first one yielded."""
    reader = csv.reader(io.StringIO(read_text(path, field), newline=""),
                        delimiter=DELIMITERS[fmt], strict=True)
    start = 1
    try:
        for row in reader:
            if any(cell.strip() for cell in row):
                yield start, row
            start = reader.line_num + 1
    except csv.Error as e:
        raise ConfigError(f"{where(path, field, start)}: not valid {fmt.upper()} ({e}); check "
                          f"its quotes") from None


def jsonl_rows(path: str, field: str) -> Iterator[tuple[int, dict[str, Any]]]:
    """(line number, object) for every non-blank line of a JSON-lines file."""
    for number, line in text_lines(path, field):
        try:
            row = json.loads(line)
        except json.JSONDecodeError as e:
            raise ConfigError(f"{where(path, field, number)}: not JSON ({e.msg} at character "
                              f"{e.pos + 1}); a .jsonl file holds one JSON object per line"
                              ) from None
        if not isinstance(row, dict):
            raise ConfigError(f"{where(path, field, number)}: a JSON {type(row).__name__}, not an "
                              f"object; each line must be an object such as "
                              f'{{"text": "...", "label": 1}}')
        yield number, row


def require_rows(rows: list[Any], path: str, field: str, what: str) -> None:
    """A one-line error when a file held no `what` (it is empty or blank)."""
    if not rows:
        raise ConfigError(f"{where(path, field)} is empty: it holds no {what}")
