"""Classification: softmax cross-entropy; accuracy, top-k, per-class precision/recall/F1.

Text read with a Hugging Face checkpoint's tokenizer (`config.dataset.tokenizer=hf:<folder>`,
e.g. the `text_table` source), or a run that loads a checkpoint saved with one
(`init_from=hf:<folder>`), is checked as the language models are (`run_tokenizer`): the
tokenizer's size is `config.model.vocab_size`, and it is the checkpoint's own.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

from dl_arch.config.errors import ConfigError
from dl_arch.config.fields import Field
from dl_arch.data.tokenizers import run_tokenizer
from dl_arch.registry import register_task
from dl_arch.tasks.base import Batch, MetricTotals, Variables, masked_mean_pair
from dl_arch.tasks.supervised import SupervisedTask


def cross_entropy(logits: jax.Array, labels: jax.Array, label_smoothing: float = 0.0) -> jax.Array:
    """Per-example softmax cross-entropy in float32, with optional label smoothing. The
    labels are one-hot rather than gathered: a gather's gradient is a scatter, four kernels
    on CPU that a tiny classifier's step paid 13-26 µs for (`mlp_xor`; benchmarks.md)."""
    logits = logits.astype(jnp.float32)
    targets = jax.nn.one_hot(labels, logits.shape[-1])
    if label_smoothing:
        targets = optax.smooth_labels(targets, label_smoothing)
    return optax.softmax_cross_entropy(logits, targets)


def top_k_correct(logits: jax.Array, labels: jax.Array, k: int) -> jax.Array:
    """1.0 where the label is among the k highest logits."""
    k = min(k, logits.shape[-1])
    _, top = jax.lax.top_k(logits, k)
    return jnp.any(top == labels[..., None], axis=-1).astype(jnp.float32)


def per_class_scores(confusion: np.ndarray) -> dict[str, np.ndarray]:
    """Precision, recall and F1 per class from a confusion matrix [true, predicted]."""
    tp = np.diag(confusion)
    predicted = confusion.sum(axis=0)
    actual = confusion.sum(axis=1)
    precision = np.divide(tp, predicted, out=np.zeros_like(tp), where=predicted > 0)
    recall = np.divide(tp, actual, out=np.zeros_like(tp), where=actual > 0)
    denom = precision + recall
    f1 = np.divide(2 * precision * recall, denom, out=np.zeros_like(tp), where=denom > 0)
    return {"precision": precision, "recall": recall, "f1": f1, "support": actual}


def class_train_loss(logits: jax.Array, labels: jax.Array, label_smoothing: float
                     ) -> tuple[jax.Array, dict[str, jax.Array]]:
    """A classifier's training loss (mean cross-entropy, smoothed) and its batch accuracy."""
    loss = cross_entropy(logits, labels, label_smoothing).mean()
    return loss, {"accuracy": jnp.mean(jnp.argmax(logits, -1) == labels)}


def class_metric_totals(logits: jax.Array, labels: jax.Array, mask: jax.Array, top_k: int
                        ) -> MetricTotals:
    """Eval totals of a classifier's batch: loss, accuracy, top-k accuracy (when there are more
    than k classes) and the confusion matrix (rows: true class), padding rows excluded."""
    out = {"loss": masked_mean_pair(cross_entropy(logits, labels), mask),
           "accuracy": masked_mean_pair(jnp.argmax(logits, -1) == labels, mask)}
    if logits.shape[-1] > top_k:
        out[f"top{top_k}_accuracy"] = masked_mean_pair(top_k_correct(logits, labels, top_k), mask)
    c = logits.shape[-1]
    true_1h = jax.nn.one_hot(labels, c) * mask[:, None]
    pred_1h = jax.nn.one_hot(jnp.argmax(logits, -1), c)
    out["confusion"] = (true_1h.T @ pred_1h, jnp.ones(()))
    return out


def finalize_class_metrics(totals: dict[str, tuple[Any, Any]],
                           finalize: Callable[[dict[str, tuple[Any, Any]]], dict[str, Any]]
                           ) -> dict[str, Any]:
    """`finalize` (the task's mean of the other totals) plus the summed confusion matrix
    (`confusion`, for the evaluators) and its macro precision/recall/F1 over present classes."""
    totals = dict(totals)
    confusion = totals.pop("confusion", None)
    metrics = finalize(totals)
    if confusion is not None:
        metrics["confusion"] = np.asarray(confusion[0], np.float64)
        scores = per_class_scores(metrics["confusion"])
        present = scores["support"] > 0
        for name in ("precision", "recall", "f1"):
            metrics[f"macro_{name}"] = float(scores[name][present].mean()) if present.any() else 0.0
    return metrics


def uses_hf_tokenizer(config: Any) -> bool:
    """Whether the data is tokenised by a Hugging Face folder's tokenizer, or `init_from` is
    a Hugging Face folder that comes with one (which the data must then use)."""
    spec = config.dataset.tokenizer if "tokenizer" in config.dataset else ""
    if isinstance(spec, str) and spec.startswith("hf:"):
        return True
    init = config.init_from
    if not init.startswith("hf:") or not os.path.isdir(os.path.expanduser(init[3:])):
        return False
    from dl_arch.interop.hf_tokenizer import has_tokenizer

    return has_tokenizer(os.path.expanduser(init[3:]))


@register_task("classification")
class ClassificationTask(SupervisedTask):
    """Softmax cross-entropy; accuracy, top-k accuracy, confusion matrix and macro P/R/F1."""

    required_keys = ("label",)
    evaluators = ("confusion_matrix",)

    fields = {
        "label_smoothing": Field(0.0, "training targets (1 - s) one-hot + s uniform", low=0.0,
                                 high=1.0, high_open=True),
        "top_k": Field(5, "eval: top-k accuracy, reported when there are more than k classes",
                       low=1),
    }

    def __init__(self, config: Any):
        super().__init__(config)
        if uses_hf_tokenizer(config):
            run_tokenizer(config)

    def check_batch(self, batch: dict[str, Any]) -> None:
        """Also: labels beyond the model's classes are one line, not a silent wrong loss."""
        super().check_batch(batch)
        classes = self.config.model.num_classes if "num_classes" in self.config.model else 0
        top = int(np.max(batch["label"])) if np.size(batch["label"]) else -1
        if classes and top >= classes:
            raise ConfigError(f"the data has label {top}, but config.model.num_classes="
                              f"{classes}; set config.model.num_classes to at least {top + 1}")

    def loss(self, phase: str, params: Any, mutable: Variables, batch: Batch, rng: jax.Array):
        logits, new_mutable = self.apply_train(params, mutable, batch, rng)
        loss, metrics = class_train_loss(logits, batch["label"], self.config.task.label_smoothing)
        return loss, (metrics, new_mutable)

    def eval_metrics(self, variables: Variables, batch: Batch) -> MetricTotals:
        logits = self.apply_eval(variables, batch)
        return class_metric_totals(logits, batch["label"], batch["_mask"], self.config.task.top_k)

    def finalize_metrics(self, totals: dict[str, tuple[Any, Any]]) -> dict[str, Any]:
        return finalize_class_metrics(totals, super().finalize_metrics)
