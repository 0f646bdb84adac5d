"""CNN family: exact parameter counts, shapes, pooling vs torch, BatchNorm modes, errors."""

from __future__ import annotations

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch

from dl_arch.models.cnn.common import adaptive_avg_pool, max_pool, numpy_init, param_count
from dl_arch.models.cnn.googlenet import INCEPTION_BLOCKS
from dl_arch.registry import MODELS

# torchvision's published parameter counts (224x224x3 inputs, 1000 classes).
TORCHVISION_COUNTS = {
    "alexnet": 61_100_840,
    "vgg11": 132_863_336, "vgg13": 133_047_848, "vgg16": 138_357_544, "vgg19": 143_667_240,
    "vgg11_bn": 132_868_840, "vgg13_bn": 133_053_736, "vgg16_bn": 138_365_992,
    "vgg19_bn": 143_678_248,
    "resnet18": 11_689_512, "resnet34": 21_797_672, "resnet50": 25_557_032,
    "resnet101": 44_549_160, "resnet152": 60_192_808,
    "mobilenet_v2": 3_504_872,
}
TINY = ["lenet5_tiny", "alexnet_tiny", "vgg_tiny", "vgg_bn_tiny", "resnet_tiny",
        "resnet_bottleneck_tiny", "googlenet_tiny", "mobilenet_v2_tiny"]


def abstract_variables(name: str, hw: int = 224, channels: int = 3, **fields):
    """Variables of a registered model as ShapeDtypeStructs (nothing is materialised)."""
    model = MODELS.get(name)(**fields)
    x = jax.ShapeDtypeStruct((1, hw, hw, channels), jnp.float32)
    return jax.eval_shape(lambda x: model.init(jax.random.key(0), x), x)


@pytest.mark.parametrize("name", sorted(TORCHVISION_COUNTS))
def test_parameter_count_matches_torchvision(name):
    variables = abstract_variables(name, num_classes=1000)
    assert param_count(variables["params"]) == TORCHVISION_COUNTS[name]


def test_googlenet_torchvision_layout_count():
    variables = abstract_variables("googlenet", num_classes=1000, layout="torchvision")
    assert param_count(variables["params"]) == 6_624_904


def _googlenet_paper_count(num_classes: int = 1000) -> int:
    """The paper layout counted by hand: conv weights + biases, 5x5 third branch, fc head."""
    conv = lambda k, cin, cout: k * k * cin * cout + cout
    total = conv(7, 3, 64) + conv(1, 64, 64) + conv(3, 64, 192)
    cin = 192
    for c1, c2r, c2, c3r, c3, c4 in INCEPTION_BLOCKS.values():
        total += conv(1, cin, c1) + conv(1, cin, c2r) + conv(3, c2r, c2)
        total += conv(1, cin, c3r) + conv(5, c3r, c3) + conv(1, cin, c4)
        cin = c1 + c2 + c3 + c4
    return total + cin * num_classes + num_classes


def test_googlenet_paper_layout_count():
    variables = abstract_variables("googlenet", num_classes=1000)
    assert param_count(variables["params"]) == _googlenet_paper_count() == 6_998_552


def test_googlenet_aux_heads_add_torchvision_aux_parameters():
    # torchvision's InceptionAux: 1x1 conv 128 (+BN), fc 2048->1024, fc 1024->classes.
    with_aux = abstract_variables("googlenet", num_classes=1000, layout="torchvision",
                                  aux_logits=True)
    aux_one = (512 * 128 + 2 * 128) + (2048 * 1024 + 1024) + (1024 * 1000 + 1000)
    aux_two = (528 * 128 + 2 * 128) + (2048 * 1024 + 1024) + (1024 * 1000 + 1000)
    assert param_count(with_aux["params"]) == 6_624_904 + aux_one + aux_two


def test_lenet5_count_both_stems():
    classic = abstract_variables("lenet5", hw=32, channels=1, num_classes=10)
    mnist = abstract_variables("lenet5", hw=28, channels=1, num_classes=10, stem="small")
    assert param_count(classic["params"]) == param_count(mnist["params"]) == 61_706


@pytest.mark.parametrize("name,hw,stem", [
    ("lenet5", 28, "small"), ("alexnet", 32, "small"), ("vgg11_bn", 32, "small"),
    ("resnet18", 32, "small"), ("resnet50", 32, "small"), ("googlenet", 32, "small"),
    ("mobilenet_v2", 32, "small"), ("alexnet", 224, "imagenet"), ("resnet50", 224, "imagenet"),
    ("googlenet", 224, "imagenet"), ("mobilenet_v2", 224, "imagenet"),
])
def test_output_shapes_full_models(name, hw, stem):
    model = MODELS.get(name)(num_classes=7, stem=stem)
    x = jax.ShapeDtypeStruct((2, hw, hw, 1 if name == "lenet5" else 3), jnp.float32)
    variables = jax.eval_shape(lambda x: model.init(jax.random.key(0), x), x)
    out = jax.eval_shape(lambda v, x: model.apply(v, x), variables, x)
    chex.assert_shape(out, (2, 7))
    assert out.dtype == jnp.float32


@pytest.mark.parametrize("name", TINY)
def test_tiny_variants_train_and_eval_modes(name):
    fields = {"aux_logits": True} if name.startswith("googlenet") else {}
    model = MODELS.get(name)(num_classes=5, **fields)
    channels = 1 if name.startswith("lenet") else 3
    x = jax.random.normal(jax.random.key(1), (4, 32, 32, channels))
    # numpy_init: the jax RNG of a full init costs more compile time than the test itself.
    variables = numpy_init(model, x)
    evaluate = jax.jit(lambda v, x: model.apply(v, x))
    logits = evaluate(variables, x)
    chex.assert_shape(logits, (4, 5))
    chex.assert_tree_all_finite(logits)
    mutable = [k for k in ("batch_stats", "aux_logits") if k in variables or fields]
    train = jax.jit(lambda v, x, rng: model.apply(v, x, train=True, rngs={"dropout": rng},
                                                  mutable=mutable))
    train_logits, updated = train(variables, x, jax.random.key(2))
    chex.assert_shape(train_logits, (4, 5))
    if not name.startswith(("lenet", "resnet")):  # models with dropout: rng changes outputs
        other_logits, _ = train(variables, x, jax.random.key(3))
        assert not np.allclose(train_logits, other_logits)
    else:
        chex.assert_trees_all_close(train(variables, x, jax.random.key(3))[0], train_logits)
    if fields:  # GoogLeNet's auxiliary heads sow their logits in train mode
        chex.assert_shape([updated["aux_logits"]["aux1"][0], updated["aux_logits"]["aux2"][0]],
                          (4, 5))
    if "batch_stats" in variables:
        changed = jax.tree_util.tree_map(lambda a, b: bool(jnp.any(a != b)),
                                         variables["batch_stats"], updated["batch_stats"])
        assert all(jax.tree_util.tree_leaves(changed)), "every BatchNorm must update its stats"
        # Eval mode normalises with running statistics: each example independent of the rest.
        chex.assert_trees_all_close(evaluate(variables, x[:1]), logits[:1], atol=1e-5,
                                    rtol=1e-5)


@pytest.mark.parametrize("name", ["resnet_tiny", "mobilenet_v2_tiny"])
def test_bfloat16_compute_keeps_float32_params_and_logits(name):
    model = MODELS.get(name)(num_classes=3, dtype=jnp.bfloat16)
    x = jnp.ones((2, 32, 32, 3))
    variables = numpy_init(model, x)
    assert {leaf.dtype for leaf in jax.tree_util.tree_leaves(variables)} == {jnp.dtype("float32")}
    logits, state = jax.jit(lambda v, x: model.apply(v, x, mutable=["intermediates"]))(
        variables, x)
    assert logits.dtype == jnp.float32
    assert {leaf.dtype for leaf in jax.tree_util.tree_leaves(state)} == {jnp.dtype("bfloat16")}


def test_init_draws_kernels_with_torchvision_scale():
    """model.init itself (jax RNG): conv kernels ~ N(0, 2 / fan_out), heads small."""
    model = MODELS.get("resnet_tiny")(num_classes=3)
    params = jax.jit(model.init)(jax.random.key(0), jnp.ones((1, 8, 8, 3)))["params"]
    kernel = np.asarray(params["layer2_0"]["conv2"]["kernel"])  # 3x3, 16 -> 16
    np.testing.assert_allclose(kernel.std(), np.sqrt(2.0 / (9 * 16)), rtol=0.1)


def test_intermediates_are_sown_per_stage():
    model = MODELS.get("resnet_tiny")(num_classes=3)
    x = jnp.ones((2, 32, 32, 3))
    variables = numpy_init(model, x)
    _, state = jax.jit(lambda v, x: model.apply(v, x, mutable=["intermediates"]))(variables, x)
    chex.assert_shape(state["intermediates"]["layer1"][0], (2, 32, 32, 8))
    chex.assert_shape(state["intermediates"]["layer2"][0], (2, 16, 16, 16))


@pytest.mark.parametrize("n_in,n_out", [(14, 4), (7, 7), (13, 6), (5, 6), (32, 1), (9, 2)])
def test_adaptive_avg_pool_matches_torch(n_in, n_out):
    x_BHWC = np.random.default_rng(0).standard_normal((2, n_in, n_in + 1, 3), np.float32)
    ours = adaptive_avg_pool(jnp.asarray(x_BHWC[:, :, :n_in]), n_out)
    ref = torch.nn.functional.adaptive_avg_pool2d(
        torch.from_numpy(x_BHWC[:, :, :n_in]).permute(0, 3, 1, 2), n_out)
    chex.assert_trees_all_close(ours, ref.permute(0, 2, 3, 1).numpy(), atol=1e-6)


@pytest.mark.parametrize("n,window,stride,padding,ceil", [
    (112, 3, 2, 0, True), (56, 3, 2, 0, True), (14, 2, 2, 0, True), (7, 3, 1, 1, True),
    (13, 2, 2, 0, True), (32, 3, 2, 1, False), (15, 3, 2, 1, True), (28, 2, 2, 0, False),
    (13, 2, 2, 0, False), (27, 3, 3, 0, False),  # tiles (window == stride): the reshape path
])
def test_max_pool_and_its_gradient_match_torch(n, window, stride, padding, ceil):
    rng = np.random.default_rng(1)
    x_BHWC = rng.standard_normal((2, n, n, 3), np.float32)
    pool = lambda x: max_pool(x, window, stride, padding, ceil_mode=ceil)
    ours = pool(jnp.asarray(x_BHWC))
    g_BHWC = rng.standard_normal(ours.shape, np.float32)  # an upstream gradient
    grad = jax.grad(lambda x: jnp.sum(pool(x) * g_BHWC))(jnp.asarray(x_BHWC))
    x_t = torch.from_numpy(x_BHWC).permute(0, 3, 1, 2).requires_grad_()
    ref = torch.nn.functional.max_pool2d(x_t, window, stride, padding, ceil_mode=ceil)
    ref.backward(torch.from_numpy(g_BHWC).permute(0, 3, 1, 2))
    chex.assert_trees_all_close(ours, ref.detach().permute(0, 2, 3, 1).numpy())
    chex.assert_trees_all_close(grad, x_t.grad.permute(0, 2, 3, 1).numpy(), atol=1e-6)


def _numpy_depthwise_conv3x3(x_HWC: np.ndarray, k_33C: np.ndarray, stride: int) -> np.ndarray:
    """Per-channel 3x3 correlation with zero padding 1, written with explicit loops."""
    h, w, c = x_HWC.shape
    xp = np.pad(x_HWC, ((1, 1), (1, 1), (0, 0)))
    out = np.zeros(((h - 1) // stride + 1, (w - 1) // stride + 1, c), np.float64)
    for i in range(out.shape[0]):
        for j in range(out.shape[1]):
            patch = xp[i * stride:i * stride + 3, j * stride:j * stride + 3]
            out[i, j] = np.sum(patch * k_33C, axis=(0, 1))
    return out


def test_mobilenet_depthwise_conv_matches_numpy():
    model = MODELS.get("mobilenet_v2_tiny")(num_classes=3, stem="imagenet")
    x = jax.random.normal(jax.random.key(0), (1, 16, 16, 3))
    variables = numpy_init(model, x)
    _, state = jax.jit(lambda v, x: model.apply(
        v, x, capture_intermediates=True, mutable=["intermediates"]))(variables, x)
    inter = state["intermediates"]
    for block, stride in (("block0", 1), ("block1", 2)):
        # Input of the depthwise conv = output of the expand BN (+ReLU6), or the block input.
        kernel = np.asarray(variables["params"][block]["depthwise_conv"]["kernel"])
        chex.assert_shape(kernel, (3, 3, 1, kernel.shape[-1]))
        if "expand_bn" in inter[block]:
            dw_in = np.clip(np.asarray(inter[block]["expand_bn"]["__call__"][0]), 0, 6)
        else:
            dw_in = np.clip(np.asarray(inter["stem_bn"]["__call__"][0]), 0, 6)
        ours = np.asarray(inter[block]["depthwise_conv"]["__call__"][0])
        ref = _numpy_depthwise_conv3x3(dw_in[0], kernel[:, :, 0, :], stride)
        np.testing.assert_allclose(ours[0], ref, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("name,field,value", [
    ("resnet18", "stem", "cifar"), ("resnet18", "block", "wide"),
    ("googlenet", "layout", "v3"), ("lenet5", "activation", "gelu"),
])
def test_bad_fields_fail_with_named_field(name, field, value):
    model = MODELS.get(name)(**{field: value})
    with pytest.raises(ValueError, match=f"config.model.{field}"):
        model.init(jax.random.key(0), jnp.ones((1, 32, 32, 3)))


def test_non_image_input_fails_clearly():
    model = MODELS.get("resnet_tiny")()
    with pytest.raises(ValueError, match="height, width, channels"):
        model.init(jax.random.key(0), jnp.ones((32, 32, 3)))
