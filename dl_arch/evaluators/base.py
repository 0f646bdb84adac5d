"""Evaluators: what a run shows beside its eval metrics (pictures, samples, Fréchet, AP, ...).

An evaluator is one class, registered by name and listed in `config.evaluators`:

    @register_evaluator("my_plot", fields={"num_points": Field(100, "points drawn", low=1)})
    class MyPlot(Evaluator):
        def __call__(self, ctx: EvalContext) -> Report:
            return Report(images={"my_plot": draw(ctx.variables, self.settings.num_points)})

Its fields live in the section `config.<name>` (every evaluator also has `every_evals`).
At the end of a run, and at every `every_evals`-th evaluation during training, the
loop hands it an `EvalContext` (host copies of the variables the eval split was scored
with, that split's finalized metrics, its first batch, a way to read the split again) and
writes what it returns: scalars as `eval/<key>` rows of metrics.jsonl and TensorBoard,
images as PNG files and TensorBoard images, texts, JSON records and arrays as files.
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Callable, Iterable
from typing import Any, ClassVar

import ml_collections
import numpy as np

from dl_arch.config.errors import ConfigError
from dl_arch.config.fields import Field, Fields


def every_evals(default: int = 0) -> Field:
    """The field every evaluator has: how often it runs beside the end of the run."""
    return Field(default, "also run at every N-th evaluation during training (0: only at "
                          "the end of the run)", low=0)


@dataclasses.dataclass(frozen=True)
class EvalContext:
    """What an evaluator is given (host numpy arrays, this process's share of the data)."""

    variables: dict[str, Any]  # {"params": ..., **mutable}; averaged params when config.ema_decay > 0
    metrics: dict[str, Any]  # the eval split's finalized metrics (arrays too, e.g. a confusion matrix)
    batch: dict[str, Any]  # the first eval batch, as the task's preprocessing made it
    step: int
    final: bool  # the end-of-run evaluation
    workdir: str
    eval_batches: Callable[[], Iterable[dict[str, Any]]]  # the eval split again, batch by batch


@dataclasses.dataclass
class Report:
    """What an evaluator returns; the loop writes each part (process 0 only).

    scalars -> `eval/<key>` in metrics.jsonl and TensorBoard (and summary.json at the end);
    images (HWC, uint8 or floats in [0, 1]) -> `<workdir>/images/<key>_<step>.png`, at the
      end also `<workdir>/<key>.png`, and TensorBoard;
    texts -> appended to `<workdir>/<key>.txt` under a `# step N` line;
    records (JSON-able) -> `<workdir>/<key>.json`; arrays -> `<workdir>/<key>.npz`.
    """

    scalars: dict[str, float] = dataclasses.field(default_factory=dict)
    images: dict[str, np.ndarray] = dataclasses.field(default_factory=dict)
    texts: dict[str, str] = dataclasses.field(default_factory=dict)
    records: dict[str, Any] = dataclasses.field(default_factory=dict)
    arrays: dict[str, dict[str, np.ndarray]] = dataclasses.field(default_factory=dict)


class Evaluator:
    """Base class; subclasses register with `@register_evaluator(name, fields=...)`.

    `self.config` is the run's resolved config, `self.settings` its section
    `config.<name>`, `self.task` the run's task (its model and helpers)."""

    name: ClassVar[str] = ""
    fields: ClassVar[Fields] = {}

    def __init__(self, config: ml_collections.ConfigDict, task: Any):
        self.config = config
        self.task = task
        self.settings = config[self.name]

    def due(self, step: int, final: bool) -> bool:
        """Whether this evaluator runs at the evaluation of `step`."""
        every = self.settings.every_evals
        return final or (every > 0 and (step // self.config.eval_every_steps) % every == 0)

    def __call__(self, ctx: EvalContext) -> Report:
        raise NotImplementedError

    def needs(self, *methods: str) -> None:
        """One-line error when the run's task lacks a method this evaluator calls."""
        missing = [m for m in methods if not hasattr(self.task, m)]
        if missing:
            raise ConfigError(
                f"config.evaluators lists '{self.name}', which needs a task with "
                f"{', '.join(missing)}; task '{self.config.task.name}' has none: drop it from "
                f"config.evaluators")


def evaluator_fields(cls: type[Evaluator]) -> Fields:
    """The section `config.<name>` of an evaluator: `every_evals` (which its own fields may
    re-declare with another default) and its own fields."""
    return {"every_evals": every_evals(), **cls.fields}


def build_evaluators(config: ml_collections.ConfigDict, task: Any) -> list[Evaluator]:
    """The evaluators `config.evaluators` lists, in that order."""
    from dl_arch.registry import EVALUATORS

    return [EVALUATORS.get(name)(config, task) for name in config.evaluators]


def write_report(report: Report, step: int, final: bool, workdir: str, writer: Any) -> None:
    """Writes one evaluator's report (see `Report`); only process 0 writes files."""
    if writer is not None:
        if report.scalars:
            writer.write_scalars(step, {f"eval/{k}": float(v) for k, v in report.scalars.items()})
        if report.images:
            writer.write_images(step, {k: _uint8(v) for k, v in report.images.items()})
        if report.texts and hasattr(writer, "write_texts"):
            writer.write_texts(step, report.texts)
    if not workdir or (writer is not None and not getattr(writer, "active", True)):
        return
    import matplotlib.image

    for key, image in report.images.items():
        image = _uint8(image)
        paths = [os.path.join(workdir, "images", f"{key}_{step:06d}.png")]
        if final:
            paths.append(os.path.join(workdir, f"{key}.png"))
        for path in paths:
            os.makedirs(os.path.dirname(path), exist_ok=True)
            matplotlib.image.imsave(path, image)
    for key, text in report.texts.items():
        with open(os.path.join(workdir, f"{key}.txt"), "a", encoding="utf-8") as f:
            f.write(f"# step {step}\n{text.rstrip()}\n")
    for key, record in report.records.items():
        with open(os.path.join(workdir, f"{key}.json"), "w") as f:
            json.dump(record, f, indent=2, default=_json_default)
    for key, arrays in report.arrays.items():
        np.savez(os.path.join(workdir, f"{key}.npz"), **arrays)


def _uint8(image: Any) -> np.ndarray:
    image = np.asarray(image)
    if image.dtype == np.uint8:
        return image
    return (np.clip(image.astype(np.float32), 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)


def _json_default(value: Any) -> Any:
    value = np.asarray(value)
    return value.item() if value.ndim == 0 else value.tolist()
