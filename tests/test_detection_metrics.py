"""Our numpy COCO-style AP against pycocotools on generated detections: the numbers agree."""

from __future__ import annotations

import contextlib
import io

import numpy as np
import pytest
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from dl_arch.tasks.detection_metrics import DetectionEvaluator, iou_matrix

NUM_CLASSES = 4
IMAGE = 100.0  # pycocotools works in pixels; our boxes are normalised to [0, 1]


def make_scene(rng: np.random.Generator, num_images: int):
    """Ground truth and noisy detections (jittered hits, misses, false positives, ties)."""
    scenes = []
    for i in range(num_images):
        n_gt = int(rng.integers(0, 6))
        lo = rng.uniform(0, 0.7, (n_gt, 2))
        gt = np.concatenate([lo, lo + rng.uniform(0.05, 0.3, (n_gt, 2))], 1)
        gt_cls = rng.integers(0, NUM_CLASSES - 1, n_gt)  # the last class never has gt
        keep = rng.uniform(size=n_gt) < 0.8
        det = gt[keep] + rng.normal(0, 0.02, (int(keep.sum()), 4))
        det_cls = np.where(rng.uniform(size=len(det)) < 0.85, gt_cls[keep],
                           rng.integers(0, NUM_CLASSES, len(det)))
        n_fp = int(rng.integers(0, 4)) if i != 0 else 120  # image 0 overflows max_dets=100
        lo = rng.uniform(0, 0.8, (n_fp, 2))
        fp = np.concatenate([lo, lo + rng.uniform(0.02, 0.2, (n_fp, 2))], 1)
        det = np.concatenate([det, fp]).clip(0, 1)
        # valid boxes only (pycocotools ignores negative-area detections; ours never makes them)
        det = np.concatenate([np.minimum(det[:, :2], det[:, 2:]),
                              np.maximum(det[:, :2], det[:, 2:]) + 1e-3], 1)
        det_cls = np.concatenate([det_cls, rng.integers(0, NUM_CLASSES, n_fp)])
        scores = rng.uniform(size=len(det)).round(2)  # rounding creates score ties
        scenes.append((gt, gt_cls, det, scores, det_cls))
    return scenes


def to_xywh(b: np.ndarray) -> list[float]:
    return [b[1] * IMAGE, b[0] * IMAGE, (b[3] - b[1]) * IMAGE, (b[2] - b[0]) * IMAGE]


def pycocotools_ap(scenes) -> tuple[np.ndarray, np.ndarray]:
    """COCOeval precision `[T, R, K]` (area all, 100 dets) and its summary stats."""
    images, anns, results = [], [], []
    for i, (gt, gt_cls, det, scores, det_cls) in enumerate(scenes):
        images.append({"id": i + 1, "width": IMAGE, "height": IMAGE})
        for b, c in zip(gt, gt_cls, strict=True):
            xywh = to_xywh(b)
            anns.append({"id": len(anns) + 1, "image_id": i + 1, "category_id": int(c) + 1,
                         "bbox": xywh, "area": xywh[2] * xywh[3], "iscrowd": 0})
        for b, s, c in zip(det, scores, det_cls, strict=True):
            results.append({"image_id": i + 1, "category_id": int(c) + 1, "bbox": to_xywh(b),
                            "score": float(s)})
    with contextlib.redirect_stdout(io.StringIO()):
        coco = COCO()
        coco.dataset = {"images": images, "annotations": anns,
                        "categories": [{"id": k + 1} for k in range(NUM_CLASSES)]}
        coco.createIndex()
        ev = COCOeval(coco, coco.loadRes(results), "bbox")
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return ev.eval["precision"][:, :, :, 0, 2], ev.stats


@pytest.mark.parametrize("seed", [0, 1])
def test_ap_agrees_with_pycocotools(seed):
    scenes = make_scene(np.random.default_rng(seed), num_images=30)
    ev = DetectionEvaluator(NUM_CLASSES)
    for gt, gt_cls, det, scores, det_cls in scenes:
        ev.add_image(det, scores, det_cls, gt, gt_cls)
    ours = ev.compute()
    precision, stats = pycocotools_ap(scenes)
    assert ours["mAP50_95"] == pytest.approx(stats[0], abs=1e-9)
    assert ours["mAP50"] == pytest.approx(stats[1], abs=1e-9)
    ap = ev.per_class_ap()
    for k in range(NUM_CLASSES):
        ref = precision[:, :, k]
        if (ref == -1).all():  # no ground truth for this class: excluded by both
            assert np.isnan(ap[k]).all()
            continue
        np.testing.assert_allclose(ap[k], ref.mean(axis=1), atol=1e-9)
    assert 0.1 < ours["mAP50"] < 0.95  # a non-trivial case, not all-zero or perfect


def test_batch_padding_and_perfect_detections():
    rng = np.random.default_rng(3)
    gt = rng.uniform(0, 0.5, (2, 3, 4))
    gt[..., 2:] += 0.3
    gt_cls = np.array([[0, 1, -1], [1, -1, -1]])  # -1 = padding
    ev = DetectionEvaluator(2, class_names=["a", "b"])
    ev.add_batch(gt, np.ones((2, 3)), np.maximum(gt_cls, 0), gt_cls >= 0, gt, gt_cls,
                 image_mask=np.array([1, 1]))
    out = ev.compute()
    assert out["mAP50"] == 1.0 and out["mAP50_95"] == 1.0 and out["AP/b"] == 1.0
    assert ev.num_images == 2
    # a class with ground truth but no detection has AP 0 (pycocotools does the same)
    ev = DetectionEvaluator(2)
    ev.add_image(gt[0, :1], [0.9], [0], gt[0, :2], [0, 1])
    assert ev.compute()["AP50/1"] == 0.0 and ev.compute()["mAP50"] == pytest.approx(0.5)


def test_iou_matrix_and_bad_class():
    a = np.array([[0, 0, 1, 1], [0, 0, 0.5, 0.5]])
    np.testing.assert_allclose(iou_matrix(a, a[:1]), [[1.0], [0.25]])
    with pytest.raises(ValueError, match="num_classes"):
        DetectionEvaluator(2).add_image(a, [1, 1], [0, 5], a, [0, 1])
