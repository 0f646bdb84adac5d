"""Per-object IoU of a predicted class map, for scoring segmentation by object size.

A mean IoU over the split is dominated by large objects; to ask whether a model keeps fine
detail, each ground-truth object is scored on its own: its pixels are the pixels of its
class inside its box (`boxes`, `box_labels` as `shapes` gives them), and the prediction
counted against it is the pixels predicted as that class inside the box grown by `margin`
of its side on every edge (so a blob spilling past the object counts as error). Objects
are then pooled into size bins by their pixel count, and each bin's IoU is its summed
intersection over its summed union. The `iou_by_size` evaluator reports those IoUs.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from dl_arch.config.errors import ConfigError
from dl_arch.config.fields import Field
from dl_arch.evaluators.base import EvalContext, Evaluator, Report
from dl_arch.registry import register_evaluator


def object_overlaps(pred_BHW: np.ndarray, mask_BHW: np.ndarray, boxes_BG4: np.ndarray,
                    box_labels_BG: np.ndarray, margin: float = 0.25
                    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(object pixel counts, intersections, unions), one entry per real object.

    `boxes` are (ymin, xmin, ymax, xmax) in [0, 1]; `box_labels` are shape kinds (-1 =
    padding), so an object's mask class is its kind + 1 (class 0 is the background).
    """
    _, h, w = mask_BHW.shape
    sizes, inters, unions = [], [], []
    for b, g in zip(*np.nonzero(box_labels_BG >= 0)):
        y0, x0, y1, x1 = boxes_BG4[b, g] * np.array([h, w, h, w])
        cls = int(box_labels_BG[b, g]) + 1
        inside = np.zeros((h, w), bool)
        inside[int(np.floor(y0)):int(np.ceil(y1)), int(np.floor(x0)):int(np.ceil(x1))] = True
        truth = inside & (mask_BHW[b] == cls)
        my, mx = margin * (y1 - y0), margin * (x1 - x0)
        grown = np.zeros((h, w), bool)
        grown[max(0, int(np.floor(y0 - my))):int(np.ceil(y1 + my)),
              max(0, int(np.floor(x0 - mx))):int(np.ceil(x1 + mx))] = True
        guess = grown & (pred_BHW[b] == cls)
        sizes.append(int(truth.sum()))
        inters.append(int((truth & guess).sum()))
        unions.append(int((truth | guess).sum()))
    return np.array(sizes, np.int64), np.array(inters, np.int64), np.array(unions, np.int64)


def binned_iou(sizes: np.ndarray, inters: np.ndarray, unions: np.ndarray,
               edges: tuple[int, ...]) -> list[tuple[int, float]]:
    """(object count, IoU) per size bin: bin i holds objects with edges[i-1] <= size <
    edges[i] (open-ended first and last bins); an empty bin's IoU is NaN."""
    which = np.searchsorted(np.asarray(edges), sizes, side="right")
    out = []
    for i in range(len(edges) + 1):
        rows = which == i
        union = unions[rows].sum()
        out.append((int(rows.sum()), float(inters[rows].sum() / union) if union else float("nan")))
    return out


SIZE_BINS = ("small", "medium", "large")


@register_evaluator("iou_by_size", fields={
    "size_edges": Field((0.02, 0.06), "object areas, as fractions of the image, that separate "
                                      "small | medium | large objects",
                        each=Field(0.02, "an area fraction", low=0.0, high=1.0, low_open=True)),
    "margin": Field(0.25, "prediction counted in each object's box grown by this fraction of "
                          "its side on every edge", low=0.0),
})
class IoUBySize(Evaluator):
    """eval/iou_small, eval/iou_medium, eval/iou_large (and object counts) over the eval split:
    does a segmenter keep the detail of small objects? Needs `boxes`/`box_labels` in the eval
    batches (`shapes` with masks gives them)."""

    def __init__(self, config: ml_collections.ConfigDict, task: Any):
        super().__init__(config, task)
        self.needs("predict_jit", "inputs")
        edges = tuple(self.settings.size_edges)
        if len(edges) != 2 or edges[0] >= edges[1]:
            raise ConfigError(f"config.iou_by_size.size_edges={edges}: give two increasing area "
                              f"fractions (small | medium | large)")

    def __call__(self, ctx: EvalContext) -> Report:
        parts: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
        area = 0
        for batch in ctx.eval_batches():
            if "boxes" not in batch or "box_labels" not in batch:
                raise ConfigError(f"iou_by_size needs boxes in the eval batches, which "
                                  f"config.dataset.name='{self.config.dataset.name}' does not "
                                  f"give; drop iou_by_size from config.evaluators")
            preds = np.asarray(jax.device_get(self.task.predict_jit(
                ctx.variables, jnp.asarray(self.task.inputs(batch)))))
            real = np.asarray(batch["_mask"]) > 0
            labels = np.where(real[:, None], np.asarray(batch["box_labels"]), -1)
            parts.append(object_overlaps(preds, np.asarray(batch["mask"]),
                                         np.asarray(batch["boxes"]), labels, self.settings.margin))
            area = preds.shape[1] * preds.shape[2]
        sizes, inters, unions = (np.concatenate(p) for p in zip(*parts))
        edges = tuple(e * area for e in self.settings.size_edges)
        scalars = {}
        for name, (count, iou) in zip(SIZE_BINS, binned_iou(sizes, inters, unions, edges)):
            scalars[f"objects_{name}"] = float(count)
            if count:
                scalars[f"iou_{name}"] = iou
        return Report(scalars=scalars)
