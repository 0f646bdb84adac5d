"""A single-shot, anchor-based object detector (SSD/RetinaNet style) on a family CNN backbone.

Why anchors: several boxes of chosen sizes and aspect ratios at every cell of several
feature maps let one location predict objects of different shapes, and assignment by
IoU (see `dl_arch.tasks.detection_targets`) handles objects whose centres share a grid cell,
which a one-box-per-cell centre scheme (YOLOv1) cannot.

Pipeline: backbone stages (a ResNet's `feature_stages`, strides 8/16/32 with the ImageNet
stem; or, for any other CNN of the family, the maps it sows, named by `backbone_features`)
-> optional extra stride-2 levels (SSD's extra layers) -> optional top-down FPN merge
-> one head shared by all levels with a classification tower (per-anchor class logits
and an objectness logit) and a box tower (per-anchor SSD box deltas). The model returns
raw logits and deltas plus the constant anchor set; decoding, NMS and losses live in
the task.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Sequence
from typing import Any, ClassVar

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from dl_arch.config.errors import ConfigError
from dl_arch.models.cnn.common import (
    STEMS,
    check_images,
)
from dl_arch.models.cnn.resnet import ResNet, resnet_trunk
from dl_arch.models.layers.boxes import make_anchors
from dl_arch.models.layers.resize import resize_nearest
from dl_arch.registry import MODELS, register_model


class ResNetFeatures(nn.Module):
    """The ResNet of `dl_arch.models.cnn.resnet` without its head, returning stage outputs.

    Built by the classifier's own `resnet_trunk`, so parameter names (`conv1`, `bn1`,
    `layer{s}_{b}`) equal the classifier's and `config.init_from` a ResNet classification
    run loads its backbone weights.
    """

    stage_sizes: Sequence[int] = (2, 2, 2, 2)
    block: str = "basic"
    stem: str = "imagenet"
    width: int = 64
    dtype: Any = jnp.float32
    param_dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x_BHWC: jax.Array, *, train: bool = False) -> list[jax.Array]:
        return resnet_trunk(self, x_BHWC, train, stage_sizes=self.stage_sizes, block=self.block,
                            stem=self.stem, width=self.width, what="detector backbone")


class SownFeatures(nn.Module):
    """Any registered CNN of the family as a backbone: the stage maps it sows, by name.

    The CNN runs as a pure function of its own variables, kept under this module
    (`params/backbone/net/...`, `batch_stats/backbone/net/...`), with `intermediates`
    mutable so its sown maps come back. Its (1-class) head runs too: small for
    ResNet/MobileNet/GoogLeNet, but VGG/AlexNet keep their large fc layers.
    """

    model: str
    feature_names: Sequence[str]
    stem: str = ""  # '': the model's own stem
    dtype: Any = jnp.float32
    param_dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x_BHWC: jax.Array, *, train: bool = False) -> list[jax.Array]:
        kwargs = {"stem": self.stem} if self.stem else {}
        net = MODELS.get(self.model)(num_classes=1, dtype=self.dtype,
                                     param_dtype=self.param_dtype, **kwargs)

        def init(rng: jax.Array) -> dict[str, Any]:
            return net.init({"params": rng, "dropout": rng}, x_BHWC, train=False)

        params = self.param("net", lambda rng: init(rng)["params"])
        stats = self.variable("batch_stats", "net",
                              lambda: dict(init(jax.random.key(0))).pop("batch_stats", {}))
        rngs = {"dropout": self.make_rng("dropout")} if train else {}
        _, state = net.apply({"params": params, "batch_stats": stats.value}, x_BHWC,
                             train=train, rngs=rngs, mutable=["intermediates", "batch_stats"])
        if train and not self.is_initializing():
            stats.value = state["batch_stats"]
        sown = state["intermediates"]
        missing = [n for n in self.feature_names if n not in sown]
        if missing:
            raise ConfigError(f"config.model.backbone_features={tuple(self.feature_names)}: "
                             f"{self.model} sows {sorted(sown)}; pick from those")
        return [sown[n][0] for n in self.feature_names]


RESNET_BACKBONE_FIELDS = ("stage_sizes", "block", "stem", "width")


def backbone_fields(name: str) -> dict[str, Any]:
    """Constructor fields of a registered ResNet variant (`resnet18`, `resnet50`, ...):
    the ResNet defaults overridden by the variant's own values."""
    entry = MODELS.get(name)
    func = getattr(entry, "func", entry)
    if func is not ResNet:
        raise ConfigError(f"config.model.backbone='{name}' is not a ResNet; set "
                          "config.model.backbone_features to the names of the maps it sows "
                          "(e.g. stage3, stage4 for VGG; group5, group7 for MobileNetV2)")
    fields = {f.name: f.default for f in dataclasses.fields(ResNet)
              if f.name in RESNET_BACKBONE_FIELDS}
    variant = getattr(entry, "keywords", {})
    fields.update({k: variant[k] for k in RESNET_BACKBONE_FIELDS if k in variant})
    return fields


class SingleShotDetector(nn.Module):
    """Multi-scale anchor detector: `{class_logits, objectness_logits, box_deltas, anchors}`.

    Shapes: class logits `[B, A, C]`, objectness `[B, A]`, deltas `[B, A, 4]` (float32),
    anchors `[A, 4]` corner boxes in [0, 1]. `A` = sum over levels of h * w * K with
    `K = len(anchor_scales) * len(aspect_ratios)`.
    """

    num_classes: int  # object classes (background is the objectness logit, not a class)
    backbone: str = "resnet18"  # a registered CNN (ResNets read directly, others via sow)
    backbone_features: Sequence[str] = ()  # non-ResNet: names of the sown maps to use
    backbone_width: int = 0  # 0: the variant's own width
    backbone_stem: str = ""  # '': the variant's own stem (imagenet | small)
    backbone_stage_sizes: Sequence[int] = ()  # (): the variant's own blocks per stage
    feature_stages: Sequence[int] = (2, 3, 4)  # ResNet stages feeding the head (1-based)
    extra_levels: int = 0  # SSD-style stride-2 levels on top of the last stage
    fpn: bool = True  # top-down merge of coarser levels into finer ones
    head_width: int = 128  # channels of the FPN levels and of the head towers
    head_depth: int = 2  # 3x3 conv + GroupNorm + ReLU layers per tower
    anchor_size_factor: float = 4.0  # anchor side = factor cells of its level
    anchor_sizes: Sequence[float] = ()  # explicit sides (fractions of the image) per level
    anchor_scales: Sequence[float] = (1.0, 1.41)  # anchor side multipliers within a level
    aspect_ratios: Sequence[float] = (0.5, 1.0, 2.0)  # anchor shapes, height / width
    prior_prob: float = 0.01  # initial objectness probability (RetinaNet bias init)
    dtype: Any = jnp.float32
    param_dtype: Any = jnp.float32

    field_checks: ClassVar[dict[str, dict[str, Any]]] = {
        "backbone_stem": dict(choices=("",) + STEMS)}

    @property
    def anchors_per_cell(self) -> int:
        return len(self.anchor_scales) * len(self.aspect_ratios)

    def anchors_for(self, level_shapes: Sequence[tuple[int, int]]) -> np.ndarray:
        """The constant anchor set `[A, 4]` for feature maps of these (h, w)."""
        sizes = (list(self.anchor_sizes) if self.anchor_sizes else
                 [self.anchor_size_factor / max(h, w) for h, w in level_shapes])
        return make_anchors(level_shapes, sizes, self.aspect_ratios, self.anchor_scales)

    def _conv(self, features: int, name: str, kernel: int = 3, strides: int = 1,
              **kw: Any) -> nn.Conv:
        return nn.Conv(features, (kernel, kernel), strides, padding=kernel // 2,
                       dtype=self.dtype, param_dtype=self.param_dtype, name=name, **kw)

    def _tower(self, prefix: str) -> list[tuple[nn.Conv, nn.GroupNorm]]:
        groups = max(1, min(8, self.head_width // 4))
        return [(self._conv(self.head_width, f"{prefix}_conv{i}",
                            kernel_init=nn.initializers.normal(0.01)),
                 nn.GroupNorm(groups, dtype=self.dtype, param_dtype=self.param_dtype,
                              name=f"{prefix}_norm{i}"))
                for i in range(self.head_depth)]

    @staticmethod
    def _run_tower(tower: list[tuple[nn.Conv, nn.GroupNorm]], x: jax.Array) -> jax.Array:
        for conv, norm in tower:
            x = nn.relu(norm(conv(x)))
        return x

    @nn.compact
    def __call__(self, x_BHWC: jax.Array, *, train: bool = False) -> dict[str, jax.Array]:
        check_images(x_BHWC, "detector")
        if self.num_classes < 1:
            raise ConfigError(f"config.model.num_classes={self.num_classes} must be >= 1")
        if self.backbone_features:
            stages = SownFeatures(self.backbone, tuple(self.backbone_features),
                                  self.backbone_stem, self.dtype, self.param_dtype,
                                  name="backbone")(x_BHWC, train=train)
            return self._detect(stages)
        fields = backbone_fields(self.backbone)
        if self.backbone_width:
            fields["width"] = self.backbone_width
        if self.backbone_stem:
            fields["stem"] = self.backbone_stem
        if self.backbone_stage_sizes:
            fields["stage_sizes"] = tuple(self.backbone_stage_sizes)
        n_stages = len(fields["stage_sizes"])
        if not self.feature_stages or any(not 1 <= s <= n_stages for s in self.feature_stages):
            raise ConfigError(f"config.model.feature_stages={tuple(self.feature_stages)}; pick "
                             f"stages in 1..{n_stages} of {self.backbone}")
        # stages above the deepest one the head reads would be dead weight: not built
        fields["stage_sizes"] = tuple(fields["stage_sizes"])[: max(self.feature_stages)]
        stages = ResNetFeatures(**fields, dtype=self.dtype, param_dtype=self.param_dtype,
                                name="backbone")(x_BHWC, train=train)
        return self._detect([stages[s - 1] for s in self.feature_stages])

    def _detect(self, stages: list[jax.Array]) -> dict[str, jax.Array]:
        """Feature maps (fine to coarse) -> FPN -> shared head -> logits, deltas, anchors."""
        levels = [self._conv(self.head_width, f"lateral{i}", kernel=1)(f)
                  for i, f in enumerate(stages)]
        if self.fpn:
            for i in range(len(levels) - 2, -1, -1):  # coarse to fine
                fine = levels[i]
                up = resize_nearest(levels[i + 1], *fine.shape[1:3])
                levels[i] = fine + up
            levels = [self._conv(self.head_width, f"smooth{i}")(p) for i, p in enumerate(levels)]
        top = levels[-1]
        for e in range(self.extra_levels):
            top = self._conv(self.head_width, f"extra{e}", strides=2)(nn.relu(top))
            levels.append(top)

        k, c = self.anchors_per_cell, self.num_classes
        cls_tower, box_tower = self._tower("cls_tower"), self._tower("box_tower")
        bias = float(-np.log((1 - self.prior_prob) / self.prior_prob))
        cls_out = self._conv(k * (c + 1), "cls_out", kernel_init=nn.initializers.normal(0.01),
                             bias_init=lambda *_: jnp.asarray(
                                 np.tile(np.r_[np.zeros(c), bias], k), self.param_dtype))
        box_out = self._conv(k * 4, "box_out", kernel_init=nn.initializers.normal(0.01))
        cls_all, box_all, shapes = [], [], []
        for p in levels:
            b, h, w, _ = p.shape
            shapes.append((h, w))
            cls_all.append(cls_out(self._run_tower(cls_tower, p)).reshape(b, h * w * k, c + 1))
            box_all.append(box_out(self._run_tower(box_tower, p)).reshape(b, h * w * k, 4))
        cls_BAX = jnp.concatenate(cls_all, 1).astype(jnp.float32)
        for i, p in enumerate(levels):
            self.sow("intermediates", f"level{i}", p)
        return {
            "class_logits": cls_BAX[..., :c],
            "objectness_logits": cls_BAX[..., c],
            "box_deltas": jnp.concatenate(box_all, 1).astype(jnp.float32),
            "anchors": jnp.asarray(self.anchors_for(shapes)),
        }


register_model("ssd_resnet18", functools.partial(SingleShotDetector, backbone="resnet18"))
register_model("ssd_resnet50", functools.partial(SingleShotDetector, backbone="resnet50"))
# tiny test / CPU variant: one basic block per stage, 8 channels, small head
register_model("ssd_tiny", functools.partial(
    SingleShotDetector, backbone="resnet18", backbone_width=8, backbone_stage_sizes=(1, 1, 1, 1),
    head_width=16, head_depth=1))
