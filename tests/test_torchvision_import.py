"""torchvision state dict -> our variables: structure at full size, values by forward parity."""

from __future__ import annotations

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
from torch import nn as tnn

from benchmarks.bench_cnn import torch_reference_models
from dl_arch.interop.torchvision import convert, load_state_dict
from dl_arch.models.cnn.vgg import VGG_STAGES
from dl_arch.registry import MODELS


def torchvision_resnet_keys(stage_sizes, bottleneck, width=64, classes=1000, cin=3):
    """torchvision.models.resnet's state-dict keys and shapes, written out from its source."""
    def bn(prefix, c):
        return {f"{prefix}.weight": (c,), f"{prefix}.bias": (c,), f"{prefix}.running_mean": (c,),
                f"{prefix}.running_var": (c,), f"{prefix}.num_batches_tracked": ()}

    keys = {"conv1.weight": (width, cin, 7, 7), **bn("bn1", width)}
    inplanes, expansion = width, (4 if bottleneck else 1)
    for s, n in enumerate(stage_sizes):
        planes = width * 2**s
        for b in range(n):
            p = f"layer{s + 1}.{b}"
            if bottleneck:
                convs = [(planes, inplanes, 1), (planes, planes, 3), (planes * 4, planes, 1)]
            else:
                convs = [(planes, inplanes, 3), (planes, planes, 3)]
            for i, (o, c, k) in enumerate(convs):
                keys[f"{p}.conv{i + 1}.weight"] = (o, c, k, k)
                keys.update(bn(f"{p}.bn{i + 1}", o))
            if b == 0 and (s > 0 or inplanes != planes * expansion):
                keys[f"{p}.downsample.0.weight"] = (planes * expansion, inplanes, 1, 1)
                keys.update(bn(f"{p}.downsample.1", planes * expansion))
            inplanes = planes * expansion
    keys.update({"fc.weight": (classes, inplanes), "fc.bias": (classes,)})
    return keys


def torchvision_vgg_keys(depth, batch_norm, classes=1000):
    """torchvision.models.vgg's state-dict keys (features.i, classifier.0/3/6) and shapes."""
    keys, index, cin = {}, 0, 3
    for stage in VGG_STAGES[depth]:
        for c in stage:
            keys[f"features.{index}.weight"], keys[f"features.{index}.bias"] = (c, cin, 3, 3), (c,)
            index += 1
            if batch_norm:
                for n in ("weight", "bias", "running_mean", "running_var"):
                    keys[f"features.{index}.{n}"] = (c,)
                keys[f"features.{index}.num_batches_tracked"] = ()
                index += 1
            index, cin = index + 1, c
        index += 1
    for i, (o, n_in) in zip((0, 3, 6), ((4096, 512 * 49), (4096, 4096), (classes, 4096)),
                            strict=True):
        keys[f"classifier.{i}.weight"], keys[f"classifier.{i}.bias"] = (o, n_in), (o,)
    return keys


def _abstract(keys):
    return {k: jax.ShapeDtypeStruct(s, jnp.int64 if k.endswith("tracked") else jnp.float32)
            for k, s in keys.items()}


def _assert_same_structure(converted, expected):
    chex.assert_trees_all_equal_structs(converted, expected)
    chex.assert_trees_all_equal_shapes(converted, expected)


@pytest.mark.parametrize("name,n_keys", [("resnet18", 122), ("resnet50", 320), ("vgg16", 32),
                                         ("vgg16_bn", 97)])
def test_full_size_conversion_has_exactly_our_structure(name, n_keys):
    if name.startswith("resnet"):
        keys = torchvision_resnet_keys((2, 2, 2, 2) if name == "resnet18" else (3, 4, 6, 3),
                                       bottleneck=name == "resnet50")
    else:
        keys = torchvision_vgg_keys(16, batch_norm=name.endswith("_bn"))
    assert len(keys) == n_keys  # len(torchvision.models.<name>().state_dict())
    converted = jax.eval_shape(lambda sd: convert(name, sd), _abstract(keys))
    model = MODELS.get(name)(num_classes=1000)
    expected = jax.eval_shape(
        lambda x: model.init(jax.random.key(0), x), jax.ShapeDtypeStruct((1, 224, 224, 3),
                                                                          jnp.float32))
    _assert_same_structure(converted, expected)


def _randomise(module: tnn.Module, seed: int) -> None:
    """Random weights and BatchNorm statistics, so a misplaced tensor changes the output."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, t in module.state_dict().items():
            if name.endswith("num_batches_tracked"):
                continue
            if name.endswith("running_var") or (name.endswith("weight") and t.ndim == 1):
                t.copy_(0.5 + torch.rand(t.shape, generator=g))
            else:
                t.copy_(0.3 * torch.randn(t.shape, generator=g))


def _numpy_state_dict(module: tnn.Module) -> dict[str, np.ndarray]:
    return {k: v.detach().numpy().copy() for k, v in module.state_dict().items()}


@pytest.mark.parametrize("block,name", [("basic", "resnet18"), ("bottleneck", "resnet50")])
def test_resnet_forward_matches_torch(block, name):
    torch_mod, TorchResNet, _ = torch_reference_models()
    ref = TorchResNet((1, 2, 1, 1), block, num_classes=5, width=4)
    _randomise(ref, 0)
    ref.eval()
    sd = _numpy_state_dict(ref)
    assert set(sd) == set(torchvision_resnet_keys((1, 2, 1, 1), block == "bottleneck", 4, 5))
    variables = convert(name, sd)
    x_BHWC = np.random.default_rng(0).standard_normal((2, 64, 64, 3), np.float32)
    with torch_mod.no_grad():
        expected = ref(torch_mod.from_numpy(x_BHWC).permute(0, 3, 1, 2)).numpy()
    model = MODELS.get(name)(num_classes=5, stage_sizes=(1, 2, 1, 1), width=4)
    chex.assert_trees_all_close(model.apply(variables, x_BHWC), expected, atol=1e-4, rtol=1e-4)


def _torchvision_style_vgg(stages, batch_norm, width, classes):
    """torchvision's VGG construction (make_layers + classifier), at narrow widths."""
    layers, cin = [], 3
    for stage in stages:
        for c in stage:
            layers.append(tnn.Conv2d(cin, c, 3, padding=1))
            layers += [tnn.BatchNorm2d(c)] if batch_norm else []
            layers.append(tnn.ReLU())
            cin = c
        layers.append(tnn.MaxPool2d(2, 2))
    net = tnn.Module()
    net.features = tnn.Sequential(*layers)
    net.avgpool = tnn.AdaptiveAvgPool2d(7)
    net.classifier = tnn.Sequential(
        tnn.Linear(cin * 49, width), tnn.ReLU(), tnn.Dropout(), tnn.Linear(width, width),
        tnn.ReLU(), tnn.Dropout(), tnn.Linear(width, classes))
    net.forward = lambda x: net.classifier(torch.flatten(net.avgpool(net.features(x)), 1))
    return net


def _numpy_conv3x3(x_HWC, w_OIHW, b_O):
    """Cross-correlation with zero padding 1, straight from the definition."""
    h, w, _ = x_HWC.shape
    xp = np.pad(x_HWC, ((1, 1), (1, 1), (0, 0)))
    out = np.empty((h, w, w_OIHW.shape[0]))
    for i in range(h):
        for j in range(w):
            out[i, j] = np.einsum("hwc,ochw->o", xp[i:i + 3, j:j + 3], w_OIHW) + b_O
    return out


@pytest.mark.parametrize("batch_norm", [False, True])
def test_vgg16_forward_matches_torch_and_first_conv_matches_numpy(batch_norm):
    stages = tuple(tuple(max(2, c // 64) for c in s) for s in VGG_STAGES[16])
    ref = _torchvision_style_vgg(stages, batch_norm, width=16, classes=5)
    _randomise(ref, 1)
    ref.eval()
    sd = _numpy_state_dict(ref)
    name = "vgg16_bn" if batch_norm else "vgg16"
    variables = convert(name, sd)
    model = MODELS.get(name)(num_classes=5, stages=stages, classifier_width=16)
    x_BHWC = np.random.default_rng(1).standard_normal((2, 64, 64, 3), np.float32)
    logits, state = model.apply(variables, x_BHWC, capture_intermediates=True,
                                mutable=["intermediates"])
    with torch.no_grad():
        expected = ref.forward(torch.from_numpy(x_BHWC).permute(0, 3, 1, 2)).numpy()
    # Final map is 2x2 -> pooled 7x7: the C,H,W -> H,W,C row order of fc1 matters here.
    chex.assert_trees_all_close(logits, expected, atol=1e-4, rtol=1e-4)
    first = np.asarray(state["intermediates"]["conv1_1"]["__call__"][0][0])
    ref_first = _numpy_conv3x3(x_BHWC[0, :12, :12], sd["features.0.weight"], sd["features.0.bias"])
    np.testing.assert_allclose(first[:11, :11], ref_first[:11, :11], atol=1e-4, rtol=1e-4)


def test_alexnet_forward_matches_torch():
    ref = tnn.Module()
    ref.features = tnn.Sequential(
        tnn.Conv2d(3, 4, 11, 4, 2), tnn.ReLU(), tnn.MaxPool2d(3, 2), tnn.Conv2d(4, 6, 5, padding=2),
        tnn.ReLU(), tnn.MaxPool2d(3, 2), tnn.Conv2d(6, 8, 3, padding=1), tnn.ReLU(),
        tnn.Conv2d(8, 6, 3, padding=1), tnn.ReLU(), tnn.Conv2d(6, 6, 3, padding=1), tnn.ReLU(),
        tnn.MaxPool2d(3, 2))
    ref.avgpool = tnn.AdaptiveAvgPool2d(6)
    ref.classifier = tnn.Sequential(tnn.Dropout(), tnn.Linear(216, 12), tnn.ReLU(), tnn.Dropout(),
                                    tnn.Linear(12, 12), tnn.ReLU(), tnn.Linear(12, 5))
    _randomise(ref, 2)
    ref.eval()
    x_BHWC = np.random.default_rng(2).standard_normal((2, 99, 99, 3), np.float32)
    with torch.no_grad():
        feats = ref.avgpool(ref.features(torch.from_numpy(x_BHWC).permute(0, 3, 1, 2)))
        expected = ref.classifier(torch.flatten(feats, 1)).numpy()
    model = MODELS.get("alexnet")(num_classes=5, features=(4, 6, 8, 6, 6), classifier_width=12)
    logits = model.apply(convert("alexnet", _numpy_state_dict(ref)), x_BHWC)
    chex.assert_trees_all_close(logits, expected, atol=1e-4, rtol=1e-4)


def test_wrong_state_dicts_fail_clearly():
    keys = torchvision_resnet_keys((2, 2, 2, 2), bottleneck=False)
    missing = {k: v for k, v in _abstract(keys).items() if k != "layer2.0.bn1.running_var"}
    with pytest.raises(ValueError, match="lacks 'layer2.0.bn1.running_var'"):
        jax.eval_shape(lambda sd: convert("resnet18", sd), missing)
    extra = {**_abstract(keys), "fc2.weight": jax.ShapeDtypeStruct((3, 3), jnp.float32)}
    with pytest.raises(ValueError, match="keys this architecture lacks"):
        jax.eval_shape(lambda sd: convert("resnet18", sd), extra)
    with pytest.raises(ValueError, match="no torchvision converter for 'googlenet'"):
        convert("googlenet", {})


def test_load_state_dict_reads_safetensors_and_pth(tmp_path):
    from safetensors.numpy import save_file

    sd = {"fc.weight": np.arange(6, dtype=np.float32).reshape(2, 3),
          "fc.bias": np.ones(2, np.float32)}
    save_file(sd, str(tmp_path / "w.safetensors"))
    torch.save({k: torch.from_numpy(v) for k, v in sd.items()}, tmp_path / "w.pth")
    for path in ("w.safetensors", "w.pth"):
        loaded = load_state_dict(str(tmp_path / path))
        chex.assert_trees_all_equal(loaded, sd)
