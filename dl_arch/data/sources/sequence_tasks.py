"""Procedural sequence tasks: long-range memory, forecasting and a translation-like seq2seq task.

Every example is a function of (seed, split, index), so these need no download:
- `adding` (Hochreiter & Schmidhuber 1997): sum the two values marked in a length-T stream.
- `copy_memory` (Arjovsky et al. 2016): recall 10 symbols after T blank steps.
- `long_range_classification`: the label is whether two key tokens, one near the start and
  one near the end of a variable-length sequence, are equal.
- `sine_series`: noisy sums of sines; forecast the next `horizon` steps.
- `mackey_glass`: windows of the chaotic Mackey-Glass series (tau = 17).
- `dates_to_iso`: dates written in words ("the 3rd of march, 1991") -> "1991-03-03".
"""

from __future__ import annotations

import datetime
import functools
from typing import Any

import numpy as np

from dl_arch.config.errors import ConfigError
from dl_arch.config.fields import Field
from dl_arch.data.sources.procedural import SPLIT_FIELDS, ProceduralSource, split_length
from dl_arch.registry import register_dataset

# Forecasting windows, shared by `sine_series` and `mackey_glass`.
CONTEXT = Field(64, "observed steps the model reads", low=1)
HORIZON = Field(16, "future steps it forecasts (config.model.horizon must match)", low=1)


class Adding(ProceduralSource):
    """inputs (T, 2): [value in U(0,1), marker]; targets (1,): sum of the 2 marked values."""

    def __init__(self, steps: int, length: int, seed: int, split: str):
        super().__init__(length, seed, split)
        if steps < 2:
            raise ConfigError(f"config.dataset.T={steps}; the adding problem needs T >= 2")
        self.steps = steps

    def make(self, rng: np.random.Generator, index: int) -> dict[str, Any]:
        values = rng.uniform(0.0, 1.0, self.steps).astype(np.float32)
        half = self.steps // 2
        first, second = rng.integers(0, half), rng.integers(half, self.steps)
        marker = np.zeros(self.steps, np.float32)
        marker[[first, second]] = 1.0
        return {"inputs": np.stack([values, marker], axis=-1),
                "targets": np.array([values[first] + values[second]], np.float32)}


@register_dataset("adding", fields={
    "T": Field(100, "sequence length (one marked value in each half)", low=2), **SPLIT_FIELDS})
def adding(cfg: Any, split: str, seed: int) -> Adding:
    """The adding problem with sequence length `config.dataset.T`."""
    return Adding(cfg.T, split_length(cfg, split), seed, split)


class CopyMemory(ProceduralSource):
    """Tokens (T + 2*copy_len,): symbols, T-1 blanks, a delimiter, blanks; recall the symbols.

    Vocabulary: 0 = blank, 1..num_symbols = symbols, num_symbols + 1 = delimiter.
    `weights` is 1 on the recall positions, where accuracy is measured.
    """

    def __init__(self, steps: int, num_symbols: int, copy_len: int, length: int, seed: int,
                 split: str):
        super().__init__(length, seed, split)
        self.steps, self.num_symbols, self.copy_len = steps, num_symbols, copy_len

    def make(self, rng: np.random.Generator, index: int) -> dict[str, Any]:
        n = self.steps + 2 * self.copy_len
        symbols = rng.integers(1, self.num_symbols + 1, self.copy_len)
        inputs = np.zeros(n, np.int32)
        inputs[:self.copy_len] = symbols
        inputs[self.copy_len + self.steps - 1] = self.num_symbols + 1
        targets = np.zeros(n, np.int32)
        targets[-self.copy_len:] = symbols
        weights = np.zeros(n, np.float32)
        weights[-self.copy_len:] = 1.0
        return {"inputs": inputs, "targets": targets, "weights": weights}


@register_dataset("copy_memory", fields={
    "T": Field(100, "blank steps between the symbols and the delimiter that asks for them",
               low=1),
    "num_symbols": Field(8, "distinct symbols to remember (vocabulary num_symbols + 2)", low=1),
    "copy_len": Field(10, "symbols to remember per example", low=1),
    **SPLIT_FIELDS})
def copy_memory(cfg: Any, split: str, seed: int) -> CopyMemory:
    """Copy-memory task: `T` blank steps between the symbols and their recall."""
    return CopyMemory(cfg.T, cfg.num_symbols, cfg.copy_len, split_length(cfg, split), seed, split)


class LongRangeClassification(ProceduralSource):
    """Random tokens with a key (1 or 2) in the first and last 10%; label = keys equal.

    Lengths vary in [min_length, T]; the rest is padding (token 0) and `lengths` says so.
    """

    def __init__(self, steps: int, min_length: int, vocab_size: int, length: int, seed: int,
                 split: str):
        super().__init__(length, seed, split)
        if vocab_size < 4:
            raise ConfigError(f"config.dataset.vocab_size={vocab_size}; needs >= 4 (pad, 2 keys,"
                             " filler)")
        if not 10 <= min_length <= steps:
            raise ConfigError(f"config.dataset.min_length={min_length}; use 10 <= min_length <= T"
                             f"={steps}")
        self.steps, self.min_length, self.vocab_size = steps, min_length, vocab_size

    def make(self, rng: np.random.Generator, index: int) -> dict[str, Any]:
        n = int(rng.integers(self.min_length, self.steps + 1))
        tokens = np.zeros(self.steps, np.int32)
        tokens[:n] = rng.integers(3, self.vocab_size, n)
        window = max(1, n // 10)
        a, b = rng.integers(1, 3, 2)
        tokens[rng.integers(0, window)] = a
        tokens[n - 1 - rng.integers(0, window)] = b
        return {"inputs": tokens, "label": np.int32(a == b), "lengths": np.int32(n)}


@register_dataset("long_range_classification", fields={
    "T": Field(200, "longest sequence (the padded length)", low=10),
    "min_length": Field(None, "shortest sequence, in [10, T] (None: T // 2)", kind=int, low=10),
    "vocab_size": Field(16, "tokens: pad, the two keys and the filler", low=4),
    **SPLIT_FIELDS})
def long_range_classification(cfg: Any, split: str, seed: int) -> LongRangeClassification:
    """Binary classification whose evidence is ~T tokens apart."""
    min_length = cfg.T // 2 if cfg.min_length is None else cfg.min_length
    return LongRangeClassification(cfg.T, min_length, cfg.vocab_size, split_length(cfg, split),
                                   seed, split)


class SineSeries(ProceduralSource):
    """Noisy sums of `num_components` random sines; inputs (context, 1), targets (horizon, 1)."""

    def __init__(self, context: int, horizon: int, num_components: int, noise: float,
                 length: int, seed: int, split: str):
        super().__init__(length, seed, split)
        self.context, self.horizon = context, horizon
        self.num_components, self.noise = num_components, noise

    def make(self, rng: np.random.Generator, index: int) -> dict[str, Any]:
        t = np.arange(self.context + self.horizon)[:, None]
        freq = rng.uniform(0.01, 0.1, self.num_components)  # cycles per step
        amp = rng.uniform(0.2, 1.0, self.num_components)
        phase = rng.uniform(0, 2 * np.pi, self.num_components)
        clean = (amp * np.sin(2 * np.pi * freq * t + phase)).sum(axis=1)
        series = (clean + self.noise * rng.standard_normal(clean.shape)).astype(np.float32)
        return {"inputs": series[:self.context, None], "targets": series[self.context:, None]}


@register_dataset("sine_series", fields={
    "context": CONTEXT, "horizon": HORIZON,
    "num_components": Field(3, "sines summed per series", low=1),
    "noise": Field(0.05, "std of the Gaussian noise added to each step", low=0.0),
    **SPLIT_FIELDS})
def sine_series(cfg: Any, split: str, seed: int) -> SineSeries:
    """Multi-frequency noisy sines for multi-step forecasting."""
    return SineSeries(cfg.context, cfg.horizon, cfg.num_components, cfg.noise,
                      split_length(cfg, split), seed, split)


def mackey_glass_euler(units: int, tau: float = 17.0, beta: float = 0.2, gamma: float = 0.1,
                       power: float = 10.0, dt: float = 0.1, x0: float = 1.2) -> np.ndarray:
    """Mackey-Glass dx/dt = beta x(t-tau) / (1 + x(t-tau)^power) - gamma x by Euler steps of dt.

    Returns x on the grid t = -tau, -tau + dt, ..., units (constant history x0 for t <= 0).
    """
    lag = int(round(tau / dt))
    total = int(round(units / dt))
    x = np.empty(total + lag + 1)
    x[:lag + 1] = x0
    for i in range(lag, total + lag):
        delayed = x[i - lag]
        x[i + 1] = x[i] + dt * (beta * delayed / (1.0 + delayed**power) - gamma * x[i])
    return x


@functools.lru_cache(maxsize=4)
def mackey_glass_series(n: int, sample_every: int = 1, dt: float = 0.1) -> np.ndarray:
    """`n` samples of Mackey-Glass (tau = 17) every `sample_every` time units after a 500-unit
    burn-in, standardised to zero mean and unit variance."""
    burn = 500
    x = mackey_glass_euler(burn + n * sample_every, dt=dt)
    per_unit = int(round(1 / dt))
    lag = int(round(17.0 / dt))
    samples = x[lag + burn * per_unit::sample_every * per_unit][:n]
    return ((samples - samples.mean()) / samples.std()).astype(np.float32)


class MackeyGlass(ProceduralSource):
    """Windows of one long Mackey-Glass series; train from the first 80%, eval from the rest."""

    def __init__(self, context: int, horizon: int, series_length: int, train: bool,
                 length: int, seed: int, split: str):
        super().__init__(length, seed, split)
        self.context, self.horizon = context, horizon
        series = mackey_glass_series(series_length)
        cut = int(0.8 * series_length)
        self.series = series[:cut] if train else series[cut:]
        span = context + horizon
        if series_length - cut < span + 1:  # the eval part (the last 20%) is the shorter one
            raise ConfigError(f"config.dataset.series_length={series_length} leaves the eval part "
                              f"{series_length - cut} samples, too few for context+horizon={span}; "
                              f"raise it to >= {5 * (span + 1)}")

    def make(self, rng: np.random.Generator, index: int) -> dict[str, Any]:
        span = self.context + self.horizon
        start = int(rng.integers(0, len(self.series) - span + 1))
        window = self.series[start:start + span]
        return {"inputs": window[:self.context, None], "targets": window[self.context:, None]}


@register_dataset("mackey_glass", fields={
    "context": CONTEXT, "horizon": HORIZON,
    "series_length": Field(10000, "samples of the series (the first 80% train, the rest eval)",
                           low=1),
    **SPLIT_FIELDS})
def mackey_glass(cfg: Any, split: str, seed: int) -> MackeyGlass:
    """Forecasting windows of the Mackey-Glass chaotic series (positional train/eval split)."""
    return MackeyGlass(cfg.context, cfg.horizon, cfg.series_length, split == cfg.train_split,
                       split_length(cfg, split), seed, split)


# ----- dates_to_iso: a translation-like task -----
PAD, BOS, EOS = 0, 1, 2
DATE_CHARS = " ,-/'0123456789abcdefghijklmnopqrstuvwxyz"
DATE_VOCAB_SIZE = 3 + len(DATE_CHARS)
_CHAR_ID = {c: i + 3 for i, c in enumerate(DATE_CHARS)}
_MONTHS = ("january", "february", "march", "april", "may", "june", "july", "august",
           "september", "october", "november", "december")
_WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
_ONES = ("", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten",
         "eleven", "twelve", "thirteen", "fourteen", "fifteen", "sixteen", "seventeen",
         "eighteen", "nineteen")
_TENS = ("", "", "twenty", "thirty")
_SUFFIXES = ("th", "st", "nd", "rd", "th", "th", "th", "th", "th", "th")  # by the last digit


def _ordinal(n: int) -> str:
    suffix = "th" if 11 <= n % 100 <= 13 else _SUFFIXES[n % 10]
    return f"{n}{suffix}"


def _day_words(n: int) -> str:
    return _ONES[n] if n < 20 else (_TENS[n // 10] + ("-" + _ONES[n % 10] if n % 10 else ""))


def format_date(date: datetime.date, style: int) -> str:
    """One of 8 human spellings of a date."""
    m = _MONTHS[date.month - 1]
    styles = (
        f"{m} {date.day}, {date.year}",
        f"{date.day} {m} {date.year}",
        f"the {_ordinal(date.day)} of {m}, {date.year}",
        f"{m[:3]} {date.day} {date.year}",
        f"{_WEEKDAYS[date.weekday()]}, {m} {_ordinal(date.day)} {date.year}",
        f"{_day_words(date.day)} {m} {date.year}",
        f"{date.day:02d}/{date.month:02d}/{date.year}",
        f"{m} {date.day} '{date.year % 100:02d}" if date.year >= 2000 else f"{m} {date.year}, "
        f"day {date.day}",
    )
    return styles[style]


def encode_chars(text: str, size: int) -> np.ndarray:
    """Character ids padded with PAD to `size`."""
    ids = np.full(size, PAD, np.int32)
    ids[:len(text)] = [_CHAR_ID[c] for c in text]
    return ids


def decode_chars(ids: Any) -> str:
    """Inverse of `encode_chars`, stopping at EOS and skipping PAD/BOS."""
    out = []
    for i in np.asarray(ids).tolist():
        if i == EOS:
            break
        if i >= 3:
            out.append(DATE_CHARS[i - 3])
    return "".join(out)


class DatesToISO(ProceduralSource):
    """inputs: a date in words (chars); targets: 'YYYY-MM-DD' + EOS; decoder_inputs: BOS + it."""

    SRC_LEN = 48
    TGT_LEN = 11

    def make(self, rng: np.random.Generator, index: int) -> dict[str, Any]:
        first = datetime.date(1900, 1, 1).toordinal()
        last = datetime.date(2099, 12, 31).toordinal()
        date = datetime.date.fromordinal(int(rng.integers(first, last + 1)))
        text = format_date(date, int(rng.integers(0, 8)))
        iso = encode_chars(date.isoformat(), self.TGT_LEN - 1)
        targets = np.append(iso, EOS).astype(np.int32)
        return {"inputs": encode_chars(text, self.SRC_LEN),
                "input_lengths": np.int32(len(text)),
                "targets": targets,
                "decoder_inputs": np.concatenate([[BOS], targets[:-1]]).astype(np.int32)}


@register_dataset("dates_to_iso", fields=SPLIT_FIELDS)
def dates_to_iso(cfg: Any, split: str, seed: int) -> DatesToISO:
    """Translate dates written in words into ISO 8601 (character level, vocabulary 45)."""
    return DatesToISO(split_length(cfg, split), seed, split)
