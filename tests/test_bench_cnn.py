"""The CNN benchmark's PyTorch MobileNetV2 (`benchmarks/bench_cnn.py`) is our model: its
weights and BatchNorm statistics, converted with the torchvision importer's builder, give
our MobileNetV2 the same logits, and every one of its parameters is used."""

from __future__ import annotations

import jax
import numpy as np
import torch

from benchmarks import bench_cnn
from dl_arch.interop.torchvision import _Builder, dense_kernel
from dl_arch.registry import MODELS


def test_torch_mobilenet_v2_reference_is_our_model():
    torch.manual_seed(0)
    theirs = bench_cnn._torch_mobilenet_v2(torch)(10).eval()
    for m in theirs.modules():  # running statistics that differ from the init's, so they count
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 1.5)
    b = _Builder({k: v.numpy() for k, v in theirs.state_dict().items()})
    n_features = len(theirs.features)
    b.conv("features.0.0", "stem_conv")
    b.bn("features.0.1", "stem_bn")
    for i in range(1, n_features - 1):
        layers = len(theirs.features[i].layers)
        names = ["expand", "depthwise", "project"][3 - layers:]
        for j, name in enumerate(names):
            b.conv(f"features.{i}.layers.{j}.0", f"block{i - 1}/{name}_conv")
            b.bn(f"features.{i}.layers.{j}.1", f"block{i - 1}/{name}_bn")
    b.conv(f"features.{n_features - 1}.0", "last_conv")
    b.bn(f"features.{n_features - 1}.1", "last_bn")
    b.conv("fc", "head", bias=True, kernel=dense_kernel)
    variables = b.finish()  # raises if a PyTorch parameter found no place in ours

    ours = MODELS.get("mobilenet_v2")(num_classes=10, stem="small", dropout_rate=0.0)
    x = np.random.default_rng(0).standard_normal((2, 32, 32, 3)).astype(np.float32)
    shapes = jax.tree.map(np.shape, jax.eval_shape(ours.init, jax.random.key(0), x))
    assert jax.tree.map(np.shape, variables) == shapes  # the same tree, the same shapes
    want = jax.jit(ours.apply)(variables, x)
    assert np.std(np.asarray(want)) > 0.01  # logits that differ, not a constant output
    with torch.no_grad():
        got = theirs(torch.from_numpy(x).permute(0, 3, 1, 2)).numpy()
    np.testing.assert_allclose(got, np.asarray(want), rtol=1e-4, atol=1e-5)
