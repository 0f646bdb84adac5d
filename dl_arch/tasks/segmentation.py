"""Semantic segmentation: a class for every pixel (FCN, U-Net, DeepLabV3, ViT segmenters).

Batch: `image` float32 [B, H, W, C] and `mask` int32 [B, H, W] of class indices, with
IGNORE_LABEL (255) for pixels that count nowhere; the model maps images to logits
[B, H, W, num_classes] at the input resolution.

Loss (over the non-ignored pixels of the batch; a batch without one gives 0):
- softmax cross-entropy averaged over pixels, with optional label smoothing;
- `dice_weight` > 0 adds that times the soft multi-class Dice loss 1 - mean_c Dice_c, with
  Dice_c = (2 sum p_c y_c + s) / (sum p_c + sum y_c + s) pooled over the batch's pixels and
  s = `dice_smooth`: a class absent from both target and prediction scores Dice 1 (no loss,
  no gradient), one predicted but absent from the target is pushed down;
- a model with an auxiliary head (`model.aux_head`, torchvision's FCN / DeepLabV3) sows
  `aux_logits`; the same loss of those, times `aux_loss_weight` (0.5 in torchvision's
  reference), is added in training.
Eval (`segmentation_metrics`): the pixel confusion matrix [true, predicted] summed over the
split (ignored pixels and padding rows excluded) gives pixel_accuracy, mean_accuracy,
mean_iou (over classes in the ground truth or predicted), fw_iou and `iou/<class>`; `loss`
is the per-pixel cross-entropy of the main head. The `segmentation_masks` evaluator draws
input | ground truth | prediction; `launch.py --sample` writes predicted masks of your images.
"""

from __future__ import annotations

import functools
import glob
import os
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from dl_arch.config.errors import ConfigError
from dl_arch.config.fields import Field
from dl_arch.data.mask_augment import MASK_AUGMENT_FIELDS, preprocess_pair
from dl_arch.data.masks import IGNORE_LABEL, resize_nearest
from dl_arch.registry import register_task
from dl_arch.tasks.base import Batch, MetricTotals, Variables
from dl_arch.tasks.segmentation_metrics import (
    class_iou,
    class_keys,
    metric_key,
    segmentation_scores,
)
from dl_arch.tasks.supervised import SupervisedTask
from dl_arch.train.compile_options import model_jit

SAMPLE_FIELDS = {
    "images": Field("", "images to segment: a folder (its image files) or a glob such as "
                        "'photos/*.jpg'"),
    "output": Field("", "folder for the masks ('': <workdir>/predicted_masks; a relative path "
                        "lies under the workdir)"),
    "overlay": Field(True, "also write <name>_overlay.png: the class colours over the image"),
    "overlay_alpha": Field(0.5, "opacity of the class colours in the overlay", low=0.0, high=1.0),
    "image_size": Field(0, "side of the square the images are resized to for the model (0: "
                           "config.dataset.image_size as in eval; its 0 keeps each image's size)",
                        low=0),
}


def pixel_cross_entropy(logits_BHWK: jax.Array, labels_BHW: jax.Array,
                        label_smoothing: float = 0.0) -> jax.Array:
    """Per-pixel softmax cross-entropy [B, H, W] in float32 against (1 - s) one-hot + s
    uniform targets; labels outside the classes give finite junk for the caller to mask."""
    logp = jax.nn.log_softmax(logits_BHWK.astype(jnp.float32), axis=-1)
    safe = jnp.clip(labels_BHW, 0, logp.shape[-1] - 1)
    nll = -jnp.take_along_axis(logp, safe[..., None], axis=-1)[..., 0]
    if not label_smoothing:
        return nll
    return (1.0 - label_smoothing) * nll - label_smoothing * logp.mean(axis=-1)


def masked_mean(values: jax.Array, valid: jax.Array) -> jax.Array:
    """Mean of `values` over the valid entries; 0 (not NaN) when none is valid."""
    valid = valid.astype(jnp.float32)
    return jnp.sum(values * valid) / jnp.maximum(jnp.sum(valid), 1.0)


def soft_dice_loss(logits_BHWK: jax.Array, labels_BHW: jax.Array, valid_BHW: jax.Array,
                   smooth: float = 1.0) -> jax.Array:
    """1 - mean over classes of the soft Dice of softmax probabilities, pooled over the valid
    pixels of the batch (module doc)."""
    num_classes = logits_BHWK.shape[-1]
    valid = valid_BHW.astype(jnp.float32)[..., None]
    probs = jax.nn.softmax(logits_BHWK.astype(jnp.float32), axis=-1) * valid
    target = jax.nn.one_hot(labels_BHW, num_classes, dtype=jnp.float32) * valid
    axes = tuple(range(probs.ndim - 1))
    inter = jnp.sum(probs * target, axis=axes)
    dice = (2.0 * inter + smooth) / (probs.sum(axes) + target.sum(axes) + smooth)
    return 1.0 - dice.mean()


def pixel_confusion(labels_BHW: jax.Array, preds_BHW: jax.Array, valid_BHW: jax.Array,
                    num_classes: int) -> jax.Array:
    """int32 [num_classes, num_classes]: valid pixels counted at [true class, predicted class]
    (int32 counts are exact up to 2^31 pixels a cell over the split)."""
    index = jnp.where(valid_BHW, labels_BHW * num_classes + preds_BHW, 0).reshape(-1)
    counts = jnp.bincount(index, weights=valid_BHW.reshape(-1).astype(jnp.int32),
                          length=num_classes * num_classes)
    return counts.reshape(num_classes, num_classes)


@register_task("segmentation")
class SegmentationTask(SupervisedTask):
    """Per-pixel cross-entropy (+ Dice, + auxiliary head); confusion-matrix IoU metrics."""

    required_keys = ("image", "mask")
    evaluators = ("segmentation_masks",)
    dataset_fields = MASK_AUGMENT_FIELDS  # read by `preprocess` (joint image/mask augmentation)
    fields = {
        "label_smoothing": Field(0.0, "training targets (1 - s) one-hot + s uniform, per pixel",
                                 low=0.0, high=1.0, high_open=True),
        "dice_weight": Field(0.0, "weight of the soft multi-class Dice loss added to the "
                                  "cross-entropy (0: off)", low=0.0),
        "dice_smooth": Field(1.0, "Dice: pixels added to numerator and denominator, so a class "
                                  "absent from target and prediction scores 1", low=0.0,
                             low_open=True),
        "aux_loss_weight": Field(0.5, "weight of the auxiliary head's loss (model.aux_head)",
                                 low=0.0),
    }
    sections = {"sample": SAMPLE_FIELDS}

    def __init__(self, config: Any):
        super().__init__(config)
        self.num_classes = int(config.model.num_classes)
        if self.num_classes > IGNORE_LABEL:
            raise ConfigError(f"config.model.num_classes={self.num_classes} reaches the ignore "
                              f"label {IGNORE_LABEL}; use at most {IGNORE_LABEL} classes")
        names = config.dataset.class_names
        if names is not None and len(names) != self.num_classes:
            raise ConfigError(f"config.dataset.class_names has {len(names)} names but config.model."
                              f"num_classes={self.num_classes}; name every mask class, background "
                              f"included, or leave class_names None")
        self.class_names = class_keys(names, self.num_classes)
        self.aux_head = bool(getattr(self.model, "aux_head", False))

    @functools.cached_property
    def predict_jit(self) -> Any:
        """`predict` compiled once, shared by the evaluators and `sample`."""
        return model_jit(self.predict)

    def check_batch(self, batch: dict[str, Any]) -> None:
        """Also: a mask the wrong size or with values beyond the classes is one line."""
        super().check_batch(batch)
        mask, image = np.asarray(batch["mask"]), np.asarray(batch["image"])
        if mask.shape != image.shape[:3]:
            raise ConfigError(f"config.dataset.name='{self.config.dataset.name}' gives masks of "
                              f"shape {mask.shape[1:]} for images of {image.shape[1:3]}; masks "
                              f"need the images' height and width")
        bad = mask[(mask != IGNORE_LABEL) & ((mask < 0) | (mask >= self.num_classes))]
        if bad.size:
            raise ConfigError(f"the data has mask value {int(bad.max())}, but config.model."
                              f"num_classes={self.num_classes}; set config.model.num_classes to at "
                              f"least {int(bad.max()) + 1} (or mark pixels to skip with "
                              f"{IGNORE_LABEL})")

    def preprocess(self, example: dict[str, Any], rng: Any, train: bool) -> dict[str, Any]:
        return preprocess_pair(example, rng, self.config.dataset, train)

    # ----- pure functions
    def init_variables(self, rng: jax.Array, batch: Batch) -> Variables:
        # init makes every collection mutable: sown auxiliary logits are outputs, not state.
        variables = super().init_variables(rng, batch)
        return {k: v for k, v in variables.items() if k != "aux_logits"}

    def valid_pixels(self, batch: Batch) -> jax.Array:
        """bool [B, H, W]: pixels that count (a class of the model, in a real example)."""
        mask = batch["mask"]
        valid = (mask >= 0) & (mask < self.num_classes)
        if "_mask" in batch:
            valid = valid & (batch["_mask"] > 0)[:, None, None]
        return valid

    def objective(self, logits: jax.Array, batch: Batch, valid: jax.Array
                  ) -> tuple[jax.Array, dict[str, jax.Array]]:
        """Training loss of one head's logits: cross-entropy (+ weighted Dice), and its terms."""
        t = self.config.task
        _check_resolution(logits, batch["mask"])
        ce = masked_mean(pixel_cross_entropy(logits, batch["mask"], t.label_smoothing), valid)
        if not t.dice_weight:
            return ce, {}
        dice = soft_dice_loss(logits, batch["mask"], valid, t.dice_smooth)
        return ce + t.dice_weight * dice, {"ce_loss": ce, "dice_loss": dice}

    def loss(self, phase: str, params: Any, mutable: Variables, batch: Batch, rng: jax.Array):
        valid = self.valid_pixels(batch)
        if self.aux_head:
            logits, state = self.model.apply(
                {"params": params, **mutable}, self.inputs(batch), train=True,
                rngs={"dropout": rng}, mutable=[*mutable, "aux_logits"])
            state = dict(state)
            aux = jax.tree_util.tree_leaves(state.pop("aux_logits"))
        else:
            (logits, state), aux = self.apply_train(params, mutable, batch, rng), []
        loss, metrics = self.objective(logits, batch, valid)
        if aux:
            aux_loss = sum(self.objective(a, batch, valid)[0] for a in aux)
            metrics.update(main_loss=loss, aux_loss=aux_loss)
            loss = loss + self.config.task.aux_loss_weight * aux_loss
        metrics["pixel_accuracy"] = masked_mean(jnp.argmax(logits, -1) == batch["mask"], valid)
        return loss, (metrics, state)

    def predict(self, variables: Variables, images_BHWC: jax.Array) -> jax.Array:
        """int32 [B, H, W]: the most likely class of every pixel."""
        logits = self.model.apply(variables, images_BHWC, train=False)
        return jnp.argmax(logits, axis=-1).astype(jnp.int32)

    def eval_metrics(self, variables: Variables, batch: Batch) -> MetricTotals:
        logits = self.apply_eval(variables, batch)
        _check_resolution(logits, batch["mask"])
        valid = self.valid_pixels(batch)
        ce = pixel_cross_entropy(logits, batch["mask"]) * valid
        preds = jnp.argmax(logits, axis=-1).astype(jnp.int32)
        confusion = pixel_confusion(batch["mask"], preds, valid, self.num_classes)
        return {"loss": (ce.sum(), valid.sum().astype(jnp.float32)),
                "confusion": (confusion, jnp.ones((), jnp.int32))}

    # ----- host side
    def finalize_metrics(self, totals: dict[str, tuple[Any, Any]]) -> dict[str, Any]:
        """Scores of the summed confusion matrix (`segmentation_metrics`), `iou/<class>` for
        every class in the ground truth or predicted, and the matrix itself (`confusion`)."""
        totals = dict(totals)
        confusion = totals.pop("confusion", None)
        metrics = super().finalize_metrics(totals)
        if confusion is not None:
            matrix = np.asarray(confusion[0], np.int64)
            metrics.update(segmentation_scores(matrix))
            for name, iou in zip(self.class_names, class_iou(matrix), strict=True):
                if not np.isnan(iou):
                    metrics[f"iou/{metric_key(name)}"] = float(iou)
            metrics["confusion"] = matrix
        return metrics

    def sample(self, variables: Variables, sample_config: ml_collections.ConfigDict,
               workdir: str) -> list[str]:
        """`launch.py --sample`: for every image of `sample_config.images`, the predicted
        class map at the image's own size as `<output>/<stem>.png` (a palette PNG whose pixel
        values are the class indices) and, with `overlay`, `<stem>_overlay.png`; returns the
        paths written."""
        from PIL import Image

        from dl_arch.data.image_files import read_image
        from dl_arch.tasks.mask_pictures import class_palette, overlay

        s = sample_config
        files = _image_files(s.images)
        out_dir = os.path.join(workdir, s.output or "predicted_masks")
        os.makedirs(out_dir, exist_ok=True)
        palette = class_palette(self.num_classes)
        flat_palette = [*palette.reshape(-1).tolist(), *[0] * (3 * (256 - self.num_classes))]
        channels = int(self.config.dataset.channels) if "channels" in self.config.dataset else 3
        dataset = self.config.dataset  # the eval preprocessing: resize to image_size, normalise
        if s.image_size:
            dataset = ml_collections.ConfigDict({**dataset.to_dict(), "image_size": s.image_size})
        written = []
        for file in files:
            pixels = read_image(file, channels, "config.sample.images")
            h, w = pixels.shape[:2]
            example = preprocess_pair({"image": pixels, "mask": np.zeros((h, w), np.int32)},
                                      np.random.default_rng(0), dataset, False)
            pred = np.asarray(self.predict_jit(variables, jnp.asarray(example["image"][None])))[0]
            pred = resize_nearest(pred, h, w).astype(np.uint8)
            stem = os.path.splitext(os.path.basename(file))[0]
            path = os.path.join(out_dir, f"{stem}.png")
            indexed = Image.frombytes("P", (w, h), np.ascontiguousarray(pred).tobytes())
            indexed.putpalette(flat_palette)
            indexed.save(path)
            written.append(path)
            if s.overlay:
                path = os.path.join(out_dir, f"{stem}_overlay.png")
                Image.fromarray(overlay(pixels, pred, palette, s.overlay_alpha)).save(path)
                written.append(path)
        print(f"wrote the predicted masks of {len(files)} image(s) to {os.path.abspath(out_dir)}")
        return written


def _image_files(pattern: str) -> list[str]:
    """The image files `config.sample.images` names (a folder or a glob), sorted; a name
    that matches none, or two files sharing a stem, is a one-line error."""
    from dl_arch.data.image_files import is_image

    where = f"config.sample.images={pattern!r}"
    if not pattern:
        raise ConfigError("config.sample.images is empty; give a folder of images or a glob, "
                          "e.g. --config.sample.images='photos/*.jpg'")
    if os.path.isdir(pattern):
        files = [os.path.join(pattern, f) for f in os.listdir(pattern)]
    else:
        files = glob.glob(os.path.expanduser(pattern))
    files = sorted(f for f in files if os.path.isfile(f) and is_image(os.path.basename(f)))
    if not files:
        raise ConfigError(f"{where} matches no image file; give a folder of images or a glob "
                          f"such as 'photos/*.jpg'")
    stems: dict[str, str] = {}
    for f in files:
        stem = os.path.splitext(os.path.basename(f))[0]
        if stem in stems:
            raise ConfigError(f"{where}: {stems[stem]} and {f} would both write {stem}.png; "
                              f"rename one or narrow the glob")
        stems[stem] = f
    return files


def _check_resolution(logits: jax.Array, mask: jax.Array) -> None:
    if logits.shape[:3] != mask.shape[:3]:
        raise ValueError(f"segmentation logits of shape {logits.shape} do not match masks "
                         f"{mask.shape}: a segmentation model must return logits at the "
                         f"input resolution")

