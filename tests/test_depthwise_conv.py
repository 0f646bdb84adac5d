"""The depthwise convolution layer: its CPU formulation (a sum over kernel taps) against XLA's
grouped convolution and a numpy loop, values and gradients; its parameter is nn.Conv's."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dl_arch.models.cnn.depthwise import DepthwiseConv, depthwise_by_groups, depthwise_by_taps


def _numpy_depthwise(x_BHWC, k_HW1C, stride, pad):
    """The definition: out[b, i, j, c] = sum over taps of x_padded[b, i*s + u, j*s + v, c] * k[u, v, c]."""
    xp = np.pad(x_BHWC, ((0, 0), (pad, pad), (pad, pad), (0, 0))).astype(np.float64)
    kh, kw = k_HW1C.shape[:2]
    out_h, out_w = (xp.shape[1] - kh) // stride + 1, (xp.shape[2] - kw) // stride + 1
    out = np.zeros((x_BHWC.shape[0], out_h, out_w, x_BHWC.shape[-1]))
    for i in range(out_h):
        for j in range(out_w):
            patch = xp[:, i * stride:i * stride + kh, j * stride:j * stride + kw]
            out[:, i, j] = np.einsum("bhwc,hwc->bc", patch, k_HW1C[:, :, 0].astype(np.float64))
    return out


@pytest.mark.parametrize("size,stride,pad", [(3, 1, 1), (3, 2, 1), (5, 2, 2), (3, 1, 0)])
def test_taps_equal_the_grouped_convolution_and_numpy_with_gradients(size, stride, pad):
    x = jax.random.normal(jax.random.key(0), (2, 9, 8, 5))
    k = jax.random.normal(jax.random.key(1), (size, size, 1, 5))
    padding = ((pad, pad), (pad, pad))

    def loss(f):
        return jax.jit(jax.value_and_grad(
            lambda x, k: jnp.sum(jnp.sin(f(x, k, (stride, stride), padding))), argnums=(0, 1)))

    out = jax.jit(depthwise_by_taps, static_argnums=(2, 3))(x, k, (stride, stride), padding)
    np.testing.assert_allclose(out, _numpy_depthwise(np.asarray(x), np.asarray(k), stride, pad),
                               rtol=1e-5, atol=1e-5)
    (v_taps, g_taps), (v_groups, g_groups) = loss(depthwise_by_taps)(x, k), loss(
        depthwise_by_groups)(x, k)
    np.testing.assert_allclose(v_taps, v_groups, rtol=1e-5, atol=1e-4)  # a sum of 250 terms
    for a, b in zip(g_taps, g_groups, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)


def test_layer_holds_nn_conv_parameter_and_gives_its_output():
    x = jax.random.normal(jax.random.key(2), (2, 8, 8, 6))
    ours = DepthwiseConv((3, 3), strides=2, padding=1)
    theirs = nn.Conv(6, (3, 3), 2, padding=1, feature_group_count=6, use_bias=False)
    variables = jax.jit(ours.init)(jax.random.key(3), x)
    assert jax.tree_util.tree_map(jnp.shape, variables) == jax.tree_util.tree_map(
        jnp.shape, jax.eval_shape(theirs.init, jax.random.key(3), x))
    np.testing.assert_allclose(jax.jit(ours.apply)(variables, x),
                               jax.jit(theirs.apply)(variables, x), rtol=1e-5, atol=1e-5)
