"""The single-shot detector: parameter counts, targets, losses, AP histograms, augmentation,
TFDS adapters, overfitting one batch and the smoke config end to end."""

from __future__ import annotations

import functools
import json
import os

import chex
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest
import tensorflow_datasets as tfds

from dl_arch.data import box_augment as aug
from dl_arch.data.pipeline import make_source
from dl_arch.data.sources.detection_tfds import DetectionTFDS, to_detection_example
from dl_arch.models.cnn.common import param_count
from dl_arch.models.layers import boxes as box_lib
from dl_arch.registry import MODELS
from dl_arch.tasks.detection_metrics import DetectionEvaluator, ap_from_histograms, ap_histograms
from dl_arch.tasks.detection_targets import assign_targets, hard_negative_mask
from dl_arch.testing import first_batch, load_config, overfit_one_batch
from dl_arch.train.loop import build_task, train_and_evaluate

SMOKE = "configs/detector_shapes.py:smoke"


def numpy_iou(a, b):
    ih = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iw = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ih * iw
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)


# ------------------------------------------------------------------ model
def expected_head_params(c: int, width: int, stage_channels: list[int], k: int, depth: int) -> int:
    """Laterals (1x1) + FPN smoothing (3x3) + two towers (3x3 conv + GroupNorm) + outputs."""
    conv3 = (9 * width + 1) * width
    n = sum((ch + 1) * width for ch in stage_channels) + len(stage_channels) * conv3
    n += 2 * depth * (conv3 + 2 * width)
    return n + (9 * width + 1) * k * (c + 1) + (9 * width + 1) * k * 4


@pytest.mark.parametrize("name,backbone,stages", [
    # torchvision ResNet-18 / -50 have 11,689,512 / 25,557,032 parameters, of which the
    # 1000-way fc layer is 513,000 / 2,049,000: the backbones are the rest, exactly.
    ("ssd_resnet18", 11_689_512 - 513_000, [128, 256, 512]),
    ("ssd_resnet50", 25_557_032 - 2_049_000, [512, 1024, 2048]),
])
def test_parameter_counts_at_published_sizes(name, backbone, stages):
    model = MODELS.get(name)(num_classes=20)
    shapes = jax.eval_shape(model.init, jax.random.key(0), jnp.zeros((1, 320, 320, 3)))
    assert param_count(shapes["params"]["backbone"]) == backbone
    head = expected_head_params(20, 128, stages, k=6, depth=2)
    assert param_count(shapes["params"]) == backbone + head


def test_output_shapes_anchor_layout_and_bad_fields():
    model = MODELS.get("ssd_tiny")(num_classes=3, extra_levels=1)
    x = jnp.zeros((2, 64, 64, 3))
    variables = jax.jit(model.init)(jax.random.key(0), x)
    out = jax.jit(model.apply)(variables, x)
    # levels: stages 2, 3, 4 of a 64x64 input (8x8, 4x4, 2x2) + one extra (1x1); 6 anchors/cell
    a = (64 + 16 + 4 + 1) * 6
    chex.assert_shape([out["class_logits"], out["box_deltas"]], [(2, a, 3), (2, a, 4)])
    chex.assert_shape(out["objectness_logits"], (2, a))
    chex.assert_trees_all_close(out["anchors"], model.anchors_for([(8, 8), (4, 4), (2, 2),
                                                                   (1, 1)]))
    # the objectness prior: sigmoid(bias) = prior_prob at init
    np.testing.assert_allclose(jax.nn.sigmoid(out["objectness_logits"]).mean(), 0.01, atol=2e-3)
    with pytest.raises(ValueError, match="feature_stages"):
        jax.eval_shape(MODELS.get("ssd_tiny")(num_classes=3, feature_stages=(5,)).init,
                       jax.random.key(0), x)
    with pytest.raises(ValueError, match="backbone_features"):
        jax.eval_shape(MODELS.get("ssd_tiny")(num_classes=3, backbone="vgg11").init,
                       jax.random.key(0), x)


def test_backbone_features_equal_the_classifier_resnet_stages():
    """ResNetFeatures with a ResNet classifier's weights gives the classifier's sown stages,
    so `config.init_from` a classification run transfers the backbone unchanged."""
    from dl_arch.models.cnn.resnet import ResNet
    from dl_arch.models.detection import ResNetFeatures

    fields = dict(stage_sizes=(1, 1), block="basic", width=8, stem="small")
    x = jax.random.uniform(jax.random.key(1), (2, 16, 16, 3))
    classifier = ResNet(num_classes=5, **fields)
    variables = jax.jit(classifier.init)(jax.random.key(0), x)
    _, sown = jax.jit(lambda v, x: classifier.apply(v, x, mutable=["intermediates"]))(variables,
                                                                                      x)
    backbone_vars = {"params": {k: v for k, v in variables["params"].items() if k != "head"},
                     "batch_stats": variables["batch_stats"]}
    stages = jax.jit(ResNetFeatures(**fields).apply)(backbone_vars, x)
    for s, feat in enumerate(stages):
        chex.assert_trees_all_close(feat, sown["intermediates"][f"layer{s + 1}"][0], atol=1e-6)


def test_any_family_cnn_as_backbone_via_sown_maps():
    """A non-ResNet backbone (MobileNetV2, as in SSDLite) through the sown-maps wrapper."""
    from dl_arch.models.detection import SownFeatures

    backbone, features = "mobilenet_v2_tiny", ("group2", "group3")
    model = MODELS.get("ssd_tiny")(num_classes=3, backbone=backbone, backbone_features=features)
    x = jax.random.uniform(jax.random.key(2), (2, 32, 32, 3))
    variables = jax.jit(model.init)(jax.random.key(0), x)
    # the features are exactly the standalone CNN's sown maps, with the same weights
    net = MODELS.get(backbone)(num_classes=1)
    net_vars = {"params": variables["params"]["backbone"]["net"],
                "batch_stats": variables["batch_stats"]["backbone"]["net"]}
    _, sown = jax.jit(lambda v, x: net.apply(v, x, mutable=["intermediates"]))(net_vars, x)
    feats = jax.jit(SownFeatures(backbone, features).apply)(
        {"params": variables["params"]["backbone"],
         "batch_stats": variables["batch_stats"]["backbone"]}, x)
    for name, f in zip(features, feats, strict=True):
        chex.assert_trees_all_close(f, sown["intermediates"][name][0], atol=1e-6)
    # training mode updates the backbone's BatchNorm statistics through the wrapper
    _, new = jax.jit(lambda v, x: model.apply(v, x, train=True, mutable=["batch_stats"],
                                              rngs={"dropout": jax.random.key(3)}))(variables, x)
    before = jax.tree_util.tree_leaves(variables["batch_stats"])
    after = jax.tree_util.tree_leaves(new["batch_stats"])
    assert any(not np.allclose(a, b) for a, b in zip(before, after, strict=True))
    with pytest.raises(ValueError, match="backbone_features"):
        bad = MODELS.get("ssd_tiny")(num_classes=3, backbone=backbone, backbone_features=("x",))
        jax.eval_shape(bad.init, jax.random.key(0), x)


# ---------------------------------------------------------- targets and losses
def test_assign_targets_matches_loop_reference():
    anchors = box_lib.make_anchors([(4, 4), (2, 2)], [0.25, 0.5], [1.0, 2.0])
    gt = np.array([[0.1, 0.1, 0.4, 0.35], [0.5, 0.45, 0.95, 0.9], [0.3, 0.3, 0.32, 0.33],
                   [0, 0, 0, 0]], np.float32)
    labels = np.array([2, 0, 1, -1])
    matched, pos, neg = jax.jit(assign_targets)(anchors, gt, labels)
    ious = np.array([[numpy_iou(a, g) if lab >= 0 else -1 for g, lab in zip(gt, labels,
                                                                              strict=True)]
                     for a in anchors])
    best, best_iou = ious.argmax(1), ious.max(1)
    forced = {int(ious[:, g].argmax()): g for g in range(3)}
    for i in range(len(anchors)):
        exp_match = forced.get(i, best[i])
        exp_pos = i in forced or best_iou[i] >= 0.5
        assert bool(pos[i]) == exp_pos
        assert bool(neg[i]) == (not exp_pos and best_iou[i] < 0.4)
        if exp_pos:
            assert int(matched[i]) == exp_match
    # the tiny third box overlaps no anchor at 0.5 but is still assigned (forced match)
    assert (np.asarray(matched)[np.asarray(pos)] == 2).sum() >= 1


def test_hard_negative_mask_keeps_hardest():
    loss = jnp.array([[0.9, 0.1, 0.5, 0.7, 0.3, 0.2], [0.4, 0.8, 0.6, 0.1, 0.2, 0.3]])
    pos = jnp.array([[1, 0, 0, 0, 0, 0], [0, 0, 0, 0, 0, 0]], bool)
    neg = jnp.array([[0, 1, 1, 1, 1, 0], [1, 1, 1, 1, 1, 1]], bool)
    mask = hard_negative_mask(loss, pos, neg, neg_pos_ratio=2, min_negatives=1)
    # image 0: one positive -> the 2 hardest negatives (0.7, 0.5); image 1: min 1 -> 0.8
    np.testing.assert_array_equal(mask, [[0, 0, 1, 1, 0, 0], [0, 1, 0, 0, 0, 0]])


def test_box_losses_vanish_for_perfect_regression():
    config = load_config(SMOKE)
    config.task.box_loss = "both"
    task = build_task(config)
    anchors = jnp.asarray(box_lib.make_anchors([(4, 4)], [0.3], [1.0]))
    gt = jnp.array([[[0.1, 0.1, 0.45, 0.4], [0.5, 0.5, 0.9, 0.95]]])
    labels = jnp.array([[1, 3]])
    matched, _, _ = assign_targets(anchors, gt[0], labels[0])
    deltas = box_lib.encode_boxes(gt[0][matched], anchors)[None]
    outputs = {"anchors": anchors, "box_deltas": deltas,
               "objectness_logits": jnp.zeros((1, 16)), "class_logits": jnp.zeros((1, 16, 4))}
    terms = jax.jit(task.losses)(outputs, {"boxes": gt, "box_labels": labels})
    np.testing.assert_allclose(terms["smooth_l1_loss"], 0.0, atol=1e-5)
    np.testing.assert_allclose(terms["giou_loss"], 0.0, atol=1e-5)
    # uniform class logits: cross-entropy is log(C) per positive
    np.testing.assert_allclose(terms["class_loss"], np.log(4), rtol=1e-5)
    assert float(terms["objectness_loss"][0]) > 0


def test_ap_histograms_agree_with_exact_evaluator():
    rng = np.random.default_rng(5)
    b, m, g, c = 6, 12, 4, 3
    gt = rng.uniform(0, 0.6, (b, g, 4)).astype(np.float32)
    gt[..., 2:] = gt[..., :2] + rng.uniform(0.1, 0.4, (b, g, 2))
    gt_labels = rng.integers(-1, c, (b, g)).astype(np.int32)
    det_boxes = np.concatenate([gt + rng.normal(0, 0.03, gt.shape),
                                rng.uniform(0, 1, (b, m - g, 4))], 1).astype(np.float32)
    det_boxes[..., 2:] = np.maximum(det_boxes[..., 2:], det_boxes[..., :2] + 0.01)
    scores = rng.uniform(size=(b, m)).astype(np.float32)
    order = np.argsort(-scores, axis=1)
    dets = {"boxes": np.take_along_axis(det_boxes, order[..., None], 1),
            "scores": np.take_along_axis(scores, order, 1),
            "classes": np.take_along_axis(np.concatenate(
                [np.maximum(gt_labels, 0), rng.integers(0, c, (b, m - g))], 1), order, 1),
            "valid": np.ones((b, m), bool)}
    mask = np.array([1, 1, 1, 1, 1, 0], np.float32)
    hist = jax.jit(ap_histograms, static_argnums=(4, 5))(
        dets, gt, gt_labels, mask, c, 10_000)
    ap = ap_from_histograms(hist["tp"], hist["fp"], hist["num_gt"])
    ev = DetectionEvaluator(c)
    ev.add_batch(dets["boxes"], dets["scores"], dets["classes"], dets["valid"], gt, gt_labels,
                 mask)
    np.testing.assert_allclose(ap, ev.per_class_ap().T, atol=1e-6)


# ---------------------------------------------------------------- augmentation
def painted(size: int, boxes: np.ndarray) -> np.ndarray:
    """A black image with each box painted white: pixels tell where the box went."""
    img = np.zeros((size, size, 3), np.float32)
    for y0, x0, y1, x1 in (boxes * size).round().astype(int):
        img[y0:y1, x0:x1] = 1.0
    return img


def pixel_box(image: np.ndarray) -> np.ndarray:
    ys, xs = np.nonzero(image[..., 0] > 0.5)
    n = image.shape[0]
    return np.array([ys.min(), xs.min(), ys.max() + 1, xs.max() + 1]) / n


@pytest.mark.parametrize("seed", range(4))
def test_crop_and_flip_move_boxes_with_pixels(seed):
    box = np.array([[0.25, 0.5, 0.625, 0.875]], np.float32)
    example = {"image": painted(64, box), "boxes": box, "box_labels": np.array([2]),
               "label": np.int32(2)}
    cfg = {"image_size": 48, "max_objects": 3, "augment": True, "crop_prob": 1.0,
           "flip_prob": 0.5, "min_crop_scale": 0.6}
    out = aug.augment_boxes(example, np.random.default_rng(seed), cfg, train=True)
    chex.assert_shape([out["image"], out["boxes"]], [(48, 48, 3), (3, 4)])
    np.testing.assert_array_equal(out["box_labels"], [2, -1, -1])
    # the painted rectangle lands where the transformed box says (within ~1.5 pixels)
    np.testing.assert_allclose(pixel_box(out["image"]), out["boxes"][0], atol=1.6 / 48)


def test_resize_matches_jax_image_resize_and_eval_is_deterministic():
    img = np.random.default_rng(0).uniform(size=(20, 30, 3)).astype(np.float32)
    ours = aug.crop_and_resize(img, (0.0, 0.0, 1.0, 1.0), (40, 45))
    ref = jax.image.resize(img, (40, 45, 3), "linear", antialias=False)
    np.testing.assert_allclose(ours, ref, atol=1e-5)
    np.testing.assert_allclose(aug.flip_boxes(aug.flip_boxes(np.array([[.1, .2, .3, .6]]))),
                               [[.1, .2, .3, .6]], atol=1e-7)
    example = {"image": img, "boxes": np.array([[.1, .2, .3, .6]], np.float32),
               "box_labels": np.array([1])}
    out = aug.augment_boxes(example, np.random.default_rng(0), {"image_size": 16, "augment": True},
                            train=False)
    np.testing.assert_allclose(out["boxes"][0], [.1, .2, .3, .6])
    with pytest.raises(ValueError, match="min_crop_scale"):
        aug.augment_boxes(example, np.random.default_rng(0),
                          {"augment": True, "min_crop_scale": 0.0}, train=True)


# ---------------------------------------------------------------- TFDS adapters
def test_voc_adapter_on_mock_data():
    cfg = {"name": "voc", "max_objects": 5}
    with tfds.testing.mock_data(num_examples=4):
        source = make_source(ml_collections.ConfigDict(cfg), "train", 0)
        assert len(source) == 4
        ex = source[1]
    chex.assert_shape([ex["boxes"], ex["box_labels"]], [(5, 4), (5,)])
    assert ex["image"].dtype == np.uint8 and ex["image"].shape[-1] == 3
    real = ex["box_labels"] >= 0
    assert (ex["box_labels"][real] < 20).all() and (ex["boxes"][~real] == 0).all()
    assert ((ex["boxes"] >= 0) & (ex["boxes"] <= 1)).all()


def test_coco_style_example_mapping():
    """COCO's TFDS builder needs TensorFlow even under mock_data, so its mapping is fed a
    hand-made example with the COCO feature layout."""
    example = {"image": np.zeros((10, 20), np.uint8),  # greyscale image
               "objects": {"bbox": np.array([[0, 0, .5, .5], [.1, .1, .9, .9], [0, 0, .2, .2]]),
                           "label": np.array([3, 7, 1]),
                           "is_crowd": np.array([False, False, True])}}

    class Fake:
        def __len__(self):
            return 1

        def __getitem__(self, i):
            return example

    ex = DetectionTFDS(Fake(), max_objects=4, drop_key="is_crowd")[0]
    np.testing.assert_array_equal(ex["box_labels"], [7, 3, -1, -1])  # largest first, no crowd
    assert ex["label"] == 7 and ex["image"].shape == (10, 20, 3)
    truncated = to_detection_example(example, max_objects=1, drop=None)
    np.testing.assert_array_equal(truncated["box_labels"], [7])


# ---------------------------------------------------------------- training
def test_overfits_one_batch():
    config = load_config(SMOKE)
    config.optimizer.learning_rate = 3e-3
    config.optimizer.schedule = "constant"
    config.optimizer.warmup_steps = 0
    config.batch_size = 4
    # two same-class boxes of this batch overlap at IoU 0.49: at the default nms_iou=0.5,
    # NMS removes one of them whenever the fitted boxes overlap a little more (mAP50 0.83)
    config.task.nms_iou = 0.7
    history, state = overfit_one_batch(config, steps=120)
    assert history[-1]["loss"] < 0.25 * history[0]["loss"]
    task = build_task(config)
    batch = jax.device_get(first_batch(config, task))
    dets = jax.device_get(jax.jit(task.detect)({"params": state.params, **state.mutable},
                                               batch["image"]))
    ev = DetectionEvaluator(config.model.num_classes)
    ev.add_batch(dets["boxes"], dets["scores"], dets["classes"], dets["valid"], batch["boxes"],
                 batch["box_labels"])
    assert ev.compute()["mAP50"] > 0.9


def test_smoke_config_end_to_end(tmp_path):
    config = load_config(SMOKE)
    summary = train_and_evaluate(config, str(tmp_path))
    assert "eval/mAP50" in summary and np.isfinite(summary["eval/loss"])
    with open(os.path.join(tmp_path, "detection_metrics.json")) as f:
        exact = json.load(f)
    assert {"mAP50", "mAP50_95"} <= set(exact)
    # the coco_ap evaluator's scalars beside the in-loop histogram AP (same binned protocol)
    assert summary["eval/coco/mAP50"] == pytest.approx(exact["mAP50"])
    assert abs(summary["eval/coco/mAP50"] - summary["eval/mAP50"]) < 0.05
    assert os.path.exists(os.path.join(tmp_path, "detections.png"))
    assert os.path.exists(os.path.join(tmp_path, "images", "detections_000006.png"))


def test_voc_config_pipeline_on_mock_data():
    """configs/detector_voc.py:smoke: TFDS mock VOC -> adapter -> augmentation -> batch -> loss."""
    config = load_config("configs/detector_voc.py:smoke")
    with tfds.testing.mock_data(num_examples=8):
        task = build_task(config)
        batch = first_batch(config, task)
    chex.assert_shape([batch["image"], batch["boxes"], batch["box_labels"]],
                      [(4, 64, 64, 3), (4, 50, 4), (4, 50)])
    variables = jax.eval_shape(task.init_variables, jax.random.key(0), batch)
    params = variables.pop("params")
    loss, (metrics, _) = jax.eval_shape(functools.partial(task.loss, "all"), params, variables,
                                        batch, jax.random.key(1))
    assert loss.shape == () and "giou_loss" in metrics


@pytest.mark.parametrize("arg", ["smoke", ""])
def test_coco_config_builds_with_80_classes(arg):
    config = load_config(f"configs/detector_coco.py:{arg}")
    task = build_task(config)
    size = config.dataset.image_size
    batch = {"image": jnp.zeros((2, size, size, 3)),
             "boxes": jnp.tile(jnp.array([0.1, 0.1, 0.5, 0.6]), (2, 100, 1)),
             "box_labels": jnp.full((2, 100), 79, jnp.int32)}
    variables = jax.eval_shape(task.init_variables, jax.random.key(0), batch)
    params = variables.pop("params")
    out = jax.eval_shape(task.model.apply, {"params": params, **variables}, batch["image"])
    assert out["class_logits"].shape[-1] == 80 == len(config.dataset.class_names)
    loss, _ = jax.eval_shape(functools.partial(task.loss, "all"), params, variables, batch,
                             jax.random.key(1))
    assert loss.shape == ()
