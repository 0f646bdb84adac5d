"""The confusion matrix of a classifier on the eval split, as a picture and per-class scores."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from dl_arch.config.errors import ConfigError
from dl_arch.config.fields import Field
from dl_arch.evaluators.base import EvalContext, Evaluator, Report
from dl_arch.evaluators.figures import figure_image, pyplot
from dl_arch.registry import register_evaluator
from dl_arch.tasks.classification import per_class_scores


def confusion_image(confusion: np.ndarray, class_names: Sequence[str] | None = None
                    ) -> np.ndarray:
    """Row-normalised confusion matrix [true, predicted] as a heat map (RGB uint8)."""
    n = confusion.shape[0]
    rows = confusion.sum(axis=1, keepdims=True)
    norm = np.divide(confusion, rows, out=np.zeros_like(confusion, dtype=float), where=rows > 0)
    size = min(12, 2 + 0.45 * n)
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(size, size), dpi=100)
    ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
    names = list(class_names) if class_names else [str(i) for i in range(n)]
    if n <= 30:
        ax.set_xticks(range(n), names, rotation=90)
        ax.set_yticks(range(n), names)
        for i in range(n):
            for j in range(n):
                if confusion[i, j]:
                    ax.text(j, i, int(confusion[i, j]), ha="center", va="center", fontsize=7,
                            color="white" if norm[i, j] > 0.5 else "black")
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title("confusion matrix (rows normalised)")
    return figure_image(fig)


@register_evaluator("confusion_matrix", fields={
    "max_classes": Field(100, "draw the matrix only up to this many classes (the per-class "
                              "scores are always written)", low=1),
})
class ConfusionMatrix(Evaluator):
    """confusion_matrix.png and per_class_metrics.json (precision, recall, F1, support)."""

    def __call__(self, ctx: EvalContext) -> Report:
        if "confusion" not in ctx.metrics:
            raise ConfigError(f"config.evaluators lists 'confusion_matrix', but task "
                              f"'{self.config.task.name}' sums no confusion matrix; drop it")
        confusion = np.asarray(ctx.metrics["confusion"], np.float64)
        scores = per_class_scores(confusion)
        report = Report(records={"per_class_metrics": {k: v.tolist() for k, v in scores.items()}})
        if confusion.shape[0] <= self.settings.max_classes:
            names = self.config.dataset.class_names if "class_names" in self.config.dataset \
                else None
            report.images["confusion_matrix"] = confusion_image(confusion, names)
        return report
