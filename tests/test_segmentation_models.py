"""Segmentation models: exact parameter counts, shapes, encoders shared with the classifiers,
dilation and bilinear upsampling against torch, FCN's initial state, and learning one batch.

Counts: torchvision's fcn/deeplabv3 layouts written out key by key below (from
torchvision.models.segmentation: `fcn.py: FCNHead`, `deeplabv3.py: ASPP, DeepLabHead`, the
backbone from `resnet.py` as `test_torchvision_import.torchvision_resnet_keys`), the U-Net
paper's Fig. 1 and the FCN paper's layers (VGG-16 convs, fc6/fc7 as convs, score layers).
"""

from __future__ import annotations

import chex
import flax.linen as flax_nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from test_torchvision_import import torchvision_resnet_keys
from torch import nn as tnn

from dl_arch.config.errors import ConfigError
from dl_arch.interop.torchvision import convert_resnet
from dl_arch.models.cnn.common import numpy_init, param_count
from dl_arch.models.cnn.vgg import VGG_STAGES
from dl_arch.models.segmentation.upsample import (
    BlockConvTranspose,
    bilinear_conv_transpose,
    bilinear_init,
    resize_bilinear,
)
from dl_arch.registry import MODELS
from dl_arch.train.paths import flatten_with_paths
from dl_arch.train.transfer import merge_matching

TINY = ["fcn32s_tiny", "fcn16s_tiny", "fcn8s_tiny", "fcn_resnet_tiny", "unet_tiny",
        "deeplabv3_tiny", "vit_segmenter_tiny"]
RNGS = {"params": jax.random.key(0), "dropout": jax.random.key(1)}
# A real `init` with a PRNG that compiles in a fraction of threefry's time on a CPU.
FAST_RNGS = {"params": jax.random.key(0, impl="unsafe_rbg")}


def abstract_variables(name: str, hw: int, channels: int = 3, **fields):
    """Variables of a registered model as ShapeDtypeStructs (nothing is materialised)."""
    model = MODELS.get(name)(**fields)
    x = jax.ShapeDtypeStruct((1, hw, hw, channels), jnp.float32)
    return jax.eval_shape(lambda x: model.init(RNGS, x), x)


# ---------------------------------------------------------------- parameter counts

def _bn(prefix: str, c: int) -> dict[str, tuple[int, ...]]:
    return {f"{prefix}.weight": (c,), f"{prefix}.bias": (c,), f"{prefix}.running_mean": (c,),
            f"{prefix}.running_var": (c,)}


def torchvision_segmentation_keys(kind: str, stage_sizes=(3, 4, 6, 3), classes: int = 21,
                                  aux: bool = False) -> dict[str, tuple[int, ...]]:
    """State-dict keys and shapes of torchvision's fcn_resnet* / deeplabv3_resnet*."""
    backbone = torchvision_resnet_keys(stage_sizes, bottleneck=True)
    keys = {f"backbone.{k}": s for k, s in backbone.items()
            if not k.startswith("fc.") and not k.endswith("num_batches_tracked")}
    if kind == "fcn":  # FCNHead(2048, classes): conv3x3 no bias, BN, ReLU, Dropout, conv1x1
        keys.update({"classifier.0.weight": (512, 2048, 3, 3), **_bn("classifier.1", 512),
                     "classifier.4.weight": (classes, 512, 1, 1), "classifier.4.bias": (classes,)})
    else:  # DeepLabHead(2048, classes): ASPP(2048, [12, 24, 36]), conv3x3, BN, ReLU, conv1x1
        a = "classifier.0"
        keys.update({f"{a}.convs.0.0.weight": (256, 2048, 1, 1), **_bn(f"{a}.convs.0.1", 256)})
        for i in (1, 2, 3):
            keys.update({f"{a}.convs.{i}.0.weight": (256, 2048, 3, 3),
                         **_bn(f"{a}.convs.{i}.1", 256)})
        keys.update({f"{a}.convs.4.1.weight": (256, 2048, 1, 1), **_bn(f"{a}.convs.4.2", 256),
                     f"{a}.project.0.weight": (256, 1280, 1, 1), **_bn(f"{a}.project.1", 256),
                     "classifier.1.weight": (256, 256, 3, 3), **_bn("classifier.2", 256),
                     "classifier.4.weight": (classes, 256, 1, 1), "classifier.4.bias": (classes,)})
    if aux:  # FCNHead(1024, classes) on layer3
        keys.update({"aux_classifier.0.weight": (256, 1024, 3, 3), **_bn("aux_classifier.1", 256),
                     "aux_classifier.4.weight": (classes, 256, 1, 1),
                     "aux_classifier.4.bias": (classes,)})
    return keys


def torch_parameter_count(keys: dict[str, tuple[int, ...]]) -> int:
    """What `sum(p.numel() for p in model.parameters())` counts: no BatchNorm buffers."""
    return sum(int(np.prod(s)) for k, s in keys.items()
               if not k.endswith(("running_mean", "running_var")))


@pytest.mark.parametrize("name,kind,stages,published", [
    ("fcn_resnet50", "fcn", (3, 4, 6, 3), 35.3), ("deeplabv3_resnet50", "deeplab", (3, 4, 6, 3), 42.0),
    ("fcn_resnet101", "fcn", (3, 4, 23, 3), 54.3),
    ("deeplabv3_resnet101", "deeplab", (3, 4, 23, 3), 61.0),
])
def test_resnet_segmenter_counts_match_torchvision(name, kind, stages, published):
    ours = param_count(abstract_variables(name, 64, num_classes=21)["params"])
    assert ours == torch_parameter_count(torchvision_segmentation_keys(kind, stages))
    with_aux = param_count(abstract_variables(name, 64, num_classes=21, aux_head=True)["params"])
    assert with_aux == torch_parameter_count(torchvision_segmentation_keys(kind, stages, aux=True))
    assert round(with_aux / 1e6, 1) == published  # torchvision's model table (with aux head)


def test_resnet_segmenter_counts_at_50_layers():
    assert param_count(abstract_variables("fcn_resnet50", 64)["params"]) == 32_957_013
    assert param_count(abstract_variables("deeplabv3_resnet50", 64)["params"]) == 39_638_869


def _conv(k: int, cin: int, cout: int, bias: bool = True) -> int:
    return k * k * cin * cout + (cout if bias else 0)


def test_unet_count_matches_the_paper():
    """Fig. 1: 3x3 conv pairs 64..1024, 2x2 up-convs halving channels, 1x1 to 2 classes."""
    total, cin = 0, 1
    for c in (64, 128, 256, 512, 1024):  # contracting path and bottom
        total += _conv(3, cin, c) + _conv(3, c, c)
        cin = c
    for c in (512, 256, 128, 64):  # expansive path: up-conv, concat (2c), two convs
        total += _conv(2, 2 * c, c) + _conv(3, 2 * c, c) + _conv(3, c, c)
    total += _conv(1, 64, 2)
    ours = abstract_variables("unet", 64, channels=1, num_classes=2)
    assert param_count(ours["params"]) == total == 31_030_658


@pytest.mark.parametrize("stride", [32, 16, 8])
def test_fcn_vgg16_count_matches_the_paper(stride):
    total, cin = 0, 3
    for stage in VGG_STAGES[16]:  # 13 conv layers with biases
        for c in stage:
            total += _conv(3, cin, c)
            cin = c
    total += _conv(7, 512, 4096) + _conv(1, 4096, 4096) + _conv(1, 4096, 21)  # fc6, fc7, score_fr
    if stride <= 16:  # score_pool4 and the learnable bias-free 2x upsampling of score_fr
        total += _conv(1, 512, 21) + _conv(4, 21, 21, bias=False)
    if stride == 8:  # score_pool3 and upscore_pool4
        total += _conv(1, 256, 21) + _conv(4, 21, 21, bias=False)
    ours = abstract_variables(f"fcn{stride}s_vgg16", 64, num_classes=21)
    assert param_count(ours["params"]) == total
    assert round(total / 1e6) == 134  # "about 134M"


def test_vit_segmenter_count_is_vit_b16_without_head_plus_linear_decoder():
    vit = param_count(abstract_variables("vit_b16", 224, num_classes=1000)["params"])
    ours = param_count(abstract_variables("vit_segmenter", 224, num_classes=21)["params"])
    assert ours == vit - (768 * 1000 + 1000) + (768 * 21 + 21) == 85_814_805


# ---------------------------------------------------------------- shapes and errors

@pytest.mark.parametrize("name", TINY)
def test_tiny_variants_give_float32_logits_at_input_size(name):
    model = MODELS.get(name)(num_classes=5)
    side = 64 if name.startswith("fcn") and "resnet" not in name else 32
    x = jax.ShapeDtypeStruct((2, side, side + 32, 3), jnp.float32)
    variables = jax.eval_shape(lambda x: model.init(RNGS, x), x)
    variables = {k: v for k, v in variables.items() if k != "aux_logits"}
    for train in (False, True):
        out, state = jax.eval_shape(lambda v, x, t=train: model.apply(
            v, x, train=t, rngs={"dropout": jax.random.key(0)},
            mutable=["batch_stats", "aux_logits"]), variables, x)
        chex.assert_shape(out, (2, side, side + 32, 5))
        assert out.dtype == jnp.float32
        assert "aux_logits" not in state


@pytest.mark.parametrize("name", TINY)
def test_logits_stay_float32_when_computing_in_bfloat16(name):
    model = MODELS.get(name)(num_classes=5, dtype=jnp.bfloat16)
    x = jax.ShapeDtypeStruct((1, 64, 64, 3), jnp.float32)
    out = jax.eval_shape(lambda x: model.init_with_output(RNGS, x)[0], x)
    assert out.dtype == jnp.float32 and out.shape == (1, 64, 64, 5)


@pytest.mark.parametrize("name", ["fcn_resnet_tiny", "deeplabv3_tiny"])
def test_aux_head_sows_logits_at_input_size(name):
    model = MODELS.get(name)(num_classes=5, aux_head=True)
    x = jax.ShapeDtypeStruct((2, 32, 48, 3), jnp.float32)
    variables = jax.eval_shape(lambda x: model.init(RNGS, x), x)
    variables = {k: v for k, v in variables.items() if k != "aux_logits"}
    _, state = jax.eval_shape(lambda v, x: model.apply(
        v, x, train=True, rngs={"dropout": jax.random.key(0)},
        mutable=["batch_stats", "aux_logits"]), variables, x)
    (aux,) = state["aux_logits"]["aux"]
    chex.assert_shape(aux, (2, 32, 48, 5))
    assert aux.dtype == jnp.float32
    assert "aux_classifier" in variables["params"]


@pytest.mark.parametrize("name,side,match", [
    ("fcn8s_tiny", 48, "fcn8s needs image sides that are multiples of 32 \\(got 48x48\\)"),
    ("fcn32s_tiny", 16, "multiples of 32"),
    ("unet_tiny", 20, "unet with depth=3 needs image sides that are multiples of 8"),
    ("vit_segmenter_tiny", 30, "vit_segmenter with patch_size=4 needs image sides that are "
                               "multiples of 4"),
])
def test_sizes_a_model_cannot_take_fail_in_one_line(name, side, match):
    model = MODELS.get(name)(num_classes=3)
    with pytest.raises(ConfigError, match=match) as e:
        jax.eval_shape(lambda x: model.init(RNGS, x),
                       jax.ShapeDtypeStruct((1, side, side, 3), jnp.float32))
    assert "\n" not in str(e.value) and "config.dataset" in str(e.value)


def test_bad_fields_fail_in_one_line():
    x = jax.ShapeDtypeStruct((1, 32, 32, 3), jnp.float32)
    for name, fields, match in [
        ("deeplabv3_tiny", dict(output_stride=32), "config.model.output_stride=32"),
        ("deeplabv3_tiny", dict(atrous_rates=(1, 2)), "config.model.atrous_rates"),
        ("fcn_resnet_tiny", dict(stage_sizes=(1, 1, 1)), "config.model.stage_sizes"),
        ("fcn8s_tiny", dict(stages=((8,), (8,))), "config.model.stages"),
        ("resnet_tiny", dict(replace_stride_with_dilation=(True, False, False)),
         "needs block='bottleneck'"),
        ("resnet_bottleneck_tiny", dict(replace_stride_with_dilation=(False, True, False)),
         "dilates stage 3, but the ResNet has 2 stages"),
    ]:
        model = MODELS.get(name)(**fields)
        with pytest.raises(ConfigError, match=match):
            jax.eval_shape(lambda x, m=model: m.init(RNGS, x), x)


def test_unet_skip_switch_changes_only_the_first_up_convs():
    with_skips = flatten_with_paths(abstract_variables("unet", 64, channels=1)["params"])
    without = flatten_with_paths(abstract_variables(
        "unet", 64, channels=1, skip_connections=False)["params"])
    assert set(with_skips) == set(without)
    changed = {k for k in with_skips if with_skips[k].shape != without[k].shape}
    assert changed == {f"up{i}_conv1/kernel" for i in (1, 2, 3, 4)}
    for i, c in zip((4, 3, 2, 1), (512, 256, 128, 64)):
        assert with_skips[f"up{i}_conv1/kernel"].shape == (3, 3, 2 * c, c)
        assert without[f"up{i}_conv1/kernel"].shape == (3, 3, c, c)  # up-conv output only


# ---------------------------------------------------------------- classifier weights load

def _merge_report(classifier, c_side, segmenter, s_side, collection="params"):
    source = numpy_init(classifier, jnp.zeros((1, c_side, c_side, 3)))
    target = jax.eval_shape(lambda x: segmenter.init(RNGS, x),
                            jax.ShapeDtypeStruct((1, s_side, s_side, 3), jnp.float32))
    _, report = merge_matching(target[collection], source[collection])
    return report


def _top(paths: list[str]) -> set[str]:
    return {p.split("/")[0] for p in paths}


@pytest.mark.parametrize("name", ["fcn_resnet_tiny", "deeplabv3_tiny"])
def test_resnet_classifier_loads_into_the_whole_encoder(name):
    classifier = MODELS.get("resnet50")(num_classes=10, stage_sizes=(1, 1, 1, 1), width=8)
    segmenter = MODELS.get(name)(num_classes=3, aux_head=True)
    for collection in ("params", "batch_stats"):
        report = _merge_report(classifier, 32, segmenter, 64, collection)
        assert report["skipped"] == []
        stem = {"conv1", "bn1"} if collection == "params" else {"bn1"}
        assert _top(report["loaded"]) == stem | {f"layer{s}_0" for s in range(1, 5)}
        assert _top(report["new"]) == {"classifier", "aux_classifier"}
        assert _top(report["unused"]) == ({"head"} if collection == "params" else set())


def test_vgg_classifier_loads_into_fcn_encoder_and_fc_layers():
    stages = ((8,), (16,), (16,), (32,), (32,))
    classifier = MODELS.get("vgg16_bn")(num_classes=10, stages=stages, stem="small",
                                        pooled_size=3, classifier_width=64)
    report = _merge_report(classifier, 32, MODELS.get("fcn8s_tiny")(num_classes=3), 64)
    assert report["skipped"] == []
    assert _top(report["loaded"]) == {f"{kind}{s}_1" for kind in ("conv", "bn")
                                      for s in range(1, 6)} | {"fc1", "fc2"}
    assert _top(report["new"]) == {"score_fr", "score_pool4", "score_pool3", "upscore2",
                                   "upscore_pool4"}
    assert _top(report["unused"]) == {"head"}


def test_vit_classifier_loads_into_vit_segmenter_encoder():
    classifier = MODELS.get("vit_nano")(num_classes=10)
    report = _merge_report(classifier, 32, MODELS.get("vit_segmenter_tiny")(num_classes=3), 32)
    assert report["skipped"] == []
    assert _top(report["loaded"]) == {"patch_embed", "cls_token", "position_embed", "encoder"}
    assert report["new"] == ["decoder/bias", "decoder/kernel"]
    assert _top(report["unused"]) == {"head"}


def test_fcn_fc6_is_the_classifier_fc1_slid_over_the_map():
    """At the centre of a 3x3 pool5 map, fc6 (fc_kernel=3) sees exactly the classifier's input."""
    stages = ((8,), (16,), (16,), (32,), (32,))
    classifier = MODELS.get("vgg16")(num_classes=10, stages=stages, stem="small", pooled_size=3,
                                     classifier_width=64)
    x = np.random.default_rng(0).standard_normal((2, 96, 96, 3)).astype(np.float32)
    variables = numpy_init(classifier, jnp.asarray(x))
    fcn = MODELS.get("fcn8s_tiny")(num_classes=3, batch_norm=False)
    merged, _ = merge_matching(numpy_init(fcn, jnp.asarray(x)), variables)
    is_fc1 = lambda mdl, _: mdl.name == "fc1"
    _, ours = fcn.apply(merged, x, capture_intermediates=is_fc1, mutable=["intermediates"])
    _, ref = classifier.apply(variables, x, capture_intermediates=is_fc1,
                              mutable=["intermediates"])
    fc6 = ours["intermediates"]["fc1"]["__call__"][0]
    chex.assert_shape(fc6, (2, 3, 3, 64))
    np.testing.assert_allclose(fc6[:, 1, 1], ref["intermediates"]["fc1"]["__call__"][0],
                               rtol=1e-5, atol=1e-5)


# ---------------------------------------------------------------- dilation against torch

# torchvision's _make_layer, written out for stage sizes (1, 2, 2, 2): per block of stages
# 2..4 the (stride, dilation) of its 3x3 conv (the first block keeps the previous dilation).
TORCHVISION_DILATIONS = {
    (False, True, True): [[(2, 1), (1, 1)], [(1, 1), (1, 2)], [(1, 2), (1, 4)]],  # stride 8
    (False, False, True): [[(2, 1), (1, 1)], [(2, 1), (1, 1)], [(1, 1), (1, 2)]],  # stride 16
}


class _TorchBottleneck(tnn.Module):
    """torchvision's Bottleneck (v1.5): 1x1, 3x3 (stride, dilation, padding = dilation), 1x1."""

    def __init__(self, cin: int, planes: int, stride: int, dilation: int):
        super().__init__()
        self.conv1, self.bn1 = tnn.Conv2d(cin, planes, 1, bias=False), tnn.BatchNorm2d(planes)
        self.conv2 = tnn.Conv2d(planes, planes, 3, stride, padding=dilation, dilation=dilation,
                                bias=False)
        self.bn2 = tnn.BatchNorm2d(planes)
        self.conv3 = tnn.Conv2d(planes, planes * 4, 1, bias=False)
        self.bn3 = tnn.BatchNorm2d(planes * 4)
        self.downsample = None
        if stride != 1 or cin != planes * 4:
            self.downsample = tnn.Sequential(tnn.Conv2d(cin, planes * 4, 1, stride, bias=False),
                                             tnn.BatchNorm2d(planes * 4))

    def forward(self, x):
        y = F.relu(self.bn1(self.conv1(x)))
        y = F.relu(self.bn2(self.conv2(y)))
        y = self.bn3(self.conv3(y))
        return F.relu(y + (x if self.downsample is None else self.downsample(x)))


class _TorchDilatedResNet(tnn.Module):
    """A torchvision-layout bottleneck ResNet, stage sizes (1, 2, 2, 2), given dilations."""

    def __init__(self, width: int, dilations, classes: int):
        super().__init__()
        self.conv1 = tnn.Conv2d(3, width, 7, 2, 3, bias=False)
        self.bn1 = tnn.BatchNorm2d(width)
        self.layer1 = tnn.Sequential(_TorchBottleneck(width, width, 1, 1))
        cin = width * 4
        for s, blocks in enumerate(dilations):
            planes = width * 2 ** (s + 1)
            layers = []
            for stride, dilation in blocks:
                layers.append(_TorchBottleneck(cin, planes, stride, dilation))
                cin = planes * 4
            setattr(self, f"layer{s + 2}", tnn.Sequential(*layers))
        self.fc = tnn.Linear(cin, classes)

    def stages(self, x):
        x = F.max_pool2d(F.relu(self.bn1(self.conv1(x))), 3, 2, 1)
        out = []
        for s in range(1, 5):
            x = getattr(self, f"layer{s}")(x)
            out.append(x)
        return out

    def forward(self, x):
        return self.fc(self.stages(x)[-1].mean((2, 3)))


def _randomise(module: tnn.Module, seed: int) -> None:
    """Weights ~ N(0, 1/fan_in) and random BatchNorm affine and statistics (activations O(1))."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, t in module.state_dict().items():
            if name.endswith("num_batches_tracked"):
                continue
            if name.endswith("running_var") or (name.endswith("weight") and t.ndim == 1):
                t.copy_(0.5 + torch.rand(t.shape, generator=g))
            elif t.ndim > 1:
                t.copy_(torch.randn(t.shape, generator=g) / np.sqrt(t[0].numel()))
            else:
                t.copy_(0.1 * torch.randn(t.shape, generator=g))


def _state_dict(module: tnn.Module, prefix: str = "") -> dict[str, np.ndarray]:
    return {k[len(prefix):]: v.detach().numpy().copy() for k, v in module.state_dict().items()
            if k.startswith(prefix)}


def _nchw(x_BHWC: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.array(x_BHWC)).permute(0, 3, 1, 2)


def _nhwc(t: torch.Tensor) -> np.ndarray:
    return t.permute(0, 2, 3, 1).numpy()


@pytest.mark.parametrize("replace", sorted(TORCHVISION_DILATIONS))
def test_dilated_resnet_matches_torch(replace):
    ref = _TorchDilatedResNet(4, TORCHVISION_DILATIONS[replace], classes=5)
    _randomise(ref, 0)
    ref.eval()
    model = MODELS.get("resnet50")(num_classes=5, stage_sizes=(1, 2, 2, 2), width=4,
                                   replace_stride_with_dilation=replace)
    variables = convert_resnet(_state_dict(ref))  # torchvision weights load unchanged
    x = np.random.default_rng(0).standard_normal((2, 64, 64, 3)).astype(np.float32)
    logits, state = model.apply(variables, x, mutable=["intermediates"])
    with torch.no_grad():
        stages = ref.stages(_nchw(x))
        expected = ref(_nchw(x)).numpy()
    layer4 = state["intermediates"]["layer4"][0]
    side = 64 // (8 if replace[1] else 16)  # the output stride
    chex.assert_shape(layer4, (2, side, side, 128))
    np.testing.assert_allclose(layer4, _nhwc(stages[3]), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(logits, expected, rtol=1e-5, atol=1e-5)


class _TorchASPP(tnn.Module):
    """torchvision's ASPP: 1x1, three atrous 3x3, image pooling; concat; 1x1 project."""

    def __init__(self, cin: int, rates, width: int):
        super().__init__()

        def cbr(k, d=1):
            return [tnn.Conv2d(cin, width, k, padding=d * (k // 2), dilation=d, bias=False),
                    tnn.BatchNorm2d(width), tnn.ReLU()]
        self.convs = tnn.ModuleList([tnn.Sequential(*cbr(1))]
                                    + [tnn.Sequential(*cbr(3, r)) for r in rates]
                                    + [tnn.Sequential(tnn.AdaptiveAvgPool2d(1), *cbr(1))])
        self.project = tnn.Sequential(tnn.Conv2d(5 * width, width, 1, bias=False),
                                      tnn.BatchNorm2d(width), tnn.ReLU(), tnn.Dropout(0.5))

    def forward(self, x):
        res = [conv(x) for conv in self.convs[:-1]]
        res.append(F.interpolate(self.convs[-1](x), size=x.shape[-2:], mode="bilinear",
                                 align_corners=False))
        return self.project(torch.cat(res, 1))


def _torch_fcn_head(cin: int, classes: int) -> tnn.Sequential:
    return tnn.Sequential(tnn.Conv2d(cin, cin // 4, 3, padding=1, bias=False),
                          tnn.BatchNorm2d(cin // 4), tnn.ReLU(), tnn.Dropout(0.1),
                          tnn.Conv2d(cin // 4, classes, 1))


def _conv_and_bn(sd, torch_conv, torch_bn, path, variables, bias=False):
    """Copies one torch conv (+ BN) into our variables at `path` ({path}_conv / _bn or path)."""
    conv_path, bn_path = path
    params, stats = variables["params"], variables["batch_stats"]

    def put(tree, p, value):
        *parents, leaf = p.split("/")
        for q in parents:
            tree = tree.setdefault(q, {})
        tree[leaf] = value
    put(params, f"{conv_path}/kernel", sd[f"{torch_conv}.weight"].transpose(2, 3, 1, 0))
    if bias:
        put(params, f"{conv_path}/bias", sd[f"{torch_conv}.bias"])
    if torch_bn is not None:
        put(params, f"{bn_path}/scale", sd[f"{torch_bn}.weight"])
        put(params, f"{bn_path}/bias", sd[f"{torch_bn}.bias"])
        put(stats, f"{bn_path}/mean", sd[f"{torch_bn}.running_mean"])
        put(stats, f"{bn_path}/var", sd[f"{torch_bn}.running_var"])


@pytest.mark.parametrize("name", ["fcn_resnet_tiny", "deeplabv3_tiny"])
def test_resnet_segmenters_match_torchvision_layout(name):
    """The tiny models (stages (1, 2, 2, 2), output stride 8, aux head) against the same
    network built from torch.nn layers as torchvision builds it, weights copied across."""
    rates = (1, 2, 3)
    ref = tnn.Module()
    ref.backbone = _TorchDilatedResNet(8, TORCHVISION_DILATIONS[(False, True, True)], 5)
    if name == "fcn_resnet_tiny":
        ref.classifier = _torch_fcn_head(256, 5)
    else:
        ref.classifier = tnn.Sequential(_TorchASPP(256, rates, 32),
                                        tnn.Conv2d(32, 32, 3, padding=1, bias=False),
                                        tnn.BatchNorm2d(32), tnn.ReLU(), tnn.Conv2d(32, 5, 1))
    ref.aux_classifier = _torch_fcn_head(128, 5)
    _randomise(ref, 1)
    ref.eval()
    sd = _state_dict(ref)
    variables = convert_resnet(_state_dict(ref, "backbone."))
    del variables["params"]["head"]
    fcn_head = [("0", "1", "conv", "bn"), ("4", None, "out", None)]
    for head in ("classifier", "aux_classifier") if name == "fcn_resnet_tiny" else (
            "aux_classifier",):
        for conv, bn, ours_conv, ours_bn in fcn_head:
            _conv_and_bn(sd, f"{head}.{conv}", bn and f"{head}.{bn}",
                         (f"{head}/{ours_conv}", f"{head}/{ours_bn}"), variables,
                         bias=ours_conv == "out")
    if name == "deeplabv3_tiny":
        a = "classifier.0"
        branches = [(f"{a}.convs.{i}.0", f"{a}.convs.{i}.1", f"branch{i}") for i in range(4)]
        branches += [(f"{a}.convs.4.1", f"{a}.convs.4.2", "pool"),
                     (f"{a}.project.0", f"{a}.project.1", "project")]
        for conv, bn, ours in branches:
            _conv_and_bn(sd, conv, bn, (f"classifier/aspp/{ours}_conv",
                                        f"classifier/aspp/{ours}_bn"), variables)
        _conv_and_bn(sd, "classifier.1", "classifier.2", ("classifier/conv", "classifier/bn"),
                     variables)
        _conv_and_bn(sd, "classifier.4", None, ("classifier/out", None), variables, bias=True)
    model = MODELS.get(name)(num_classes=5, stage_sizes=(1, 2, 2, 2), aux_head=True,
                             **({"atrous_rates": rates} if name == "deeplabv3_tiny" else {}))
    x = np.random.default_rng(1).standard_normal((2, 64, 48, 3)).astype(np.float32)
    expected_shapes = jax.eval_shape(lambda: model.init(RNGS, jnp.asarray(x)))
    chex.assert_trees_all_equal_shapes(
        variables, {k: v for k, v in expected_shapes.items() if k != "aux_logits"})
    logits, state = model.apply(variables, x, mutable=["aux_logits"])
    with torch.no_grad():
        stages = ref.backbone.stages(_nchw(x))
        up = lambda t: F.interpolate(t, size=x.shape[1:3], mode="bilinear", align_corners=False)
        expected = up(ref.classifier(stages[3]))
        expected_aux = up(ref.aux_classifier(stages[2]))
    np.testing.assert_allclose(logits, _nhwc(expected), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(state["aux_logits"]["aux"][0], _nhwc(expected_aux), rtol=1e-5,
                               atol=1e-5)


# ---------------------------------------------------------------- upsampling

@pytest.mark.parametrize("size_in,size_out", [((4, 5), (32, 40)), ((3, 7), (13, 20))])
def test_bilinear_resize_matches_torch_interpolate(size_in, size_out):
    x = np.random.default_rng(2).standard_normal((2, *size_in, 3)).astype(np.float32)
    ours = resize_bilinear(jnp.asarray(x), *size_out)
    expected = F.interpolate(_nchw(x), size=size_out, mode="bilinear", align_corners=False)
    np.testing.assert_allclose(ours, _nhwc(expected), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("factor", [2, 4])
def test_transposed_conv_starts_as_bilinear_upsampling(factor):
    k = 2 * factor
    # linear interpolation by `factor`: tap i sits (i + 0.5 - factor) output pixels from the
    # kernel centre and weighs 1 - distance / factor; the 2-D kernel is the outer product
    taps = np.array([max(0.0, 1 - abs(i + 0.5 - factor) / factor) for i in range(k)])
    kernel = np.asarray(bilinear_init(None, (k, k, 3, 3)))
    for c_in in range(3):
        for c_out in range(3):
            expected = np.outer(taps, taps) if c_in == c_out else np.zeros((k, k))
            np.testing.assert_allclose(kernel[:, :, c_in, c_out], expected, atol=1e-7)
    # the module: torch's ConvTranspose2d(k=2f, s=f, padding=f/2) with that kernel
    x = np.random.default_rng(3).standard_normal((2, 5, 6, 3)).astype(np.float32)
    up = bilinear_conv_transpose(3, factor, "up")
    variables = jax.jit(up.init)(jax.random.key(0), x)
    y = up.apply(variables, x)
    chex.assert_shape(y, (2, 5 * factor, 6 * factor, 3))
    weight = torch.from_numpy(kernel.transpose(2, 3, 0, 1).copy())  # (C_in, C_out, kH, kW)
    expected = F.conv_transpose2d(_nchw(x), weight, stride=factor, padding=factor // 2)
    np.testing.assert_allclose(y, _nhwc(expected), rtol=1e-5, atol=1e-6)
    # inside the map (away from the zero padding) it is the bilinear resize
    resized = resize_bilinear(jnp.asarray(x), 5 * factor, 6 * factor)
    inner = (slice(None), slice(factor, -factor), slice(factor, -factor))
    np.testing.assert_allclose(y[inner], resized[inner], rtol=1e-5, atol=1e-5)


def nn_conv_transpose(features, stride, **kwargs):
    """flax's transposed convolution that `BlockConvTranspose` stands for."""
    return flax_nn.ConvTranspose(features, (stride, stride), strides=(stride, stride),
                                 padding="VALID", **kwargs)


@pytest.mark.parametrize("stride,shape,features", [(2, (2, 3, 4, 5), 6), (3, (1, 2, 3, 4), 2)])
def test_block_conv_transpose_is_flax_conv_transpose(stride, shape, features):
    """Each input pixel writes an s x s block (numpy, float64, taps flipped as lax applies
    them); flax's nn.ConvTranspose(k = s, stride s, VALID) with the same variables gives the
    same values and gradients, and its parameters the same names, shapes and initial values."""
    rng = np.random.default_rng(4)
    x = jnp.asarray(rng.standard_normal(shape), jnp.float32)
    theirs = nn_conv_transpose(features, stride)
    ours = BlockConvTranspose(features, stride)
    variables = theirs.init(jax.random.key(0), x)
    chex.assert_trees_all_equal(variables, ours.init(jax.random.key(0), x))  # the same init
    variables = jax.tree.map(lambda a: a + jnp.asarray(rng.standard_normal(a.shape), a.dtype),
                             variables)
    kernel = np.asarray(variables["params"]["kernel"], np.float64)
    b, h, w, _ = shape
    expected = np.zeros((b, h * stride, w * stride, features)) + np.asarray(
        variables["params"]["bias"], np.float64)
    for p in range(stride):
        for q in range(stride):
            expected[:, p::stride, q::stride] += np.einsum(
                "bhwc,cf->bhwf", np.asarray(x, np.float64), kernel[stride - 1 - p, stride - 1 - q])
    np.testing.assert_allclose(ours.apply(variables, x), expected, rtol=1e-5, atol=1e-5)
    cotangent = jnp.asarray(rng.standard_normal(expected.shape), jnp.float32)

    def loss(module):
        return lambda v, x: jnp.sum(module.apply(v, x) * cotangent)

    chex.assert_trees_all_close(jax.value_and_grad(loss(ours), argnums=(0, 1))(variables, x),
                                jax.value_and_grad(loss(theirs), argnums=(0, 1))(variables, x),
                                rtol=1e-5, atol=1e-5)


def test_block_conv_transpose_dtypes_follow_flax():
    x = jnp.asarray(np.random.default_rng(5).standard_normal((2, 3, 3, 4)), jnp.bfloat16)
    for kwargs in ({}, {"dtype": jnp.bfloat16}, {"dtype": jnp.float32},
                   {"param_dtype": jnp.bfloat16}):
        theirs = nn_conv_transpose(3, 2, **kwargs)
        variables = theirs.init(jax.random.key(0), x)
        mine = BlockConvTranspose(3, 2, **kwargs).apply(variables, x)
        expected = theirs.apply(variables, x)
        assert mine.dtype == expected.dtype, kwargs
        np.testing.assert_allclose(np.asarray(mine, np.float32), np.asarray(expected, np.float32),
                                   rtol=2e-2, atol=2e-2)


def test_fcn8s_starts_from_the_fcn32s_prediction():
    """The paper trains FCN-16s/8s from the coarser net with zero-initialised score_pool
    layers: at that start the output is score_fr upsampled (x2 bilinear, x2 bilinear, x8),
    whatever pool3 and pool4 hold."""
    x = np.random.default_rng(4).standard_normal((2, 64, 96, 3)).astype(np.float32)
    fcn32 = MODELS.get("fcn32s_tiny")(num_classes=4, batch_norm=False)
    trained = numpy_init(fcn32, jnp.asarray(x), seed=4)  # stands for a trained FCN-32s
    fcn8 = MODELS.get("fcn8s_tiny")(num_classes=4, batch_norm=False)
    start, report = merge_matching(fcn8.init(FAST_RNGS, x)["params"], trained["params"])
    start = {"params": start}
    assert _top(report["new"]) == {"score_pool4", "score_pool3", "upscore2", "upscore_pool4"}
    out8 = fcn8.apply(start, x)
    _, state = fcn32.apply(trained, x, mutable=["intermediates"])
    score_fr = _nchw(np.asarray(state["intermediates"]["coarse_scores"][0]))
    weight = torch.from_numpy(np.asarray(bilinear_init(None, (4, 4, 4, 4))).transpose(2, 3, 0, 1)
                              .copy())
    with torch.no_grad():
        y = F.conv_transpose2d(F.conv_transpose2d(score_fr, weight, stride=2, padding=1),
                               weight, stride=2, padding=1)
        expected = F.interpolate(y, size=(64, 96), mode="bilinear", align_corners=False)
    np.testing.assert_allclose(out8, _nhwc(expected), rtol=1e-5, atol=1e-5)
