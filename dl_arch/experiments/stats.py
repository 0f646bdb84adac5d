"""Means over seeds and short number formats, shared by the report's tables and its plots."""

from __future__ import annotations

import math
import statistics
from collections.abc import Iterable
from typing import Any


def numbers(values: Iterable[Any]) -> list[float]:
    """The values that are numbers (not bools, None, '' or NaN), as floats."""
    out = []
    for v in values:
        if isinstance(v, bool) or v is None or v == "":
            continue
        try:
            x = float(v)
        except (TypeError, ValueError):
            continue
        if not math.isnan(x):
            out.append(x)
    return out


def mean_std(values: Iterable[Any]) -> tuple[float, float, int] | None:
    """(mean, sample std, n) of the numeric values; std is 0 for a single value."""
    xs = numbers(values)
    if not xs:
        return None
    return statistics.fmean(xs), (statistics.stdev(xs) if len(xs) > 1 else 0.0), len(xs)


def fmt(x: float) -> str:
    """Short human format: 4 significant digits, thousands for big integers."""
    if x == 0:
        return "0"
    if abs(x) >= 1e6 or abs(x) < 1e-3:
        return f"{x:.3g}"
    if float(x).is_integer() and abs(x) >= 1000:
        return f"{int(x):,}"
    return f"{x:.4g}"
