"""Segmentation scores from a pixel confusion matrix [true, predicted] (pure numpy, host side).

With n_ij the pixels of class i predicted as class j and t_i = sum_j n_ij the pixels of
class i (Long et al. 2015, "Fully convolutional networks for semantic segmentation", sec. 5):

    pixel accuracy   sum_i n_ii / sum_i t_i
    mean accuracy    mean over classes with t_i > 0 of n_ii / t_i
    IoU_i            n_ii / (t_i + sum_j n_ji - n_ii)
    mean IoU         mean of IoU_i over classes with a non-zero union, i.e. present in the
                     ground truth or predicted somewhere (VOC's convention)
    f.w. IoU         sum_i t_i IoU_i / sum_i t_i

A class with nothing to score (t_i = 0 for the accuracy, an empty union for the IoU) is left
out of the means instead of counting as 0 or 1, so adding unused classes to a model changes
no score; its entry of `class_iou` is NaN. An empty matrix scores 0 everywhere.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def class_iou(confusion: np.ndarray) -> np.ndarray:
    """IoU_i per class (NaN where the class is neither in the ground truth nor predicted)."""
    confusion = np.asarray(confusion, np.float64)
    hits = np.diag(confusion)
    union = confusion.sum(axis=1) + confusion.sum(axis=0) - hits
    return np.divide(hits, union, out=np.full_like(hits, np.nan), where=union > 0)


def class_accuracy(confusion: np.ndarray) -> np.ndarray:
    """n_ii / t_i per class (NaN where the class has no ground-truth pixel)."""
    confusion = np.asarray(confusion, np.float64)
    hits, truth = np.diag(confusion), confusion.sum(axis=1)
    return np.divide(hits, truth, out=np.full_like(hits, np.nan), where=truth > 0)


def _mean(values: np.ndarray) -> float:
    kept = values[~np.isnan(values)]
    return float(kept.mean()) if kept.size else 0.0


def segmentation_scores(confusion: np.ndarray) -> dict[str, float]:
    """pixel_accuracy, mean_accuracy, mean_iou and fw_iou of a confusion matrix (module doc)."""
    confusion = np.asarray(confusion, np.float64)
    truth = confusion.sum(axis=1)
    total = truth.sum()
    iou = class_iou(confusion)
    if total <= 0:
        return {"pixel_accuracy": 0.0, "mean_accuracy": 0.0, "mean_iou": 0.0, "fw_iou": 0.0}
    return {
        "pixel_accuracy": float(np.trace(confusion) / total),
        "mean_accuracy": _mean(class_accuracy(confusion)),
        "mean_iou": _mean(iou),
        "fw_iou": float(np.sum(truth * np.nan_to_num(iou)) / total),
    }


def class_keys(class_names: Sequence[str] | None, num_classes: int) -> list[str]:
    """One name per class: the given names, `class_<k>` past their end (or without names)."""
    names = [str(n) for n in (class_names or ())][:num_classes]
    return names + [f"class_{k}" for k in range(len(names), num_classes)]


def metric_key(name: str) -> str:
    """A class name as a metric key part: blanks and slashes become '_' ('traffic light')."""
    return "_".join(name.replace("/", " ").split()) or "_"
