"""The `segmentation` task: losses and eval metrics against numpy written from their
definitions, the `segmentation_masks` pictures, `--sample` on image files, and a short run.

The model is a two-layer probe registered here (optionally with a sown auxiliary head), so
these tests pin the task, not any architecture of the family.
"""

from __future__ import annotations

import json
import os
from typing import Any

import chex
import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest
from PIL import Image

from configs.base import base_config
from dl_arch.config.errors import ConfigError
from dl_arch.data.masks import IGNORE_LABEL
from dl_arch.evaluators.base import EvalContext
from dl_arch.registry import register_model
from dl_arch.tasks.mask_pictures import IGNORE_COLOUR, class_palette
from dl_arch.tasks.segmentation import soft_dice_loss
from dl_arch.tasks.segmentation_metrics import segmentation_scores
from dl_arch.train.trainer import Trainer

C = 4  # background + 3 shape kinds


@register_model("seg_probe")
class SegProbe(nn.Module):
    """3x3 conv -> relu -> 1x1 class logits at the input resolution (+ a sown aux head)."""

    num_classes: int = 2
    features: int = 8
    aux_head: bool = False
    dtype: Any = jnp.float32
    param_dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x, *, train: bool = False):
        h = nn.relu(nn.Conv(self.features, (3, 3), dtype=self.dtype, name="conv")(x))
        if self.aux_head:
            self.sow("aux_logits", "aux",
                     nn.Conv(self.num_classes, (1, 1), name="aux_head")(h).astype(jnp.float32))
        return nn.Conv(self.num_classes, (1, 1), name="head")(h).astype(jnp.float32)


def seg_config(**task: Any) -> ml_collections.ConfigDict:
    c = base_config()
    c.task = ml_collections.ConfigDict({"name": "segmentation", **task})
    c.model = ml_collections.ConfigDict({"name": "seg_probe", "num_classes": C})
    c.dataset = ml_collections.ConfigDict(dict(
        name="shapes", masks=True, image_size=16, num_classes=C - 1, num_objects=2,
        max_objects=2, num_train_examples=64, num_eval_examples=24))
    c.batch_size = 8
    c.num_train_steps = 6
    c.log_every_steps = 3
    c.eval_every_steps = 6
    c.checkpoint_every_steps = 6
    c.optimizer.learning_rate = 1e-2
    return c


def random_batch(rng: np.random.Generator, b: int = 5, h: int = 6, w: int = 7,
                 padded: int = 2) -> dict[str, np.ndarray]:
    """Images, masks with ~15% ignore pixels, and the last `padded` rows marked padding."""
    mask = rng.integers(0, C, (b, h, w)).astype(np.int32)
    mask[rng.random((b, h, w)) < 0.15] = IGNORE_LABEL
    return {"image": rng.normal(size=(b, h, w, 3)).astype(np.float32), "mask": mask,
            "_mask": (np.arange(b) < b - padded).astype(np.float32)}


# ------------------------------------------------------------------ numpy references
def np_log_softmax(x):
    x = x - x.max(-1, keepdims=True)
    return x - np.log(np.exp(x).sum(-1, keepdims=True))


def np_confusion(labels, preds, keep):
    n = np.zeros((C, C), np.int64)
    for t, p in zip(labels[keep], preds[keep], strict=True):
        n[t, p] += 1
    return n


def long_et_al(n):
    """Pixel acc, mean acc, mean IU and f.w. IU written out from Long et al. 2015, sec. 5;
    classes with t_i = 0 leave the mean accuracy, classes with an empty union the IU means."""
    t = [n[i, :].sum() for i in range(C)]
    col = [n[:, j].sum() for j in range(C)]
    acc = [n[i, i] / t[i] for i in range(C) if t[i] > 0]
    iu = {i: n[i, i] / (t[i] + col[i] - n[i, i]) for i in range(C) if t[i] + col[i] > 0}
    return {"pixel_accuracy": sum(n[i, i] for i in range(C)) / sum(t),
            "mean_accuracy": sum(acc) / len(acc),
            "mean_iou": sum(iu.values()) / len(iu),
            "fw_iou": sum(t[i] * iu[i] for i in iu) / sum(t)}, iu


def np_dice_loss(logits, labels, valid, smooth):
    p = np.exp(np_log_softmax(logits)) * valid[..., None]
    y = np.stack([(labels == k) & valid for k in range(C)], -1).astype(np.float64)
    dice = [(2 * (p[..., k] * y[..., k]).sum() + smooth) / (p[..., k].sum() + y[..., k].sum() + smooth)
            for k in range(C)]
    return 1 - np.mean(dice)


# ------------------------------------------------------------------ metrics
def test_scores_of_a_hand_worked_confusion_matrix():
    # classes 0..2 as in the rows; class 3 is in neither truth nor prediction
    n = np.zeros((4, 4))
    n[:3, :3] = [[3, 1, 0], [0, 2, 0], [0, 1, 0]]  # t = (4, 2, 1), predicted = (3, 4, 0)
    got = segmentation_scores(n)
    assert got["pixel_accuracy"] == pytest.approx(5 / 7)
    assert got["mean_accuracy"] == pytest.approx((3 / 4 + 1 + 0) / 3)
    assert got["mean_iou"] == pytest.approx((3 / 4 + 2 / 4 + 0) / 3)  # IoU_2 = 0/1 counts
    assert got["fw_iou"] == pytest.approx((4 * 3 / 4 + 2 * 2 / 4) / 7)
    assert segmentation_scores(np.zeros((3, 3))) == {
        "pixel_accuracy": 0.0, "mean_accuracy": 0.0, "mean_iou": 0.0, "fw_iou": 0.0}


def test_eval_metrics_summed_over_batches_match_numpy_with_ignore_and_padding():
    trainer = Trainer(seg_config())  # no class names: iou/class_<k>
    task = trainer.task
    rng = np.random.default_rng(0)
    batches = [random_batch(rng) for _ in range(3)]
    variables = jax.jit(task.init_variables)(jax.random.key(0), batches[0])
    step = jax.jit(task.eval_metrics)
    chex.assert_trees_all_close(step(variables, batches[0]), task.eval_metrics(variables, batches[0]))
    chex.assert_shape(task.predict_jit(variables, batches[0]["image"]), batches[0]["mask"].shape)
    totals = None
    for batch in batches:  # as the loop does: elementwise sums of (sum, count) pairs
        out = step(variables, batch)
        totals = out if totals is None else jax.tree_util.tree_map(jnp.add, totals, out)
    got = task.finalize_metrics({k: (np.asarray(s), np.asarray(c)) for k, (s, c) in totals.items()})

    n, ce_sum, pixels = np.zeros((C, C), np.int64), 0.0, 0
    for batch in batches:
        logits = np.asarray(task.model.apply(variables, batch["image"]), np.float64)
        keep = (batch["mask"] != IGNORE_LABEL) & (batch["_mask"][:, None, None] > 0)
        n += np_confusion(batch["mask"], logits.argmax(-1), keep)
        logp = np_log_softmax(logits)
        labels = np.where(keep, batch["mask"], 0)
        ce_sum += -np.take_along_axis(logp, labels[..., None], -1)[..., 0][keep].sum()
        pixels += keep.sum()
    want, iu = long_et_al(n)
    np.testing.assert_array_equal(got["confusion"], n)
    for key, value in want.items():
        assert got[key] == pytest.approx(value, abs=1e-12), key
    assert got["loss"] == pytest.approx(ce_sum / pixels, rel=1e-5)
    names = [f"class_{k}" for k in range(C)]
    assert {k for k in got if k.startswith("iou/")} == {f"iou/{names[i]}" for i in iu}
    for i, value in iu.items():
        assert got[f"iou/{names[i]}"] == pytest.approx(value)


def test_training_loss_cross_entropy_dice_aux_against_numpy():
    config = seg_config(label_smoothing=0.1, dice_weight=0.3, dice_smooth=1.0, aux_loss_weight=0.5)
    config.model.aux_head = True
    task = Trainer(config).task
    batch = random_batch(np.random.default_rng(1), padded=0)
    batch.pop("_mask")
    variables = jax.jit(task.init_variables)(jax.random.key(0), batch)
    assert set(variables) == {"params"}  # the sown aux logits are outputs, not state
    loss, (metrics, _) = jax.jit(task.loss, static_argnums=0)(
        "all", variables["params"], {}, batch, jax.random.key(1))

    logits, state = task.model.apply(variables, batch["image"], mutable=["aux_logits"])
    (aux,) = state["aux_logits"]["aux"]
    keep = batch["mask"] != IGNORE_LABEL
    labels = np.where(keep, batch["mask"], 0)

    def objective(z):
        logp = np_log_softmax(np.asarray(z, np.float64))
        nll = -np.take_along_axis(logp, labels[..., None], -1)[..., 0]
        ce = (0.9 * nll - 0.1 * logp.mean(-1))[keep].mean()
        return ce + 0.3 * np_dice_loss(np.asarray(z, np.float64), batch["mask"], keep, 1.0), ce

    main, ce = objective(logits)
    assert metrics["ce_loss"] == pytest.approx(ce, rel=1e-5)
    assert metrics["main_loss"] == pytest.approx(main, rel=1e-5)
    assert metrics["aux_loss"] == pytest.approx(objective(aux)[0], rel=1e-5)
    assert loss == pytest.approx(main + 0.5 * objective(aux)[0], rel=1e-5)
    accuracy = (np.asarray(logits).argmax(-1) == batch["mask"])[keep].mean()
    assert metrics["pixel_accuracy"] == pytest.approx(accuracy, rel=1e-6)


def test_a_batch_without_valid_pixels_gives_zero_loss_and_finite_gradients():
    task = Trainer(seg_config(dice_weight=1.0)).task
    batch = random_batch(np.random.default_rng(2), padded=0)
    batch["mask"][:] = IGNORE_LABEL
    params = jax.jit(task.init_variables)(jax.random.key(0), batch)["params"]
    (loss, (metrics, _)), grads = jax.value_and_grad(task.loss, argnums=1, has_aux=True)(
        "all", params, {}, batch, jax.random.key(1))
    assert float(loss) == 0.0 and float(metrics["pixel_accuracy"]) == 0.0
    assert all(np.isfinite(g).all() for g in jax.tree_util.tree_leaves(grads))


def test_dice_matches_numpy_and_ignores_classes_absent_from_target_and_prediction():
    rng = np.random.default_rng(3)
    labels = rng.integers(0, C, (2, 5, 5)).astype(np.int32)
    valid = rng.random((2, 5, 5)) > 0.2
    logits = rng.normal(size=(2, 5, 5, C)).astype(np.float32)
    for smooth in (1.0, 1e-3):
        assert float(soft_dice_loss(logits, labels, valid, smooth)) == pytest.approx(
            np_dice_loss(logits.astype(np.float64), labels, valid, smooth), rel=1e-5)
    # only classes 0 and 1 present and predicted with certainty: classes 2, 3 score 1, so 0 loss
    labels = (np.arange(25).reshape(1, 5, 5) % 2).astype(np.int32)
    sure = 30.0 * np.eye(C, dtype=np.float32)[labels]
    assert float(soft_dice_loss(sure, labels, np.ones_like(labels, bool))) == pytest.approx(0.0, abs=1e-6)
    # absent class 3 predicted everywhere: 13 pixels of class 0 and 12 of class 1 missed
    # (Dice 1/14, 1/13), class 2 absent from both (1), class 3 all false positives (1/26)
    wrong = 30.0 * np.eye(C, dtype=np.float32)[np.full_like(labels, 3)]
    assert float(soft_dice_loss(wrong, labels, np.ones_like(labels, bool))) == pytest.approx(
        1 - (1 / 14 + 1 / 13 + 1 + 1 / 26) / 4, rel=1e-5)


def test_check_batch_rejects_masks_beyond_the_classes_in_one_line():
    task = Trainer(seg_config()).task
    batch = random_batch(np.random.default_rng(4))
    task.check_batch(batch)  # classes and 255 are fine
    batch["mask"][0, 0, 0] = 7
    with pytest.raises(ConfigError, match=r"mask value 7, but config.model.num_classes=4; set "
                                          r"config.model.num_classes to at least 8"):
        task.check_batch(batch)
    with pytest.raises(ConfigError, match="masks of shape"):
        task.check_batch({**batch, "mask": batch["mask"][:, :3]})
    with pytest.raises(ConfigError, match="needs batch key.*mask"):
        task.check_batch({"image": batch["image"]})
    config = seg_config()
    config.dataset.class_names = ("square", "circle", "triangle")  # background forgotten
    with pytest.raises(ConfigError, match="class_names has 3 names but config.model.num_classes=4"):
        Trainer(config)


# ------------------------------------------------------------------ pictures and --sample
def test_segmentation_masks_picture_shows_palette_colours_of_the_truth():
    trainer = Trainer(seg_config())
    assert tuple(trainer.config.evaluators) == ("segmentation_masks",)
    assert trainer.config.segmentation_masks.every_evals == 1
    batch = random_batch(np.random.default_rng(5), b=4, h=12, w=12, padded=1)
    variables = jax.device_get(trainer.task.init_variables(jax.random.key(0), batch))
    ctx = EvalContext(variables=variables, metrics={}, batch=batch, step=1, final=False,
                      workdir="", eval_batches=lambda: iter(()))
    (evaluator,) = trainer.evaluators()
    picture = evaluator(ctx).images["segmentation_masks"]
    # 3 real examples, 2 per row: 2 rows of 6 panels, 12-pixel images drawn 4x (48) with
    # 1-pixel borders, then the legend below
    assert picture.dtype == np.uint8 and picture.shape[2] == 3
    assert picture.shape[1] == max(6 * 49 + 1, 360) and picture.shape[0] > 2 * 49 + 1
    palette = class_palette(C)
    for example, (row, col) in enumerate([(0, 1), (0, 4), (1, 1)]):  # ground-truth panels
        y, x = 1 + 49 * row, 1 + 49 * col
        panel = picture[y:y + 48, x:x + 48]
        want = np.where((batch["mask"][example] == IGNORE_LABEL)[..., None], IGNORE_COLOUR,
                        palette[np.minimum(batch["mask"][example], C - 1)])
        np.testing.assert_array_equal(panel, want.repeat(4, 0).repeat(4, 1))
    assert len({tuple(c) for c in palette} | {IGNORE_COLOUR}) == C + 1


def _write_images(folder, sizes):
    os.makedirs(folder)
    rng = np.random.default_rng(6)
    for i, (h, w) in enumerate(sizes):
        Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).save(
            os.path.join(folder, f"photo{i}.png"))


def test_sample_writes_a_class_index_png_per_image_at_its_own_size(tmp_path):
    task = Trainer(seg_config()).task
    variables = jax.jit(task.init_variables)(jax.random.key(0), random_batch(np.random.default_rng(7)))
    sizes = [(20, 30), (17, 17)]
    _write_images(str(tmp_path / "in"), sizes)
    sample = ml_collections.ConfigDict(dict(images=str(tmp_path / "in"), output="", overlay=True,
                                            overlay_alpha=0.5, image_size=16))
    written = task.sample(variables, sample, str(tmp_path / "work"))
    assert len(written) == 4
    for i, (h, w) in enumerate(sizes):
        with Image.open(tmp_path / "work" / "predicted_masks" / f"photo{i}.png") as png:
            assert png.mode == "P"
            classes = np.asarray(png)
        assert classes.shape == (h, w) and classes.max() < C
        with Image.open(tmp_path / "work" / "predicted_masks" / f"photo{i}_overlay.png") as png:
            assert png.size == (w, h)
    # the same predictions through a glob, into a folder of its own, without overlays
    out = tmp_path / "masks"
    sample.update(images=str(tmp_path / "in" / "*1.png"), output=str(out), overlay=False)
    assert task.sample(variables, sample, str(tmp_path / "work")) == [str(out / "photo1.png")]
    np.testing.assert_array_equal(np.asarray(Image.open(out / "photo1.png")), classes)
    for images in ("", str(tmp_path / "nothing*.jpg")):
        sample.images = images
        with pytest.raises(ConfigError, match="config.sample.images"):
            task.sample(variables, sample, str(tmp_path / "work"))


# ------------------------------------------------------------------ end to end
def test_a_short_run_reports_iou_and_draws_masks(tmp_path):
    from dl_arch.train.loop import train_and_evaluate

    config = seg_config()
    config.dataset.class_names = ("background", "circle", "square", "equilateral triangle")
    summary = train_and_evaluate(config, str(tmp_path))
    assert "eval/iou/equilateral_triangle" in summary
    for key in ("mean_iou", "pixel_accuracy", "fw_iou", "mean_accuracy", "loss", "iou/background"):
        assert 0.0 <= summary[f"eval/{key}"] < 10.0, key
    assert summary["eval/iou/background"] > 0.0
    assert os.path.exists(tmp_path / "segmentation_masks.png")
    rows = [json.loads(line) for line in open(tmp_path / "metrics.jsonl")]
    assert all(0.0 <= r["train/pixel_accuracy"] <= 1.0 for r in rows if "train/loss" in r)
