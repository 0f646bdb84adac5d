"""The CNN benchmark's PyTorch MobileNetV2 (`benchmarks/bench_cnn.py`) is our model: with our
parameters and BatchNorm statistics copied in, its logits equal ours."""

from __future__ import annotations

import jax
import numpy as np
import torch

from benchmarks import bench_cnn
from dl_arch.registry import MODELS


def _conv_bn(conv_bn, params, stats, conv_name, bn_name):
    """Copies one of our conv + BatchNorm pairs into a torch Sequential(conv, bn, ...)."""
    conv, bn = conv_bn[0], conv_bn[1]
    kernel_HWIO = np.asarray(params[conv_name]["kernel"])
    conv.weight.data = torch.from_numpy(kernel_HWIO.transpose(3, 2, 0, 1).copy())
    bn.weight.data = torch.from_numpy(np.asarray(params[bn_name]["scale"]).copy())
    bn.bias.data = torch.from_numpy(np.asarray(params[bn_name]["bias"]).copy())
    bn.running_mean.data = torch.from_numpy(np.asarray(stats[bn_name]["mean"]).copy())
    bn.running_var.data = torch.from_numpy(np.asarray(stats[bn_name]["var"]).copy())


def test_torch_mobilenet_v2_reference_is_our_model():
    ours = MODELS.get("mobilenet_v2")(num_classes=10, stem="small", dropout_rate=0.0)
    x = np.random.default_rng(0).standard_normal((2, 32, 32, 3)).astype(np.float32)
    variables = jax.jit(ours.init)(jax.random.key(0), x)
    # random running statistics, so that BatchNorm's copy is checked too
    keys = iter(jax.random.split(jax.random.key(1), 1000))
    stats = jax.tree.map(lambda a: a + 0.5 * jax.random.uniform(next(keys), a.shape),
                         variables["batch_stats"])
    params = variables["params"]
    theirs = bench_cnn._torch_mobilenet_v2(torch)(10).eval()
    n_ours = sum(np.size(a) for a in jax.tree.leaves(params))
    assert sum(p.numel() for p in theirs.parameters()) == n_ours

    features = list(theirs.features)
    _conv_bn(features[0], params, stats, "stem_conv", "stem_bn")
    for i, block in enumerate(features[1:-1]):
        names = [n for n in ("expand", "depthwise", "project") if f"{n}_conv" in params[f"block{i}"]]
        assert len(names) == len(block.layers)
        for layer, name in zip(block.layers, names, strict=True):
            _conv_bn(layer, params[f"block{i}"], stats[f"block{i}"], f"{name}_conv", f"{name}_bn")
    _conv_bn(features[-1], params, stats, "last_conv", "last_bn")
    theirs.fc.weight.data = torch.from_numpy(np.asarray(params["head"]["kernel"]).T.copy())
    theirs.fc.bias.data = torch.from_numpy(np.asarray(params["head"]["bias"]).copy())

    want = jax.jit(ours.apply)({"params": params, "batch_stats": stats}, x)
    assert np.std(np.asarray(want)) > 0.01  # logits that differ, not a constant output
    with torch.no_grad():
        got = theirs(torch.from_numpy(x).permute(0, 3, 1, 2)).numpy()
    np.testing.assert_allclose(got, np.asarray(want), rtol=1e-4, atol=1e-5)
