"""Metric writers: `metrics.jsonl` for scripts, TensorBoard event files for people.

Only process 0 writes. Scalars go to both; images (HWC uint8) go to TensorBoard.
"""

from __future__ import annotations

import json
import math
import os
from typing import Any

import jax
import numpy as np


def _jsonable(v: Any) -> Any:
    v = np.asarray(v)
    if v.ndim == 0:
        x = v.item()
        return x if not (isinstance(x, float) and not math.isfinite(x)) else str(x)
    return v.tolist()


class MetricWriter:
    """Appends one JSON object per call to metrics.jsonl and logs scalars to TensorBoard."""

    def __init__(self, workdir: str, tensorboard: bool = True):
        self.active = jax.process_index() == 0
        self.workdir = workdir
        self._jsonl = None
        self._tb = None
        if self.active:
            os.makedirs(workdir, exist_ok=True)
            self._jsonl = open(os.path.join(workdir, "metrics.jsonl"), "a")
            if tensorboard:
                from tensorboardX import SummaryWriter

                self._tb = SummaryWriter(os.path.join(workdir, "tensorboard"))

    def write_scalars(self, step: int, metrics: dict[str, Any]) -> None:
        if not self.active:
            return
        row = {"step": int(step), **{k: _jsonable(v) for k, v in metrics.items()}}
        self._jsonl.write(json.dumps(row) + "\n")
        self._jsonl.flush()
        if self._tb is not None:
            for k, v in metrics.items():
                if np.ndim(v) == 0:
                    self._tb.add_scalar(k, float(v), int(step))

    def write_images(self, step: int, images: dict[str, np.ndarray]) -> None:
        if self.active and self._tb is not None:
            for k, img in images.items():
                self._tb.add_image(k, np.asarray(img), int(step), dataformats="HWC")

    def flush(self) -> None:
        if self._tb is not None:
            self._tb.flush()

    def close(self) -> None:
        if self._jsonl is not None:
            self._jsonl.close()
        if self._tb is not None:
            self._tb.close()


def read_metrics(workdir: str) -> list[dict[str, Any]]:
    """All rows of a workdir's metrics.jsonl (an interrupted run may have repeated steps)."""
    path = os.path.join(workdir, "metrics.jsonl")
    if not os.path.exists(path):
        return []
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]
