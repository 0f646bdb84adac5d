"""Metric writers: `metrics.jsonl` for scripts, TensorBoard event files for people.

Only process 0 writes. Scalars go to both; images (HWC uint8) and texts go to TensorBoard.
A row's scalars go to TensorBoard as one event (a summary of several values, as TensorFlow's
merged summaries were): tensorboardX writes each event through a queue and checksums it in
Python, about 40 µs an event, so one event a scalar cost a 12-metric train row about 0.5 ms
of the loop's host time (docs/results/benchmarks.md, "TensorBoard's events").

After a resume from step S the rows past S (logged by the interrupted run after its last
checkpoint) are dropped from metrics.jsonl before training continues (`truncate_metrics`), so
the file holds each step once: it is the de-duplicated record. TensorBoard keeps every event
file; the resumed writer starts with a `purge_step` of S + 1 (a SessionLog.START event), which
TensorBoard's event loader uses to discard the older files' events at steps > S.
"""

from __future__ import annotations

import json
import math
import os
import sys
from typing import Any

import jax
import numpy as np


def _tensorboardx_writer() -> Any:
    """tensorboardX's SummaryWriter class, imported without PyTorch: tensorboardX imports torch
    when it is installed (2.2 s of every run's start-up where the test or interop extra put it
    there) only to accept torch tensors, which this project never passes. A `None` entry in
    `sys.modules` makes that import fail as if torch were absent; it is removed afterwards."""
    block = "torch" not in sys.modules
    if block:
        sys.modules["torch"] = None  # type: ignore[assignment]
    try:
        from tensorboardX import SummaryWriter
    finally:
        if block:
            del sys.modules["torch"]
    return SummaryWriter


def _tensorboard_scalars(metrics: dict[str, Any]) -> Any:
    """The scalars of `metrics` as one tensorboardX `Summary` of simple values, tagged with
    their metrics.jsonl names; None if there are none."""
    from tensorboardX.proto.summary_pb2 import Summary

    values = [Summary.Value(tag=k, simple_value=float(v)) for k, v in metrics.items()
              if np.ndim(v) == 0]
    return Summary(value=values) if values else None


def _jsonable(v: Any) -> Any:
    v = np.asarray(v)
    if v.ndim == 0:
        x = v.item()
        return x if not (isinstance(x, float) and not math.isfinite(x)) else str(x)
    return v.tolist()


class MetricWriter:
    """Appends one JSON object per call to metrics.jsonl and logs scalars to TensorBoard."""

    def __init__(self, workdir: str, tensorboard: bool = True, purge_step: int | None = None):
        self.active = jax.process_index() == 0
        self.workdir = workdir
        self._jsonl = None
        self._tb = None
        if self.active:
            os.makedirs(workdir, exist_ok=True)
            self._jsonl = open(os.path.join(workdir, "metrics.jsonl"), "a")
            if tensorboard:
                self._tb = _tensorboardx_writer()(os.path.join(workdir, "tensorboard"),
                                                  purge_step=purge_step)

    def write_scalars(self, step: int, metrics: dict[str, Any]) -> None:
        if not self.active:
            return
        row = {"step": int(step), **{k: _jsonable(v) for k, v in metrics.items()}}
        self._jsonl.write(json.dumps(row) + "\n")
        self._jsonl.flush()
        if self._tb is not None and (summary := _tensorboard_scalars(metrics)) is not None:
            self._tb.file_writer.add_summary(summary, int(step))

    def write_images(self, step: int, images: dict[str, np.ndarray]) -> None:
        if self.active and self._tb is not None:
            for k, img in images.items():
                self._tb.add_image(k, np.asarray(img), int(step), dataformats="HWC")

    def write_texts(self, step: int, texts: dict[str, str]) -> None:
        if self.active and self._tb is not None:
            for k, text in texts.items():
                self._tb.add_text(k, text, int(step))

    def flush(self) -> None:
        if self._tb is not None:
            self._tb.flush()

    def close(self) -> None:
        if self._jsonl is not None:
            self._jsonl.close()
        if self._tb is not None:
            self._tb.close()


def truncate_metrics(workdir: str, step: int, drop_eval_at_step: bool = False) -> int:
    """Drops the rows of metrics.jsonl past `step` (and its eval rows if `drop_eval_at_step`,
    for a final evaluation that will run again); rewrites atomically; the number dropped.

    A resumed run calls this with its checkpoint's step, so the steps it trains again are
    logged once. A torn last line (a kill during a write) is dropped too."""
    path = os.path.join(workdir, "metrics.jsonl")
    if jax.process_index() != 0 or not os.path.exists(path):
        return 0
    kept, dropped = [], 0
    with open(path) as f:
        for line in f:
            if not line.strip():
                continue
            try:
                row = json.loads(line)
                row_step = int(row["step"])
            except (ValueError, KeyError, TypeError):
                dropped += 1
                continue
            is_eval = any(k.startswith("eval/") for k in row)
            if row_step > step or (row_step == step and drop_eval_at_step and is_eval):
                dropped += 1
            else:
                kept.append(line if line.endswith("\n") else line + "\n")
    if dropped:
        tmp = f"{path}.tmp.{os.getpid()}"
        with open(tmp, "w") as f:
            f.writelines(kept)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    return dropped


def read_metrics(workdir: str) -> list[dict[str, Any]]:
    """All rows of a workdir's metrics.jsonl, in the order they were written."""
    path = os.path.join(workdir, "metrics.jsonl")
    if not os.path.exists(path):
        return []
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]
