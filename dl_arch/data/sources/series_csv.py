"""Time-series forecasting from your own CSV: one or more numeric columns, one row per step.

    date,load,temperature
    2024-01-01,12.5,3.1
    ...

The first row names the columns (`header=False`: none, columns are then named 0, 1, ...);
`columns` picks the series (empty: every column, so leave out a date column by naming the
others). An example is a window of `context` + `horizon` consecutive rows, consecutive
windows `stride` rows apart: {inputs (context, F), targets (horizon, F)} float32 with F
columns, the batches of `sine_series` and `mackey_glass` that the `forecasting` task reads.

The split is BY TIME, never at random (a random split would put the future of a train
window into eval): the last `eval_fraction` of the rows (at least `horizon` rows) are the
eval split, so this source has no `split_seed`. A train window lies wholly in the first
part; an eval window's targets lie wholly in the last part, its context may reach back
into the first (the observed past). With `eval_path`, that file is the eval series.
`normalize` standardises every column by the mean and std of the train part only (the
eval part's statistics would leak into training); errors are then in train-std units.

A value that is not a finite number (line and column named) and a series too short for
one window are one-line errors raised when the source is built.
"""

from __future__ import annotations

import functools
import math
import os
from typing import Any

import numpy as np

from dl_arch.config.errors import ConfigError
from dl_arch.config.fields import Field
from dl_arch.data.sources.sequence_tasks import CONTEXT, HORIZON
from dl_arch.data.table_rows import csv_rows, require_rows, where
from dl_arch.data.user_files import USER_FILE_FIELDS, path_of
from dl_arch.registry import register_dataset


def _parse(cell: str, path: str, field: str, line: int, column: str) -> float:
    try:
        value = float(cell)
    except ValueError:
        value = math.nan
        bad = f"{cell.strip()!r} is not a number" if cell.strip() else "is empty"
    else:
        bad = f"{cell.strip()!r} is not a finite number"
    if not math.isfinite(value):
        raise ConfigError(f"{where(path, field, line)}, column {column!r}: {bad}; fix the value, "
                          f"or choose the numeric columns with config.dataset.columns")
    return value


@functools.lru_cache(maxsize=8)
def read_series(path: str, field: str, columns: tuple[str, ...], header: bool, mtime: float
                ) -> np.ndarray:
    """The chosen columns of a CSV as a float32 (rows, F) array (cached per file version)."""
    rows = list(csv_rows(path, "csv", field))
    require_rows(rows, path, field, "rows")
    width = len(rows[0][1])
    names = [c.strip() for c in rows[0][1]] if header else [str(i) for i in range(width)]
    body = rows[1:] if header else rows
    wanted = list(columns) or names
    missing = [c for c in wanted if c not in names]
    if missing:
        raise ConfigError(f"config.dataset.columns: {missing[0]!r} is not a column of "
                          f"{where(path, field)}; its columns: {', '.join(names)}")
    at = [names.index(c) for c in wanted]
    values = np.empty((len(body), len(at)), np.float32)
    for r, (line, cells) in enumerate(body):
        if len(cells) != width:
            raise ConfigError(f"{where(path, field, line)}: {len(cells)} cells but the first row "
                              f"has {width}; every row needs a value in every column")
        values[r] = [_parse(cells[j], path, field, line, wanted[k]) for k, j in enumerate(at)]
    return values


class SeriesWindows:
    """Windows of `context` + `horizon` rows of one series, the targets starting at rows
    `first_target`, `first_target + stride`, ... (the last target row at most `len - 1`)."""

    def __init__(self, series: np.ndarray, context: int, horizon: int, first_target: int,
                 stride: int):
        self.series, self.context, self.horizon, self.stride = series, context, horizon, stride
        self.first_target = first_target
        self._length = max(0, (len(series) - horizon - first_target) // stride + 1)

    def __len__(self) -> int:
        return self._length

    def __getitem__(self, index: int) -> dict[str, Any]:
        if not 0 <= index < self._length:
            raise IndexError(index)
        return {k: v[0] for k, v in self.get_batch(np.array([index])).items()}

    def get_batch(self, indices: np.ndarray) -> dict[str, np.ndarray]:
        """The windows `indices` stacked, gathered in one indexing operation."""
        indices = np.asarray(indices, np.int64)
        start = self.first_target - self.context + indices * self.stride
        windows = self.series[start[:, None] + np.arange(self.context + self.horizon)]
        return {"inputs": np.ascontiguousarray(windows[:, :self.context]),
                "targets": np.ascontiguousarray(windows[:, self.context:])}


def _series(cfg: Any, path: str, field: str) -> np.ndarray:
    return read_series(path, field, tuple(cfg.columns), cfg.header, os.path.getmtime(path))


def split_series(cfg: Any) -> tuple[np.ndarray, np.ndarray, int]:
    """(train part, eval series, first eval target row), normalised when asked; a series too
    short for one window of either split is an error."""
    span = cfg.context + cfg.horizon
    path = path_of(cfg, cfg.train_split)
    series = _series(cfg, path, "path")
    if cfg.eval_path:
        train, held = series, _series(cfg, path_of(cfg, cfg.eval_split), "eval_path")
        first_eval = cfg.context
        if len(held) < span:
            raise ConfigError(f"{where(cfg.eval_path, 'eval_path')}: {len(held)} rows, too few "
                              f"for one window of context+horizon={span}; use a longer eval "
                              f"series or a shorter context or horizon")
    else:  # the eval part keeps at least `horizon` rows, so it holds one window's targets
        first_eval = len(series) - max(cfg.horizon, round(len(series) * cfg.eval_fraction))
        train, held = series[:first_eval], series
    if len(train) < span:
        raise ConfigError(f"{where(path, 'path')}: the train part has {len(train)} rows, too few "
                          f"for one window of context+horizon={span}; use a longer series, "
                          f"a shorter context or horizon, or a smaller eval_fraction")
    if cfg.normalize:
        mean, std = train.mean(axis=0), train.std(axis=0)
        std = np.where(std > 0, std, 1.0).astype(np.float32)
        train, held = (train - mean) / std, (held - mean) / std
    return train.astype(np.float32), held.astype(np.float32), first_eval


@register_dataset("series_csv", fields={
    "path": USER_FILE_FIELDS["path"],
    "eval_path": Field("", "a CSV of the eval series ('': the last eval_fraction of path)"),
    "eval_fraction": Field(0.2, "share of the rows of path, at its end, held out for eval "
                                "(split by time, never at random)", low=0.0, high=1.0,
                           low_open=True, high_open=True),
    "columns": Field((), "names of the numeric columns to forecast (empty: every column; "
                         "without a header: 0, 1, ...)", each=Field("", "a column name")),
    "header": Field(True, "the first row names the columns"),
    "context": CONTEXT, "horizon": HORIZON,
    "stride": Field(1, "rows between the starts of consecutive windows", low=1),
    "normalize": Field(True, "standardise each column by the train part's mean and std"),
})
def series_csv(cfg: Any, split: str, seed: int) -> SeriesWindows:
    """Forecasting windows of your CSV, split by time (see the module docstring)."""
    train, held, first_eval = split_series(cfg)
    if split == cfg.train_split:
        return SeriesWindows(train, cfg.context, cfg.horizon, cfg.context, cfg.stride)
    return SeriesWindows(held, cfg.context, cfg.horizon, first_eval, cfg.stride)
