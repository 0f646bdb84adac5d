"""Classification: softmax cross-entropy; accuracy, top-k, per-class precision/recall/F1."""

from __future__ import annotations

import json
import os
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

from dl_arch.config.fields import Field
from dl_arch.registry import register_task
from dl_arch.tasks.base import Batch, MetricTotals, Variables, masked_mean_pair
from dl_arch.tasks.supervised import SupervisedTask


def cross_entropy(logits: jax.Array, labels: jax.Array, label_smoothing: float = 0.0) -> jax.Array:
    """Per-example softmax cross-entropy in float32, with optional label smoothing."""
    logits = logits.astype(jnp.float32)
    if label_smoothing:
        num_classes = logits.shape[-1]
        targets = optax.smooth_labels(jax.nn.one_hot(labels, num_classes), label_smoothing)
        return optax.softmax_cross_entropy(logits, targets)
    return optax.softmax_cross_entropy_with_integer_labels(logits, labels)


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


@register_task("classification")
class ClassificationTask(SupervisedTask):
    """Softmax cross-entropy; accuracy, top-k accuracy, confusion matrix and macro P/R/F1."""

    required_keys = ("label",)

    fields = {
        "label_smoothing": Field(0.0, "training targets (1 - s) one-hot + s uniform", low=0.0,
                                 high=1.0, high_open=True),
        "top_k": Field(5, "eval: top-k accuracy, reported when there are more than k classes",
                       low=1),
        "confusion_matrix": Field(True, "eval: confusion matrix, per-class and macro P/R/F1"),
    }

    def __init__(self, config: Any):
        super().__init__(config)
        self.last_confusion: np.ndarray | None = None

    def loss(self, phase: str, params: Any, mutable: Variables, batch: Batch, rng: jax.Array):
        logits, new_mutable = self.apply_train(params, mutable, batch, rng)
        labels = batch["label"]
        loss = cross_entropy(logits, labels, self.config.task.label_smoothing).mean()
        accuracy = jnp.mean(jnp.argmax(logits, -1) == labels)
        return loss, ({"accuracy": accuracy}, new_mutable)

    def eval_metrics(self, variables: Variables, batch: Batch) -> MetricTotals:
        logits = self.apply_eval(variables, batch)
        labels, mask = batch["label"], batch["_mask"]
        k = self.config.task.top_k
        out = {
            "loss": masked_mean_pair(cross_entropy(logits, labels), mask),
            "accuracy": masked_mean_pair(jnp.argmax(logits, -1) == labels, mask),
        }
        if logits.shape[-1] > k:
            out[f"top{k}_accuracy"] = masked_mean_pair(top_k_correct(logits, labels, k), mask)
        if self.config.task.confusion_matrix:
            c = logits.shape[-1]
            true_1h = jax.nn.one_hot(labels, c) * mask[:, None]
            pred_1h = jax.nn.one_hot(jnp.argmax(logits, -1), c)
            out["confusion"] = (true_1h.T @ pred_1h, jnp.ones(()))
        return out

    def finalize_metrics(self, totals: dict[str, tuple[Any, Any]]) -> dict[str, Any]:
        totals = dict(totals)
        confusion = totals.pop("confusion", None)
        metrics = super().finalize_metrics(totals)
        if confusion is not None:
            self.last_confusion = np.asarray(confusion[0], np.float64)
            scores = per_class_scores(self.last_confusion)
            present = scores["support"] > 0
            for name in ("precision", "recall", "f1"):
                metrics[f"macro_{name}"] = float(scores[name][present].mean()) if present.any() else 0.0
        return metrics

    def host_report(self, variables: Variables, batch: dict[str, Any], step: int, workdir: str,
                    writer: Any, final: bool) -> None:
        if not final or self.last_confusion is None:
            return
        from dl_arch.tasks.plots import save_confusion_matrix

        scores = per_class_scores(self.last_confusion)
        with open(os.path.join(workdir, "per_class_metrics.json"), "w") as f:
            json.dump({k: v.tolist() for k, v in scores.items()}, f)
        if self.last_confusion.shape[0] <= 100:
            save_confusion_matrix(self.last_confusion, os.path.join(workdir, "confusion_matrix.png"),
                                  class_names=self.config.dataset.class_names)
