"""Layers over window taps: `window_conv`, nn.Conv's convolution with CPU shortcuts (depthwise,
few input channels, transposed, the input gradient with few channels; against XLA's
convolution, values and gradients, the depthwise one, its kernel gradient and the input
gradient against numpy loops), the max-pool (against XLA's reduce-window and
select-and-scatter, ties included; its phase taps and their transpose against `window_taps`
and autodiff), and `keep_in_memory` (exact; the backward's transposed
copies of a convolution input read one array)."""

import re

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dl_arch.models.cnn import common, taps
from dl_arch.models.cnn.taps import (
    _input_grad_by_taps,
    keep_in_memory,
    max_pool_by_taps,
    upsampling_conv,
    window_conv,
)


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


def _grouped(groups):
    """XLA's channels-last convolution with `groups` groups: the reference of `window_conv`."""
    def conv(x, k, strides, padding):
        return jax.lax.conv_general_dilated(x, k, strides, padding,
                                            dimension_numbers=("NHWC", "HWIO", "NHWC"),
                                            feature_group_count=groups)
    return conv


def _window_conv(groups):
    def conv(x, k, strides, padding):
        nhwc = jax.lax.conv_dimension_numbers(x.shape, k.shape, ("NHWC", "HWIO", "NHWC"))
        return window_conv(x, k, strides, padding, dimension_numbers=nhwc,
                           feature_group_count=groups)
    return conv


@pytest.mark.parametrize("min_channels", [0, 10**9], ids=["kernel_grad_by_groups", "autodiff"])
@pytest.mark.parametrize("size,stride,pad", [(3, 1, 1), (3, 2, 1), (5, 2, 2), (3, 1, 0)])
def test_depthwise_window_conv_equals_the_grouped_convolution_and_numpy_with_gradients(
        size, stride, pad, min_channels, monkeypatch):
    monkeypatch.setattr(taps, "DEPTHWISE_GRAD_MIN_CHANNELS", min_channels)
    x = jax.random.normal(jax.random.key(0), (2, 9, 8, 5))
    k = jax.random.normal(jax.random.key(1), (size, size, 1, 5))
    padding = ((pad, pad), (pad, pad))
    ours, theirs = _window_conv(5), _grouped(5)

    def loss(f):
        return jax.jit(jax.value_and_grad(
            lambda x, k: jnp.sum(jnp.sin(f(x, k, (stride, stride), padding))), argnums=(0, 1)))

    out = jax.jit(ours, static_argnums=(2, 3))(x, k, (stride, stride), padding)
    np.testing.assert_allclose(out, _numpy_depthwise(np.asarray(x), np.asarray(k), stride, pad),
                               rtol=1e-5, atol=1e-5)
    (v_taps, g_taps), (v_groups, g_groups) = loss(ours)(x, k), loss(theirs)(x, k)
    np.testing.assert_allclose(v_taps, v_groups, rtol=1e-5, atol=1e-4)  # a sum of 250 terms
    for a, b in zip(g_taps, g_groups, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)


def _numpy_depthwise_kernel_grad(x_BHWC, dy_BHWC, size, stride, pad):
    """The definition: dk[u, v, 0, c] = sum over b, i, j of x_padded[b, i*s + u, j*s + v, c]
    * dy[b, i, j, c], in float64."""
    xp = np.pad(np.asarray(x_BHWC, np.float64), ((0, 0), (pad, pad), (pad, pad), (0, 0)))
    dy = np.asarray(dy_BHWC, np.float64)
    out_h, out_w = dy.shape[1:3]
    dk = np.zeros((size, size, 1, xp.shape[-1]))
    for u in range(size):
        for v in range(size):
            window = xp[:, u:u + stride * (out_h - 1) + 1:stride, v:v + stride * (out_w - 1) + 1:stride]
            dk[u, v, 0] = np.einsum("bijc,bijc->c", window, dy)
    return dk


@pytest.mark.parametrize("width,stride,chunk_bytes", [
    (16, 1, 1 << 30),  # 16 output columns: groups of 8, the batch in one chunk
    (14, 2, 1 << 30),  # 7 columns: one group of 7
    (13, 1, 2000),     # 13 columns (prime): groups of 1; chunks of one example
    (12, 1, 5000),     # 12 columns: groups of 6; chunks of two examples
])
def test_depthwise_kernel_grad_by_groups_and_chunks_matches_numpy(width, stride, chunk_bytes,
                                                                  monkeypatch):
    monkeypatch.setattr(taps, "DEPTHWISE_GRAD_CHUNK_BYTES", chunk_bytes)
    x = jax.random.normal(jax.random.key(0), (4, 5, width, 6))
    out_w = (width + 2 - 3) // stride + 1
    dy = jax.random.normal(jax.random.key(1), (4, (5 + 2 - 3) // stride + 1, out_w, 6))
    padding = ((1, 1), (1, 1))
    dk = jax.jit(taps._depthwise_kernel_grad, static_argnums=(2, 3, 4))(
        x, dy, (3, 3, 1, 6), (stride, stride), padding)
    np.testing.assert_allclose(dk, _numpy_depthwise_kernel_grad(x, dy, 3, stride, 1),
                               rtol=1e-5, atol=1e-5)


def test_depthwise_kernel_grad_of_bfloat16_sums_in_float32(monkeypatch):
    """A bfloat16 layer's kernel gradient is the float32 sum of its bfloat16 products, rounded
    once: within a bfloat16 rounding of the float64 definition."""
    monkeypatch.setattr(taps, "DEPTHWISE_GRAD_MIN_CHANNELS", 0)
    x = jax.random.normal(jax.random.key(0), (8, 16, 16, 4), jnp.bfloat16)
    k = jax.random.normal(jax.random.key(1), (3, 3, 1, 4), jnp.bfloat16)
    conv = _window_conv(4)
    dy = jax.random.normal(jax.random.key(2), (8, 16, 16, 4), jnp.bfloat16)
    _, back = jax.vjp(lambda k: conv(x, k, (1, 1), ((1, 1), (1, 1))), k)
    (dk,) = jax.jit(back)(dy)
    assert dk.dtype == jnp.bfloat16
    want = _numpy_depthwise_kernel_grad(np.asarray(x, np.float32), np.asarray(dy, np.float32),
                                        3, 1, 1)
    np.testing.assert_allclose(np.asarray(dk, np.float64), want, rtol=2 ** -8, atol=1e-2)


@pytest.mark.parametrize("window,stride,padding", [(3, 1, ((1, 1), (1, 1))),
                                                   (3, 2, ((1, 1), (1, 1))),
                                                   (3, 2, ((0, 1), (0, 0))), (2, 1, ((0, 0), (0, 0))),
                                                   (3, 2, ((1, 2), (0, 1))),  # ceil_mode's extra
                                                   (5, 3, ((2, 1), (1, 2))), (2, 2, ((1, 1), (0, 1)))])
@pytest.mark.parametrize("ties", [False, True])
def test_max_pool_by_taps_equals_reduce_window_and_select_and_scatter(window, stride, padding,
                                                                      ties):
    """With ties (small integers) the gradient must go where select-and-scatter sends it: to the
    first maximum of each window, not shared. The gradient of a linear and of a square loss
    (whose dy XLA could recompute from the pool's taps)."""
    rng = np.random.default_rng(0)
    x = rng.integers(0, 3, (2, 7, 8, 3)).astype(np.float32) if ties else rng.standard_normal(
        (2, 7, 8, 3), np.float32)
    theirs = lambda x: nn.max_pool(x, (window, window), (stride, stride), padding=padding)
    ours = lambda x: max_pool_by_taps(x, window, stride, padding)
    y = jax.jit(ours)(x)
    np.testing.assert_array_equal(y, jax.jit(theirs)(x))
    g = rng.standard_normal(y.shape, np.float32)
    for loss in (lambda y: jnp.sum(y * g), lambda y: jnp.sum(y ** 2)):
        grad = lambda f: jax.jit(jax.grad(lambda x: loss(f(x))))(x)
        np.testing.assert_allclose(grad(ours), grad(theirs), rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("window,strides,padding", [
    ((3, 3), (2, 2), ((1, 1), (1, 1))), ((3, 2), (1, 2), ((0, 2), (1, 0))),
    ((5, 5), (3, 2), ((2, 4), (3, 1))), ((2, 2), (2, 2), ((0, 0), (0, 0))),
    ((1, 1), (3, 3), ((0, 0), (0, 0))), ((4, 3), (2, 3), ((3, 0), (0, 2)))])
def test_phase_taps_and_their_transpose_equal_window_taps_and_its_vjp(window, strides, padding):
    """Taps from the stride phases of the unpadded input are `window_taps`' (odd sizes the
    strides do not divide, padding up to the window), and `taps_transpose_by_phases` sends
    per-tap arrays back as autodiff's transpose of `window_taps` does."""
    x = jax.random.normal(jax.random.key(0), (2, 11, 10, 3))
    want = taps.window_taps(x, window, strides, padding, -7.0)
    got = jax.jit(lambda x: taps.phase_taps(x, window, strides, padding, -7.0))(x)
    assert len(got) == len(want)
    for a, b in zip(got, want, strict=True):
        np.testing.assert_array_equal(a, b)
    per_tap = [jax.random.normal(jax.random.key(u + 1), t.shape) for u, t in enumerate(want)]
    _, back = jax.vjp(lambda x: taps.window_taps(x, window, strides, padding), x)
    (want_dx,) = back(per_tap)
    got_dx = jax.jit(lambda p: taps.taps_transpose_by_phases(p, x.shape, window, strides,
                                                             padding))(per_tap)
    np.testing.assert_allclose(got_dx, want_dx, rtol=1e-6, atol=1e-6)


def test_max_pool_by_taps_sends_no_gradient_into_a_window_holding_nan():
    """A window whose maximum is NaN sends its dy nowhere (no tap equals NaN), as before the
    index of the first maximum was kept; windows beside it are unchanged."""
    x = np.arange(2 * 6 * 6 * 1, dtype=np.float32).reshape(2, 6, 6, 1)
    x[0, 0, 0, 0] = np.nan
    pool = lambda x: max_pool_by_taps(x, 2, 2, ((0, 0), (0, 0)))
    y = jax.jit(pool)(x)
    assert np.isnan(y[0, 0, 0, 0]) and np.isfinite(np.asarray(y)[1]).all()
    _, back = jax.vjp(pool, x)
    (dx,) = jax.jit(back)(jnp.ones_like(y))
    assert (np.asarray(dx)[0, :2, :2] == 0).all()  # the NaN window's pixels
    assert np.asarray(dx).sum() == y.size - 1  # every other window sends its 1 to one pixel


def test_max_pool_by_taps_writes_the_first_maximum_once_and_runs_bfloat16():
    """The gradient program reads the first maximum's tap (int8) from a conditional's output,
    rather than recomputing nine taps in the pass that writes dx; bfloat16 pools and
    gradients equal XLA's."""
    x = jax.random.normal(jax.random.key(0), (2, 12, 12, 4), jnp.bfloat16)
    pool = lambda x: max_pool_by_taps(x, 3, 2, ((1, 1), (1, 1)))
    hlo = jax.jit(jax.grad(lambda x: jnp.sum(pool(x).astype(jnp.float32) ** 2))).lower(
        x).compile().as_text()
    assert re.search(r"s8\[2,6,6,4\].*conditional\(", hlo)
    theirs = lambda x: nn.max_pool(x, (3, 3), (2, 2), padding=((1, 1), (1, 1)))
    np.testing.assert_array_equal(jax.jit(pool)(x), jax.jit(theirs)(x))
    grad = lambda f: jax.jit(jax.grad(lambda x: jnp.sum(f(x).astype(jnp.float32) ** 2)))(x)
    np.testing.assert_array_equal(np.asarray(grad(pool), np.float32),
                                  np.asarray(grad(theirs), np.float32))


@pytest.mark.parametrize("channels,size,stride,pad", [
    (1, 5, 1, 2), (3, 7, 2, 3), (3, 3, 1, 1), (1, 5, 1, 0),  # forward on taps
    (8, 4, 2, 1), (3, 3, 2, "VALID"), (3, 4, 2, "SAME"),  # XLA's (many inputs), taps
    (6, 5, 1, 0), (8, 3, 1, "VALID"), (2, 4, 1, 0),  # input gradient on taps
    (9, 5, 1, 0), (6, 5, 1, 2),  # XLA's: too many channels, padded
    (8, 1, 2, 0), (5, 1, 3, "SAME"), (4, 1, 2, 1), (7, 1, 1, 0)])  # 1x1: a product
def test_window_conv_equals_xla_with_gradients(channels, size, stride, pad):
    x = jax.random.normal(jax.random.key(4), (2, 11, 10, channels))
    k = jax.random.normal(jax.random.key(5), (size, size, channels, 4))
    padding = pad if isinstance(pad, str) else ((pad, pad), (pad, pad))
    nhwc = jax.lax.conv_dimension_numbers(x.shape, k.shape, ("NHWC", "HWIO", "NHWC"))
    ours = lambda x, k: window_conv(x, k, (stride, stride), padding, dimension_numbers=nhwc)
    theirs = lambda x, k: jax.lax.conv_general_dilated(x, k, (stride, stride), padding,
                                                       dimension_numbers=nhwc)
    np.testing.assert_allclose(jax.jit(ours)(x, k), jax.jit(theirs)(x, k), rtol=1e-5, atol=1e-5)
    g = jax.random.normal(jax.random.key(6), jax.jit(theirs)(x, k).shape)
    grads = lambda f: jax.jit(jax.grad(lambda x, k: jnp.sum(f(x, k) * g), argnums=(0, 1)))(x, k)
    for a, b in zip(grads(ours), grads(theirs), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5)


def test_written_out_stays_a_conditional_under_vmap():
    """vmap batches a predicate read from its input, and a conditional on a batched
    predicate becomes a select of both branches (each fused, recomputed as before): the
    predicate is one scalar for the whole batch, and per-example max-pool gradients equal
    the batch's."""
    x = jax.random.normal(jax.random.key(0), (3, 2, 9, 9, 4))
    pool = lambda x: max_pool_by_taps(x, 3, 2, ((1, 1), (1, 1)))
    grad = jax.grad(lambda x: jnp.sum(pool(x) ** 2))
    per_example = jax.jit(jax.vmap(grad))
    assert "cond[" in str(jax.make_jaxpr(jax.vmap(grad))(x))
    assert "conditional(" in per_example.lower(x).compile().as_text()
    np.testing.assert_array_equal(per_example(x), jnp.stack([grad(e) for e in x]))


@pytest.mark.parametrize("channels,pad,shape", [(1, 2, r"f32\[4,32,32,8\]"),  # forward on taps
                                               (6, 0, r"f32\[4,36,36,6\]")])  # input grad
def test_sums_of_taps_are_written_out_once_with_xla_values(channels, pad, shape):
    """A convolution's output on taps (few input channels) and its input gradient on taps
    (few channels, unpadded) come out of a conditional: written once, where XLA recomputed
    their sums of taps in each consumer. Values and gradients stay XLA's."""
    x = jax.random.normal(jax.random.key(0), (4, 32, 32, channels))
    k = jax.random.normal(jax.random.key(1), (5, 5, channels, 8))
    x_in = x if pad else jnp.pad(x, ((0, 0), (2, 2), (2, 2), (0, 0)))
    nhwc = jax.lax.conv_dimension_numbers(x.shape, k.shape, ("NHWC", "HWIO", "NHWC"))
    pads = ((pad, pad), (pad, pad))
    ours = lambda x, k: window_conv(x, k, (1, 1), pads, dimension_numbers=nhwc)
    theirs = lambda x, k: jax.lax.conv_general_dilated(x, k, (1, 1), pads,
                                                       dimension_numbers=nhwc)
    # the max-pool of the ReLU reads each output (and its gradient) four times
    pooled = lambda f: lambda x, k: common.tiled_max_pool(jax.nn.relu(f(x, k)), 2)
    step = lambda f: jax.grad(lambda x, k: jnp.sum(pooled(f)(x, k) ** 2), argnums=(0, 1))
    hlo = jax.jit(step(ours)).lower(x_in, k).compile().as_text()
    assert re.search(shape + r".*conditional\(", hlo)
    np.testing.assert_allclose(jax.jit(ours)(x_in, k), jax.jit(theirs)(x_in, k), rtol=1e-5,
                               atol=1e-5)
    for a, b in zip(jax.jit(step(ours))(x_in, k), jax.jit(step(theirs))(x_in, k), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4)


def _conv_input_grad_numpy(x_shape, kernel, dy, strides, padding):
    """d sum(conv(x) * dy) / dx of a strided, padded convolution in float64: each output
    position sends dy times its weights back to the input pixels its window read."""
    (sh, sw), ((lo_h, hi_h), (lo_w, hi_w)) = strides, padding
    kh, kw = kernel.shape[:2]
    b, h, w, c = x_shape
    dxp = np.zeros((b, h + lo_h + hi_h, w + lo_w + hi_w, c))
    k64, dy64 = kernel.astype(np.float64), dy.astype(np.float64)
    for i in range(dy.shape[1]):
        for j in range(dy.shape[2]):
            dxp[:, i * sh:i * sh + kh, j * sw:j * sw + kw] += np.einsum(
                "bo,uvco->buvc", dy64[:, i, j], k64)
    return dxp[:, lo_h:lo_h + h, lo_w:lo_w + w]


@pytest.mark.parametrize("x_hw,kernel_hw,strides,padding", [
    ((8, 8), (4, 4), (2, 2), ((1, 1), (1, 1))),  # DCGAN's discriminator layer
    ((8, 8), (3, 3), (2, 2), ((1, 1), (1, 1))),  # ResNet's downsampling 3x3
    ((11, 10), (7, 7), (2, 2), ((3, 3), (3, 3))),  # ResNet's ImageNet stem, odd height
    ((6, 9), (2, 3), (2, 3), ((0, 0), (0, 0))),  # patches, unequal strides
    ((7, 5), (4, 2), (2, 2), ((2, 1), (1, 0))),  # uneven padding
    ((10, 9), (5, 3), (3, 2), ((2, 0), (0, 2))),  # a kernel the stride does not divide
    ((9, 9), (3, 3), (3, 3), ((0, 0), (0, 0)))])
def test_input_grad_by_phases_matches_numpy(x_hw, kernel_hw, strides, padding):
    rng = np.random.default_rng(7)
    x_shape = (2, *x_hw, 3)
    kernel = rng.standard_normal((*kernel_hw, 3, 4)).astype(np.float32)
    out_hw = [(n + lo + hi - k) // s + 1
              for n, (lo, hi), k, s in zip(x_hw, padding, kernel_hw, strides)]
    dy = rng.standard_normal((2, *out_hw, 4)).astype(np.float32)
    got = jax.jit(taps._input_grad_by_phases, static_argnums=(0, 3, 4))(
        x_shape, kernel, dy, strides, padding)
    np.testing.assert_allclose(got, _conv_input_grad_numpy(x_shape, kernel, dy, strides, padding),
                               rtol=1e-5, atol=1e-5)


def _dilated_conv_numpy(x, kernel, padding, dilation):
    """A stride-1 convolution of the dilated, padded input, in float64 loops."""
    (dh, dw), ((lo_h, hi_h), (lo_w, hi_w)) = dilation, padding
    b, h, w, c = x.shape
    xd = np.zeros((b, (h - 1) * dh + 1, (w - 1) * dw + 1, c))
    xd[:, ::dh, ::dw] = x
    xp = np.pad(xd, ((0, 0), (lo_h, hi_h), (lo_w, hi_w), (0, 0)))
    kh, kw = kernel.shape[:2]
    out = np.zeros((b, xp.shape[1] - kh + 1, xp.shape[2] - kw + 1, kernel.shape[-1]))
    for u in range(kh):
        for v in range(kw):
            out += xp[:, u:u + out.shape[1], v:v + out.shape[2]] @ kernel[u, v].astype(np.float64)
    return out


@pytest.mark.parametrize("x_hw,kernel_hw,padding,dilation", [
    ((4, 4), (4, 4), ((2, 2), (2, 2)), (2, 2)),  # DCGAN's generator layer
    ((5, 4), (3, 3), ((1, 2), (1, 2)), (2, 2)),
    ((5, 6), (2, 2), ((1, 1), (1, 1)), (2, 2)),
    ((5, 6), (5, 3), ((0, 3), (2, 1)), (3, 2)),  # unequal dilations, uneven padding
    ((3, 3), (1, 1), ((0, 1), (0, 1)), (2, 2)),
    ((4, 5), (3, 3), ((3, 4), (5, 2)), (2, 2)),  # padded past kernel size - 1
    ((4, 4), (3, 3), ((0, 0), (0, 0)), (2, 3))])
def test_dilated_conv_by_phases_matches_numpy(x_hw, kernel_hw, padding, dilation):
    rng = np.random.default_rng(10)
    x = rng.standard_normal((2, *x_hw, 3)).astype(np.float32)
    kernel = rng.standard_normal((*kernel_hw, 3, 4)).astype(np.float32)
    got = jax.jit(taps._dilated_conv_by_phases, static_argnums=(2, 3))(x, kernel, padding,
                                                                      dilation)
    np.testing.assert_allclose(got, _dilated_conv_numpy(x, kernel, padding, dilation),
                               rtol=1e-5, atol=1e-5)


def test_transposed_conv_runs_its_forward_by_phases_from_the_column_size(monkeypatch):
    """The upsampling layer's compiled forward has no input-dilated convolution once its
    column buffer reaches `PHASES_MIN_COLUMN_BYTES` (lowered here), and its values and
    both gradients equal XLA's either way."""
    rng = np.random.default_rng(11)
    x = rng.standard_normal((2, 4, 4, 6)).astype(np.float32)
    layer = upsampling_conv(5, 4, use_bias=False)
    kernel = rng.standard_normal((4, 4, 6, 5)).astype(np.float32)
    nhwc = ("NHWC", "HWIO", "NHWC")

    def programs():
        def run(conv):
            return lambda x, k: conv(x, k, (1, 1), ((2, 2), (2, 2)), lhs_dilation=(2, 2),
                                     dimension_numbers=nhwc)
        ours, theirs = run(window_conv), run(jax.lax.conv_general_dilated)
        np.testing.assert_allclose(jax.jit(ours)(x, kernel), jax.jit(theirs)(x, kernel),
                                   rtol=1e-5, atol=1e-5)
        g = rng.standard_normal((2, 8, 8, 5)).astype(np.float32)
        grads = lambda f: jax.jit(jax.grad(  # noqa: E731
            lambda x, k: jnp.sum(f(x, k) * g), argnums=(0, 1)))
        for a, b in zip(grads(ours)(x, kernel), grads(theirs)(x, kernel), strict=True):
            np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5)
        return jax.jit(ours).lower(x, kernel).compile().as_text()

    # the convolution DCGAN's 4x4 upsampling layer hands `window_conv`
    assert layer.input_dilation == 2 and layer.padding == ((2, 2), (2, 2))
    assert "lhs_dilate" in programs()
    monkeypatch.setattr(taps, "PHASES_MIN_COLUMN_BYTES",
                        taps._dilated_conv_column_bytes(2 * 4 * 4, (4, 4), 5, 4))
    assert "lhs_dilate" not in programs()


def test_strided_conv_takes_its_input_gradient_by_phases_from_the_column_size(monkeypatch):
    """Where XLA's column buffer would reach `PHASES_MIN_COLUMN_BYTES` (lowered here), the
    compiled gradient has no input-dilated convolution, and it equals XLA's either way."""
    rng = np.random.default_rng(8)
    x = rng.standard_normal((2, 8, 8, 5)).astype(np.float32)
    nhwc = ("NHWC", "HWIO", "NHWC")

    def hlo_checked(kernel_side):
        k = rng.standard_normal((kernel_side, kernel_side, 5, 6)).astype(np.float32)
        g = rng.standard_normal((2, 4, 4, 6)).astype(np.float32)
        loss = lambda conv: lambda x, k: jnp.sum(conv(x, k, (2, 2), "SAME",  # noqa: E731
                                                      dimension_numbers=nhwc) * g)
        ours = jax.jit(jax.grad(loss(window_conv), argnums=(0, 1)))
        theirs = jax.jit(jax.grad(loss(jax.lax.conv_general_dilated), argnums=(0, 1)))
        for a, b in zip(ours(x, k), theirs(x, k), strict=True):
            np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5)
        return ours.lower(x, k).compile().as_text()

    column_3x3 = taps._dilated_conv_column_bytes(2 * 4 * 4, (3, 3), 5, 4)  # dy's pixels
    assert column_3x3 == 2 * 4 * 4 * 3 * 3 * 5 * 4
    assert "lhs_dilate" in hlo_checked(4)  # under the default threshold: XLA's
    monkeypatch.setattr(taps, "PHASES_MIN_COLUMN_BYTES", column_3x3 + 1)
    assert "lhs_dilate" in hlo_checked(3)
    assert "lhs_dilate" not in hlo_checked(4)  # 4x4: 16/9 the columns of 3x3
    monkeypatch.setattr(taps, "PHASES_MIN_COLUMN_BYTES", column_3x3)
    assert "lhs_dilate" not in hlo_checked(3)


@pytest.mark.parametrize("strides,pad", [((1, 1), 0), ((2, 2), 0), ((1, 2), 0), ((3, 1), 1)])
def test_pointwise_conv_is_a_product_matching_numpy(strides, pad):
    """A 1x1 convolution is its input's (strided, padded) tap times the kernel, in float64
    numpy, with both gradients; on CPU the compiled gradient program has no convolution
    left, only products (XLA's kernel gradient of a strided 1x1 convolution was a
    kernel-dilated convolution, 2x slower)."""
    rng = np.random.default_rng(3)
    x = rng.standard_normal((2, 9, 8, 6)).astype(np.float32)
    k = rng.standard_normal((1, 1, 6, 5)).astype(np.float32)
    padding = ((pad, pad), (pad, pad))
    nhwc = ("NHWC", "HWIO", "NHWC")
    ours = lambda x, k: window_conv(x, k, strides, padding, dimension_numbers=nhwc)
    xp = np.pad(x.astype(np.float64), ((0, 0), padding[0], padding[1], (0, 0)))
    tap = xp[:, ::strides[0], ::strides[1]]
    want = tap @ k[0, 0].astype(np.float64)
    np.testing.assert_allclose(jax.jit(ours)(x, k), want, rtol=1e-5, atol=1e-5)
    g = rng.standard_normal(want.shape)
    dx, dk = jax.jit(jax.grad(lambda x, k: jnp.sum(ours(x, k) * g), argnums=(0, 1)))(x, k)
    want_dxp = np.zeros_like(xp)
    want_dxp[:, ::strides[0], ::strides[1]] = g @ k[0, 0].T.astype(np.float64)
    want_dx = want_dxp[:, pad:pad + x.shape[1], pad:pad + x.shape[2]]
    np.testing.assert_allclose(dx, want_dx, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(dk[0, 0], np.einsum("bhwc,bhwo->co", tap, g), rtol=1e-5,
                               atol=1e-5)
    hlo = jax.jit(jax.grad(lambda x, k: jnp.sum(ours(x, k) ** 2), argnums=(0, 1))).lower(
        x, k).compile().as_text()
    assert " convolution(" not in hlo
    assert re.search(r" dot\(|__ynn_fusion", hlo)


@pytest.mark.parametrize("kernel_side,stride", [(1, 1), (1, 2), (4, 2)])
def test_bfloat16_products_and_phases_stay_bfloat16_and_match_float32(kernel_side, stride,
                                                                     monkeypatch):
    """A bfloat16 layer through the 1x1 product or the input gradient by phases keeps its
    dtype and agrees with the float32 layer within bfloat16 rounding."""
    monkeypatch.setattr(taps, "PHASES_MIN_COLUMN_BYTES", 0)
    rng = np.random.default_rng(9)
    x = rng.standard_normal((2, 8, 8, 16)).astype(np.float32)
    k = (rng.standard_normal((kernel_side, kernel_side, 16, 8)) / 4).astype(np.float32)
    padding = ((1, 1), (1, 1)) if kernel_side == 4 else ((0, 0), (0, 0))
    nhwc = ("NHWC", "HWIO", "NHWC")

    def grads(dtype):
        def loss(x, k):
            y = window_conv(x, k, (stride, stride), padding, dimension_numbers=nhwc)
            assert y.dtype == dtype
            return jnp.sum(y.astype(jnp.float32) ** 2)
        return jax.jit(jax.grad(loss, argnums=(0, 1)))(x.astype(dtype), k.astype(dtype))

    for low, high in zip(grads(jnp.bfloat16), grads(jnp.float32), strict=True):
        assert low.dtype == jnp.bfloat16
        scale = float(jnp.max(jnp.abs(high)))
        np.testing.assert_allclose(np.asarray(low, np.float32), high, atol=0.05 * scale)


@pytest.mark.parametrize("channels,padding,convolutions", [
    (6, "VALID", 1), (8, ((0, 0), (0, 0)), 1), (9, "VALID", 2), (6, "SAME", 2)])
def test_input_gradient_leaves_xla_only_for_few_channels_without_padding(
        channels, padding, convolutions):
    """The compiled gradient of sum(conv(x)^2) w.r.t. x keeps XLA's forward convolution
    and, outside the input-gradient rule, XLA's input-gradient convolution as well."""
    x, k = jnp.ones((2, 11, 10, channels)), jnp.ones((5, 5, channels, 4))
    nhwc = jax.lax.conv_dimension_numbers(x.shape, k.shape, ("NHWC", "HWIO", "NHWC"))
    loss = lambda x: jnp.sum(window_conv(x, k, (1, 1), padding, dimension_numbers=nhwc) ** 2)
    hlo = jax.jit(jax.grad(loss)).lower(x).compile().as_text()
    assert len(re.findall(r"\} convolution\(", hlo)) == convolutions


def test_input_grad_by_taps_matches_numpy():
    """Each output gradient spread back over the window it read, in float64 numpy."""
    rng = np.random.default_rng(0)
    dy, kernel = rng.normal(size=(2, 6, 5, 4)), rng.normal(size=(3, 4, 3, 4))
    dx = np.zeros((2, 8, 8, 3))
    for m in range(6):
        for n in range(5):
            dx[:, m:m + 3, n:n + 4] += np.einsum("bf,uvcf->buvc", dy[:, m, n], kernel)
    ours = _input_grad_by_taps(jnp.zeros((2, 8, 8, 3)), jnp.asarray(kernel, jnp.float32),
                               jnp.asarray(dy, jnp.float32))
    np.testing.assert_allclose(ours, dx, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("channels,groups,stride", [(1, 1, 1), (6, 6, 2)])
def test_nn_conv_with_window_conv_keeps_its_parameters_and_output(channels, groups, stride):
    """LeNet-5's first convolution and MobileNet's depthwise one, as the models build them."""
    x = jax.random.normal(jax.random.key(7), (2, 8, 8, channels))
    fields = dict(strides=stride, padding=2, feature_group_count=groups)
    ours = nn.Conv(6, (5, 5), conv_general_dilated=window_conv, **fields)
    theirs = nn.Conv(6, (5, 5), **fields)
    variables = jax.jit(theirs.init)(jax.random.key(8), x)
    np.testing.assert_allclose(jax.jit(ours.apply)(variables, x),
                               jax.jit(theirs.apply)(variables, x), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("size", [4, 3, 2, 5])
def test_upsampling_conv_is_the_stride_2_transposed_conv_with_its_gradients(size):
    """The DCGAN generator's and the autoencoder decoder's layer: nn.ConvTranspose(stride 2,
    SAME) as an input-dilated nn.Conv through window_conv; same parameters, output, gradients."""
    x = jax.random.normal(jax.random.key(9), (2, 4, 5, 6))
    ours = upsampling_conv(3, size)
    theirs = nn.ConvTranspose(3, (size, size), strides=(2, 2), padding="SAME")
    variables = jax.jit(theirs.init)(jax.random.key(10), x)
    y = jax.jit(theirs.apply)(variables, x)
    np.testing.assert_allclose(jax.jit(ours.apply)(variables, x), y, rtol=1e-5, atol=1e-5)
    g = jax.random.normal(jax.random.key(11), y.shape)
    grads = lambda m: jax.jit(jax.grad(lambda v, x: jnp.sum(m.apply(v, x) * g), argnums=(0, 1)))(
        variables, x)
    for a, b in zip(jax.tree_util.tree_leaves(grads(ours)), jax.tree_util.tree_leaves(grads(theirs)),
                    strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("first", [1.5, np.nan, np.inf, -np.inf, -0.0])
@pytest.mark.parametrize("dtype", [jnp.float32, jnp.bfloat16])
def test_keep_in_memory_is_exact_with_its_gradient(first, dtype):
    """x / 1 is x bit for bit whatever the element its 1 is made from (NaN and inf too).
    No subnormals here: XLA:CPU flushes them to zero in any elementwise op, ReLU included."""
    x = jnp.asarray([[first, -0.0, 1e-30, -3.25e38, np.nan], [np.inf, -np.inf, 7.0, 0.0, 1.0]],
                    dtype)
    kept = jax.jit(keep_in_memory)(x)
    assert kept.dtype == x.dtype
    np.testing.assert_array_equal(np.asarray(kept, np.float32), np.asarray(x, np.float32))
    assert np.array_equal(np.signbit(np.asarray(kept, np.float32)),
                          np.signbit(np.asarray(x, np.float32)))
    g = jnp.arange(10, dtype=dtype).reshape(2, 5) - 4.5
    grad = jax.jit(jax.grad(lambda v: jnp.sum(keep_in_memory(v) * g).astype(jnp.float32)))(
        jnp.where(jnp.isfinite(x), x, 0))
    np.testing.assert_array_equal(np.asarray(grad, np.float32), np.asarray(g, np.float32))
    assert keep_in_memory(jnp.zeros((0, 3))).shape == (0, 3)
    integers = jnp.arange(6)
    assert keep_in_memory(integers) is integers


def _transposed_input_reads(hlo: str, shape: str, size: int) -> list[int]:
    """For each transposing fusion that writes `shape` (a convolution input laid out for
    the kernel gradient), how many of its operands have at least `size` elements."""
    sizes = {}
    for name, dims in re.findall(r"%([\w.\-]+) = \w+\[([\d,]*)\]", hlo):
        sizes[name] = int(np.prod([int(d) for d in dims.split(",") if d]))
    fusions = re.findall(r"%[\w.\-]*transpose[\w.\-]* = " + re.escape(shape)
                         + r"\{[\d,]*\} fusion\((.*?)\), kind", hlo)
    return [sum(sizes.get(a, 0) >= size for a in re.findall(r"%([\w.\-]+)", args))
            for args in fusions]


@pytest.mark.skipif(jax.default_backend() != "cpu", reason="an XLA:CPU fusion decision")
def test_convolution_inputs_are_kept_in_memory_for_the_backward_transposes(monkeypatch):
    """Two residual blocks of convolution, scale and ReLU, then a convolution: XLA's
    kernel-gradient transposes of each convolution input of `KEEP_MIN_BYTES` or more read
    that one array. Smaller inputs, or `keep_in_memory` as identity, and XLA recomputes the
    blocks inside them, which is what it works around (if the last check fails, XLA stopped
    doing so and the helper can go)."""
    x, k, s = jnp.ones((8, 16, 16, 16)), jnp.ones((3, 3, 16, 16)), jnp.ones((16,))

    def conv(a, kernel):
        nhwc = jax.lax.conv_dimension_numbers(a.shape, kernel.shape, ("NHWC", "HWIO", "NHWC"))
        return window_conv(a, kernel, (1, 1), ((1, 1), (1, 1)), dimension_numbers=nhwc)

    def loss(k1, k2):
        z = jax.nn.relu(conv(x, k1) * s[None, None, None] + x)
        z = jax.nn.relu(conv(z, k1) * s[None, None, None] + z)
        return jnp.sum(conv(z, k2) ** 2)

    def reads():
        hlo = jax.jit(jax.grad(loss, argnums=(0, 1))).lower(k, k).compile().as_text()
        return _transposed_input_reads(hlo, "f32[16,16,16,8]", x.size)

    assert max(reads()) >= 2  # below KEEP_MIN_BYTES (128 KiB here): recomputed
    monkeypatch.setattr(taps, "KEEP_MIN_BYTES", x.nbytes)
    kept = reads()
    assert kept and max(kept) == 1, kept
    monkeypatch.setattr(taps, "keep_in_memory", lambda a: a)
    assert max(reads()) >= 2


def test_mobilenet_gradients_are_the_same_with_either_depthwise_kernel_gradient(monkeypatch):
    """The whole model's gradients, every depthwise layer on `_depthwise_kernel_grad` against
    every one on autodiff's."""
    from dl_arch.registry import MODELS

    model = MODELS.get("mobilenet_v2_tiny")(num_classes=3, stem="small", dropout_rate=0.0)
    x = jax.random.normal(jax.random.key(0), (4, 16, 16, 3))
    variables = model.init(jax.random.key(1), x)

    def grads():
        def loss(params):
            out, _ = model.apply({**variables, "params": params}, x, train=True,
                                 mutable=["batch_stats"])
            return jnp.sum(jnp.sin(out))
        return jax.jit(jax.grad(loss))(variables["params"])

    monkeypatch.setattr(taps, "DEPTHWISE_GRAD_MIN_CHANNELS", 0)
    by_groups = grads()
    monkeypatch.setattr(taps, "DEPTHWISE_GRAD_MIN_CHANNELS", 10**9)
    autodiff = grads()
    depthwise_kernels = 0
    for (path, a), b in zip(jax.tree_util.tree_leaves_with_path(by_groups),
                            jax.tree.leaves(autodiff), strict=True):
        depthwise_kernels += "depthwise" in jax.tree_util.keystr(path)
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6, err_msg=jax.tree_util.keystr(path))
    assert depthwise_kernels > 0
