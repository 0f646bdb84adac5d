"""Keyword spotting: which word of a fixed list an utterance speaks (KWS CNN, CNN + GRU).

Batch: `audio` [B, N] with `audio_len` and `label` (the keyword's class index). The shared
front end (`speech_features`) turns audio into log-mel features; the model returns class
logits [B, num_classes]. Loss and metrics are the classifiers' (`tasks.classification`):
softmax cross-entropy with optional label smoothing; eval loss, accuracy, top-k accuracy
(more than k classes), the confusion matrix [true, predicted] and macro precision, recall
and F1, which the `confusion_matrix` evaluator draws with the keywords as class names.
"""

from __future__ import annotations

from typing import Any

import jax
import numpy as np

from dl_arch.config.errors import ConfigError
from dl_arch.config.fields import Field
from dl_arch.registry import register_task
from dl_arch.tasks.base import Batch, MetricTotals, Variables
from dl_arch.tasks.classification import class_metric_totals, class_train_loss, finalize_class_metrics
from dl_arch.tasks.speech_features import SpeechTask, real_rows


@register_task("keyword_spotting")
class KeywordSpottingTask(SpeechTask):
    """Cross-entropy over keywords on log-mel features; classification metrics (module doc)."""

    required_keys = ("audio", "audio_len", "label")
    evaluators = ("confusion_matrix",)
    fields = {
        "label_smoothing": Field(0.0, "training targets (1 - s) one-hot + s uniform", low=0.0,
                                 high=1.0, high_open=True),
        "top_k": Field(5, "eval: top-k accuracy, reported when there are more than k classes",
                       low=1),
    }

    def __init__(self, config: Any):
        super().__init__(config)
        self.num_classes = int(config.model.num_classes)
        names = config.dataset.class_names
        if names is not None and len(names) != self.num_classes:
            raise ConfigError(f"config.dataset.class_names has {len(names)} names but "
                              f"config.model.num_classes={self.num_classes}; give one name per "
                              f"class or leave class_names None")

    def check_batch(self, batch: dict[str, Any]) -> None:
        """Also: labels beyond the model's classes are one line, not a silent wrong loss."""
        super().check_batch(batch)
        labels = np.asarray(batch["label"])
        if labels.size and (labels.max() >= self.num_classes or labels.min() < 0):
            top = int(labels.max())
            raise ConfigError(f"the data has label {top}, but config.model.num_classes="
                              f"{self.num_classes}; set config.model.num_classes to at least "
                              f"{top + 1}")

    # ----- pure functions
    def loss(self, phase: str, params: Any, mutable: Variables, batch: Batch, rng: jax.Array):
        logits, new_mutable = self.apply_train(params, mutable, batch, rng)
        loss, metrics = class_train_loss(logits, batch["label"], self.config.task.label_smoothing)
        return loss, (metrics, new_mutable)

    def eval_metrics(self, variables: Variables, batch: Batch) -> MetricTotals:
        logits = self.apply_eval(variables, batch["audio"], batch["audio_len"])
        return class_metric_totals(logits, batch["label"], real_rows(batch), self.config.task.top_k)

    # ----- host side
    def finalize_metrics(self, totals: dict[str, tuple[Any, Any]]) -> dict[str, Any]:
        """Means, the summed confusion matrix (`confusion`) and its macro P/R/F1."""
        return finalize_class_metrics(totals, super().finalize_metrics)
