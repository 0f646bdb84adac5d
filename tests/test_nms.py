"""Jitted fixed-size per-class NMS against a plain numpy greedy NMS."""

from __future__ import annotations

import chex
import jax
import numpy as np
import pytest

from dl_arch.models.layers.nms import batched_nms, nms_single


def numpy_nms(boxes: np.ndarray, scores: np.ndarray, iou_thr: float, score_thr: float,
              max_det: int, top_k: int) -> list[tuple[int, int, float]]:
    """(box index, class, score) of kept detections, best first: textbook per-class loop."""
    flat = scores.reshape(-1)
    cand = np.argsort(-flat, kind="stable")[:top_k]
    cand = [i for i in cand if flat[i] > score_thr]
    kept = []
    for c in range(scores.shape[1]):
        mine = [i // scores.shape[1] for i in cand if i % scores.shape[1] == c]
        alive = list(mine)  # already in score order
        while alive:
            best = alive.pop(0)
            kept.append((best, c, float(scores[best, c])))
            survivors = []
            for j in alive:
                b, o = boxes[best], boxes[j]
                ih = max(0.0, min(b[2], o[2]) - max(b[0], o[0]))
                iw = max(0.0, min(b[3], o[3]) - max(b[1], o[1]))
                inter = ih * iw
                union = ((b[2] - b[0]) * (b[3] - b[1]) + (o[2] - o[0]) * (o[3] - o[1]) - inter)
                if inter / union <= iou_thr:
                    survivors.append(j)
            alive = survivors
    kept.sort(key=lambda t: -t[2])
    return kept[:max_det]


def clustered_boxes(rng: np.random.Generator, n: int) -> np.ndarray:
    """Boxes jittered around a few centres, so many overlap and NMS has work to do."""
    centres = rng.uniform(0.2, 0.8, (4, 2))
    c = centres[rng.integers(0, 4, n)] + rng.normal(0, 0.04, (n, 2))
    hw = rng.uniform(0.1, 0.3, (n, 2))
    return np.concatenate([c - hw / 2, c + hw / 2], 1).astype(np.float32)


@pytest.mark.parametrize("top_k", [10_000, 40])
def test_nms_matches_numpy(top_k):
    rng = np.random.default_rng(0)
    boxes = clustered_boxes(rng, 60)
    scores = rng.uniform(size=(60, 3)).astype(np.float32) ** 2
    opts = dict(iou_threshold=0.45, score_threshold=0.1, max_detections=25, pre_nms_top_k=top_k)
    out = jax.jit(lambda b, s: nms_single(b, s, **opts))(boxes, scores)
    ref = numpy_nms(boxes, scores, 0.45, 0.1, 25, top_k)
    n = int(out["valid"].sum())
    assert n == len(ref) and 0 < n
    chex.assert_shape(out["boxes"], (25, 4))
    np.testing.assert_allclose(out["scores"][:n], [r[2] for r in ref], rtol=1e-6)
    np.testing.assert_array_equal(out["classes"][:n], [r[1] for r in ref])
    np.testing.assert_allclose(out["boxes"][:n], boxes[[r[0] for r in ref]], atol=1e-7)
    assert not out["valid"][n:].any() and (out["classes"][n:] == -1).all()


def test_per_class_and_batched():
    # two identical boxes: different classes both survive, same class keeps only the best
    boxes = np.array([[0.1, 0.1, 0.5, 0.5], [0.1, 0.1, 0.5, 0.5], [0.6, 0.6, 0.9, 0.9]],
                     np.float32)
    scores = np.array([[0.9, 0.8], [0.7, 0.1], [0.0, 0.6]], np.float32)
    out = nms_single(boxes, scores, iou_threshold=0.5, score_threshold=0.05, max_detections=10,
                     pre_nms_top_k=100)
    got = [(round(s, 4), c) for s, c in zip(out["scores"][out["valid"]].tolist(),
                                            out["classes"][out["valid"]].tolist(), strict=True)]
    # (box1, class0, 0.7) and (box1, class1, 0.1) are suppressed by box0 of their class
    assert got == [(0.9, 0), (0.8, 1), (0.6, 1)]
    # batched: equals per-image calls; output size is fixed even with few candidates
    rng = np.random.default_rng(1)
    b = np.stack([clustered_boxes(rng, 5) for _ in range(3)])
    s = rng.uniform(size=(3, 5, 2)).astype(np.float32)
    batched = jax.jit(lambda x, y: batched_nms(x, y, max_detections=20))(b, s)
    chex.assert_shape(batched["boxes"], (3, 20, 4))
    for i in range(3):
        single = nms_single(b[i], s[i], iou_threshold=0.5, score_threshold=0.05,
                            max_detections=20, pre_nms_top_k=1000)
        chex.assert_trees_all_close({k: v[i] for k, v in batched.items()}, single)
