"""Detector train step and jitted per-class NMS: images/s, MFU, and NMS vs a numpy NMS.

    python -m benchmarks.run --only detection [--quick]
    python -m benchmarks.bench_detection [--quick]

Rows:
- the full train step of `configs/detector_shapes.py` (tiny ResNet + FPN + anchor head,
  64x64, batch 32; target assignment and losses included), through the shared loop's
  `train_step`; no reference implementation of this exact detector exists to compare.
- post-processing of a batch (decode + score + per-class NMS, fixed output size) in one
  `jit`, against the textbook host-side alternative: numpy per-class greedy NMS (the
  Fast R-CNN `py_cpu_nms` loop) over the same top-k candidates, image by image.
"""

from __future__ import annotations

from collections.abc import Iterable

import jax
import jax.numpy as jnp
import numpy as np

from benchmarks.harness import Row, compare, mfu_text
from benchmarks.loop_step import loop_stepper
from dl_arch.models.layers.nms import batched_nms
from dl_arch.testing import load_config
from dl_arch.train.flops import step_flops
from dl_arch.train.trainer import Trainer


def numpy_class_nms(boxes: np.ndarray, scores: np.ndarray, iou_thr: float) -> np.ndarray:
    """Indices kept by greedy NMS of one class (vectorised over the remaining boxes)."""
    order = np.argsort(-scores)
    area = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    keep = []
    while order.size:
        i = order[0]
        keep.append(i)
        rest = order[1:]
        h = np.maximum(0, np.minimum(boxes[i, 2], boxes[rest, 2]) - np.maximum(boxes[i, 0],
                                                                               boxes[rest, 0]))
        w = np.maximum(0, np.minimum(boxes[i, 3], boxes[rest, 3]) - np.maximum(boxes[i, 1],
                                                                               boxes[rest, 1]))
        inter = h * w
        iou = inter / (area[i] + area[rest] - inter)
        order = rest[iou <= iou_thr]
    return np.asarray(keep, int)


def numpy_postprocess(boxes_BN4: np.ndarray, scores_BNC: np.ndarray, top_k: int,
                      score_thr: float, iou_thr: float, max_det: int) -> list[np.ndarray]:
    """Host reference: top-k candidates, threshold, per-class NMS, best `max_det` per image."""
    out = []
    for boxes, scores in zip(boxes_BN4, scores_BNC, strict=True):
        c = scores.shape[1]
        flat = scores.reshape(-1)
        cand = np.argpartition(-flat, top_k - 1)[:top_k]
        cand = cand[flat[cand] > score_thr]
        kept = []
        for k in range(c):
            idx = cand[cand % c == k]
            sel = numpy_class_nms(boxes[idx // c], flat[idx], iou_thr)
            kept.append(idx[sel])
        kept = np.concatenate(kept)
        out.append(kept[np.argsort(-flat[kept])][:max_det])
    return out


def train_row(quick: bool) -> Row:
    config = load_config("configs/detector_shapes.py")
    trainer = Trainer(config)
    ours, held = loop_stepper(trainer, trainer.first_batch())
    flops = step_flops(held["step"], held["state"], held["batch"], held["window"])
    n = config.batch_size
    size = config.dataset.image_size
    return compare(f"detection/ssd_tiny {size}x{size} train step b={n}", ours, None, quick=quick,
                   extra=lambda s: f"images/s={n / s:.0f} {mfu_text(flops, s, quick)}")


def nms_row(quick: bool) -> Row:
    b, a, c = (8 if quick else 32), 672, 4  # anchors/classes of configs/detector_shapes.py
    rng = np.random.default_rng(0)
    centres = rng.uniform(0.1, 0.9, (b, a, 2))
    hw = rng.uniform(0.05, 0.4, (b, a, 2))
    boxes = np.concatenate([centres - hw / 2, centres + hw / 2], -1).astype(np.float32)
    scores = (rng.uniform(size=(b, a, c)) ** 4).astype(np.float32)  # mostly low, like a detector
    opts = dict(iou_threshold=0.5, score_threshold=0.05, max_detections=100, pre_nms_top_k=400)
    ours_fn = jax.jit(lambda x, s: batched_nms(x, s, **opts))
    boxes_j, scores_j = jnp.asarray(boxes), jnp.asarray(scores)
    # same detections: check once before timing
    got = jax.device_get(ours_fn(boxes_j, scores_j))
    ref = numpy_postprocess(boxes, scores, 400, 0.05, 0.5, 100)
    for i in range(b):
        assert int(got["valid"][i].sum()) == len(ref[i]), "NMS disagrees with numpy"
    return compare(f"detection/per-class NMS 400->100 b={b}", lambda: ours_fn(boxes_j, scores_j),
                   lambda: numpy_postprocess(boxes, scores, 400, 0.05, 0.5, 100),
                   ref_name="numpy", quick=quick, extra=lambda s: f"images/s={b / s:.0f}")


def rows(quick: bool) -> Iterable[Row]:
    """Train step (images/s, MFU) and jitted NMS vs numpy NMS."""
    yield train_row(quick)
    yield nms_row(quick)


if __name__ == "__main__":
    from benchmarks.run import main_for

    main_for("detection")
