"""Sliding-window layers written as k*k strided slices ("taps") of the padded input.

XLA's CPU backend runs a grouped convolution, a max-pool's select-and-scatter gradient, a
convolution of an input with one to three channels and a transposed convolution's kernel
gradient 3-50x slower than the same arithmetic on k*k strided slices, which it fuses into a
few loops or products (`python -m benchmarks.bench_cnn`, the window-layer rows). The layers
here use these on CPU and XLA's own ops on GPU and TPU. `window_conv` is also where a CPU
convolution's input is kept in memory for its backward pass (`keep_in_memory`).
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
from jax import custom_batching


def window_taps(x_BHWC: jax.Array, window: tuple[int, int], strides: tuple[int, int],
                padding: Sequence[tuple[int, int]], pad_value: float = 0.0) -> list[jax.Array]:
    """For each window position (u, v) in row-major order, the strided slice of the padded
    input that position sees: tap[u*kw + v][b, i, j, c] = x_padded[b, i*sh + u, j*sw + v, c]."""
    kh, kw = window
    sh, sw = strides
    x = jnp.pad(x_BHWC, ((0, 0), tuple(padding[0]), tuple(padding[1]), (0, 0)),
                constant_values=pad_value)
    batch, height, width, channels = x.shape
    out_h, out_w = (height - kh) // sh + 1, (width - kw) // sw + 1
    return [jax.lax.slice(x, (0, u, v, 0),
                          (batch, u + sh * (out_h - 1) + 1, v + sw * (out_w - 1) + 1, channels),
                          (1, sh, sw, 1))
            for u in range(kh) for v in range(kw)]


def phase_taps(x_BHWC: jax.Array, window: tuple[int, int], strides: tuple[int, int],
               padding: Sequence[tuple[int, int]], pad_value: float) -> list[jax.Array]:
    """`window_taps` without the padded copy of the input: tap (u, v) is a strided slice of
    the input (the stride phase its rows and columns fall in), padded to the output's size.

    Each tap has a pad of its own, which XLA fuses into the tap's consumer; `window_taps`'
    one padded input feeds every tap, so XLA writes it out first (at ResNet's stem a
    106 MB copy, most of the max-pool's forward)."""
    kh, kw = window
    sh, sw = strides
    (top, bottom), (left, right) = padding
    batch, height, width, channels = x_BHWC.shape
    out_h, out_w = (height + top + bottom - kh) // sh + 1, (width + left + right - kw) // sw + 1
    fill = jnp.asarray(pad_value, x_BHWC.dtype)
    taps = []
    for u in range(kh):
        for v in range(kw):
            # input row i*sh + u - top = (phase row) * sh + a, so the tap is phase a shifted
            (first_h, a), (first_w, b) = divmod(u - top, sh), divmod(v - left, sw)
            phase = jax.lax.slice(x_BHWC, (0, a, b, 0), (batch, height, width, channels),
                                  (1, sh, sw, 1))
            taps.append(jax.lax.pad(phase, fill, (
                (0, 0, 0), (-first_h, out_h - phase.shape[1] + first_h, 0),
                (-first_w, out_w - phase.shape[2] + first_w, 0), (0, 0, 0))))
    return taps


def taps_transpose_by_phases(per_tap: list[jax.Array], x_shape: tuple[int, ...],
                             window: tuple[int, int], strides: tuple[int, int],
                             padding: Sequence[tuple[int, int]]) -> jax.Array:
    """The transpose of `window_taps`: each output-shaped `per_tap[u * kw + v]` sent back to
    the input pixels its tap read, summed (padding dropped). Built one stride phase of the
    padded input at a time (the taps that land in it, each shifted by whole output rows and
    columns), then interleaved: one fused pass that writes the input's gradient once."""
    kh, kw = window
    sh, sw = strides
    (top, bottom), (left, right) = padding
    batch, height, width, channels = x_shape
    out_h, out_w = per_tap[0].shape[1:3]
    rows, cols = -(-(height + top + bottom) // sh), -(-(width + left + right) // sw)
    zero = jnp.zeros((), per_tap[0].dtype)
    phase_rows = []
    for a in range(sh):
        phases = []
        for b in range(sw):
            total = jnp.zeros((batch, rows, cols, channels), per_tap[0].dtype)
            for u in range(a, kh, sh):
                for v in range(b, kw, sw):
                    q, r = u // sh, v // sw  # padded pixel (i*sh + u) is phase row i + q
                    total = total + jax.lax.pad(per_tap[u * kw + v], zero, (
                        (0, 0, 0), (q, rows - out_h - q, 0), (r, cols - out_w - r, 0), (0, 0, 0)))
            phases.append(total)
        phase_rows.append(jnp.stack(phases, axis=3))  # [B, rows, cols, sw, C]
    padded = jnp.stack(phase_rows, axis=2).reshape(batch, rows * sh, cols * sw, channels)
    return padded[:, top:top + height, left:left + width]


def _max_of(taps: list[jax.Array]) -> jax.Array:
    out = taps[0]
    for tap in taps[1:]:
        out = jnp.maximum(out, tap)
    return out


def _first_max_tap(taps: list[jax.Array]) -> jax.Array:
    """int8: the first tap (row-major) holding each window's maximum; -1 where the window
    holds a NaN (its maximum, which no tap equals: no gradient, as before)."""
    best, index = taps[0], jnp.zeros(taps[0].shape, jnp.int8)
    for u, tap in enumerate(taps[1:], 1):
        index = jnp.where(tap > best, jnp.int8(u), index)
        best = jnp.maximum(best, tap)
    return jnp.where(best == best, index, jnp.int8(-1))


@custom_batching.custom_vmap
def _runtime_true(x: jax.Array) -> jax.Array:
    """A predicate XLA cannot fold (x's first element equals itself, NaN aside): one
    scalar under vmap too (the batch's first element), so a conditional on it stays one."""
    first = x.reshape(-1)[0]
    return first == first


@_runtime_true.def_vmap
def _runtime_true_batched(axis_size, in_batched, x):
    return _runtime_true(x), False


def written_out(f: Any, x: jax.Array) -> Any:
    """f(x), computed where XLA must write it to memory: inside a conditional whose predicate
    it cannot fold (both branches are f). XLA:CPU otherwise fuses a cheap result into each
    consumer, recomputing it there as many times as the consumer reads it. (A predicate
    batched by vmap would turn the conditional into a select of both branches.)"""
    return jax.lax.cond(_runtime_true(jax.lax.stop_gradient(x)), f, f, x)


def max_pool_by_taps(x_BHWC: jax.Array, window: int, stride: int,
                     padding: tuple[tuple[int, int], tuple[int, int]]) -> jax.Array:
    """Max-pool (padding counts as -inf) whose gradient goes, as XLA's select-and-scatter
    sends it, to the first maximum of each window in row-major order."""
    return _max_pool(x_BHWC, window, stride, padding, tuple(x_BHWC.shape))


@functools.partial(jax.custom_vjp, nondiff_argnums=(1, 2, 3, 4))
def _max_pool(x_BHWC, window, stride, padding, x_shape):
    return _max_of(phase_taps(x_BHWC, (window, window), (stride, stride), padding, -jnp.inf))


def _max_pool_fwd(x_BHWC, window, stride, padding, x_shape):
    """The maximum, and the index of the tap that gave it, written to memory once (int8,
    written_out): the backward pass then reads it rather than recomputing nine taps for
    every window that covers a pixel."""
    taps = lambda x: phase_taps(x, (window, window), (stride, stride), padding, -jnp.inf)
    first = written_out(lambda x: _first_max_tap(taps(x)), x_BHWC)
    return written_out(lambda x: _max_of(taps(x)), x_BHWC), first


def _max_pool_bwd(window, stride, padding, x_shape, first, dy):
    per_tap = [jnp.where(first == u, dy, jnp.zeros_like(dy)) for u in range(window * window)]
    return (taps_transpose_by_phases(per_tap, x_shape, (window, window), (stride, stride),
                                     padding),)


_max_pool.defvjp(_max_pool_fwd, _max_pool_bwd)


def _depthwise_by_taps(x_BHWC, kernel, strides, padding):
    """The depthwise convolution (kernel (kh, kw, 1, C)) as a sum over taps of the strided
    input slice times the tap's per-channel weight; differentiated by JAX (both gradients
    are elementwise products and sums here, against XLA's slow grouped convolution)."""
    kh, kw, _, channels = kernel.shape
    weights = kernel.reshape(kh * kw, 1, 1, 1, channels)
    out = None
    for tap, weight in zip(window_taps(x_BHWC, (kh, kw), strides, padding), weights, strict=True):
        out = tap * weight if out is None else out + tap * weight
    return out


# the fewest channels whose depthwise kernel gradient is `_depthwise_kernel_grad`'s: below
# it, autodiff's (MobileNetV2 at width 0.35, 16-48 channels at 32x32, was 5% slower with
# every layer on it; see docs/results/benchmarks.md, "The depthwise kernel gradient")
DEPTHWISE_GRAD_MIN_CHANNELS = 128
DEPTHWISE_GRAD_GROUP = 8  # the most output columns one elementwise pass sums per tap
DEPTHWISE_GRAD_CHUNK_BYTES = 8 << 20  # the batch is summed in chunks of at most this input


def _depthwise_kernel_grad(x_BHWC: jax.Array, dy_BHWC: jax.Array,
                           kernel_shape: tuple[int, ...], strides: tuple[int, int],
                           padding: tuple[tuple[int, int], tuple[int, int]]) -> jax.Array:
    """d loss / d kernel of `_depthwise_by_taps`: for each tap, the sum over batch and
    positions of its input slice times the output gradient, accumulated in float32.

    Autodiff writes each tap's input slice to memory for YNNPACK's reduction, which takes no
    slices: eight full-size copies a layer. Here one elementwise pass per tap reads the
    slice in place and adds the products of up to `DEPTHWISE_GRAD_GROUP` neighbouring output
    columns, and one reduction sums what is left. A `lax.scan` over batch chunks of at most
    `DEPTHWISE_GRAD_CHUNK_BYTES` keeps the nine passes' reads in cache, and gives them the
    input and output gradient as arrays rather than recomputing their producers nine times.
    """
    kh, kw, _, channels = kernel_shape
    batch, _, out_w, _ = dy_BHWC.shape
    group = max(g for g in range(1, DEPTHWISE_GRAD_GROUP + 1) if out_w % g == 0)
    per_example = x_BHWC.nbytes // batch
    chunk = max(c for c in range(1, batch + 1)
                if batch % c == 0 and (c * per_example <= DEPTHWISE_GRAD_CHUNK_BYTES or c == 1))

    def chunk_grad(x, dy):
        x, dy = x.astype(jnp.float32), dy.astype(jnp.float32)
        per_tap = []
        for tap in window_taps(x, (kh, kw), strides, padding):
            column_sums = tap[:, :, 0::group] * dy[:, :, 0::group]
            for r in range(1, group):
                column_sums = column_sums + tap[:, :, r::group] * dy[:, :, r::group]
            per_tap.append(column_sums)
        return jnp.stack(per_tap, axis=3).sum(axis=(0, 1, 2))

    def split(a):
        return a.reshape(batch // chunk, chunk, *a.shape[1:])

    grad, _ = jax.lax.scan(lambda total, xs: (total + chunk_grad(*xs), None),
                           jnp.zeros((kh * kw, channels), jnp.float32),
                           (split(x_BHWC), split(dy_BHWC)))
    return grad.reshape(kh, kw, 1, channels)


@functools.partial(jax.custom_vjp, nondiff_argnums=(2, 3))
def _depthwise_with_kernel_grad(x_BHWC: jax.Array, kernel: jax.Array, strides: tuple[int, int],
                                padding: tuple[tuple[int, int], tuple[int, int]]) -> jax.Array:
    """`_depthwise_by_taps` whose kernel gradient is `_depthwise_kernel_grad` (the input
    gradient stays autodiff's: one fused pass)."""
    return _depthwise_by_taps(x_BHWC, kernel, strides, padding)


def _depthwise_fwd(x_BHWC, kernel, strides, padding):
    return _depthwise_by_taps(x_BHWC, kernel, strides, padding), (x_BHWC, kernel)


def _depthwise_bwd(strides, padding, residuals, dy):
    x_BHWC, kernel = residuals
    _, back = jax.vjp(lambda x: _depthwise_by_taps(x, kernel, strides, padding), x_BHWC)
    (dx,) = back(dy)
    dk = _depthwise_kernel_grad(x_BHWC, dy, kernel.shape, strides, padding)
    return dx, dk.astype(kernel.dtype)


_depthwise_with_kernel_grad.defvjp(_depthwise_fwd, _depthwise_bwd)


FEW_CHANNELS = 3  # the most input channels whose convolution forward runs on taps


def _conv_by_taps(x_BHWC, kernel, strides, padding):
    """The convolution as a sum over taps and input channels of broadcast products: fast for
    one to three input channels, where XLA's CPU convolution is not."""
    kh, kw, channels, features = kernel.shape
    weights = kernel.reshape(kh * kw, channels, 1, 1, 1, features)
    out = None
    for tap, weight in zip(window_taps(x_BHWC, (kh, kw), strides, padding), weights, strict=True):
        for c in range(channels):
            term = tap[..., c:c + 1] * weight[c]
            out = term if out is None else out + term
    return out


FEW_CHANNELS_INPUT_GRAD = 8  # the most input channels whose input gradient runs on taps


def _input_grad_by_taps(x_BHWC: jax.Array, kernel: jax.Array, dy_BHWF: jax.Array) -> jax.Array:
    """d loss / d input of a stride-1 unpadded convolution: one product of the output
    gradient with every tap's weights, then each tap's share sent back to the pixels its
    window slice read. XLA's input-gradient convolution ran 2-4x slower with a few input
    channels. The shares are summed in two passes, over a row's kw taps (shifted along
    the width, written out) and then over the kh rows (shifted along the height): kh + kw
    shifted adds an input pixel where one pass took kh * kw (LeNet-5's b128 step, two runs:
    3.1-4.0 -> 2.7-3.5 ms)."""
    kh, kw, channels, features = kernel.shape
    batch, out_h, out_w, _ = dy_BHWF.shape
    height, width = x_BHWC.shape[1:3]
    per_tap = jax.lax.dot_general(dy_BHWF.reshape(-1, features),
                                  kernel.reshape(kh * kw * channels, features),
                                  (((1,), (1,)), ((), ())), preferred_element_type=jnp.float32)
    per_tap = per_tap.reshape(batch, out_h, out_w, kh, kw, channels)
    unpadded = ((0, 0), (0, 0))
    # each tap row's shares placed along the width: [B, out_h, W, kh, C], written out
    rows = written_out(lambda p: taps_transpose_by_phases(
        [p[:, :, :, :, v].reshape(batch, out_h, out_w, kh * channels) for v in range(kw)],
        (batch, out_h, width, kh * channels), (1, kw), (1, 1), unpadded), per_tap)
    rows = rows.reshape(batch, out_h, width, kh, channels)
    return taps_transpose_by_phases([rows[:, :, :, u] for u in range(kh)],
                                    (batch, height, width, channels), (kh, 1), (1, 1), unpadded)


def _strided_conv_by_phases(x_BHWC: jax.Array, kernel: jax.Array, strides: tuple[int, int],
                            padding: tuple[tuple[int, int], ...]) -> jax.Array:
    """A strided convolution as the sum over its stride phases of stride-1 convolutions:
    phase (a, b) takes every sh-th row from a and every sw-th column from b of the padded
    input, and the kernel's taps of that phase (kernel[a::sh, b::sw]); the same products as
    the strided convolution, none with zeros."""
    (sh, sw), ((lo_h, _), (lo_w, _)) = strides, padding
    kh, kw = kernel.shape[:2]
    _, height, width, _ = x_BHWC.shape
    out_h, out_w = ((n + sum(p) - k) // s + 1 for n, p, k, s in zip(
        (height, width), padding, (kh, kw), strides))
    # rows and columns of the padded input the phases read: at most the padding given
    rows, cols = sh * (out_h + (kh - 1) // sh), sw * (out_w + (kw - 1) // sw)
    x = jax.lax.pad(x_BHWC, jnp.zeros((), x_BHWC.dtype),
                    ((0, 0, 0), (lo_h, rows - lo_h - height, 0),
                     (lo_w, cols - lo_w - width, 0), (0, 0, 0)))
    out = None
    for a in range(min(sh, kh)):
        for b in range(min(sw, kw)):
            taps = kernel[a::sh, b::sw]
            phase = x[:, a::sh, b::sw][:, :out_h + taps.shape[0] - 1, :out_w + taps.shape[1] - 1]
            term = jax.lax.conv_general_dilated(phase, taps, (1, 1), "VALID",
                                                dimension_numbers=("NHWC", "HWIO", "NHWC"))
            out = term if out is None else out + term
    return out


def _dilated_conv_by_phases(x_BHWC: jax.Array, kernel: jax.Array,
                            padding: tuple[tuple[int, int], ...],
                            dilation: tuple[int, int]) -> jax.Array:
    """A stride-1 convolution of the `dilation`-dilated input (a transposed convolution) as
    the transpose of the strided convolution it is the input gradient of:
    `_strided_conv_by_phases` with the kernel flipped and its channels swapped, at stride
    `dilation`, padded by kernel size - 1 - padding (negative: cropped). Each output phase is
    then one stride-1 convolution of the undilated input, with no zeros."""
    kh, kw, channels, features = kernel.shape
    batch, height, width, _ = x_BHWC.shape
    (lo_h, hi_h), (lo_w, hi_w) = padding
    out_shape = (batch, (height - 1) * dilation[0] + lo_h + hi_h - kh + 2,
                 (width - 1) * dilation[1] + lo_w + hi_w - kw + 2, features)
    flipped = kernel[::-1, ::-1].transpose(0, 1, 3, 2)
    strided = lambda y: _strided_conv_by_phases(  # noqa: E731
        y, flipped, dilation, ((kh - 1 - lo_h, kh - 1 - hi_h), (kw - 1 - lo_w, kw - 1 - hi_w)))
    (out,) = jax.linear_transpose(strided, jax.ShapeDtypeStruct(out_shape, x_BHWC.dtype))(x_BHWC)
    return out


def _input_grad_by_phases(x_shape: tuple[int, ...], kernel: jax.Array, dy_BHWF: jax.Array,
                          strides: tuple[int, int],
                          padding: tuple[tuple[int, int], ...]) -> jax.Array:
    """d loss / d input of a strided convolution, as the transpose of its phase form
    (`_strided_conv_by_phases`): stride-1 input gradients, each phase's put back in place.
    XLA's own is an input-dilated convolution, whose CPU kernel (Eigen's transposed
    convolution) maps a new column buffer of 64 MiB at every call (DCGAN's 64x32x32x64 ->
    128 4x4 layer: 40.7 -> 11.3 ms)."""
    (dx,) = jax.linear_transpose(
        lambda x: _strided_conv_by_phases(x, kernel, strides, padding),
        jax.ShapeDtypeStruct(x_shape, dy_BHWF.dtype))(dy_BHWF)
    return dx


def _kernel_grad_of_dilated_input(x_BHWC, dy, kernel_shape, dilation, padding):
    """d loss / d kernel of a stride-1 convolution of the `dilation`-dilated input (a
    transposed convolution), one product per tap without the dilation's zeros: tap (u, v)
    pairs x[m, n] with dy[d*m + lo_h - u, d*n + lo_w - v], a strided slice of the padded
    output gradient."""
    kh, kw, channels, features = kernel_shape
    (dh, dw), ((lo_h, _), (lo_w, _)) = dilation, padding
    batch, height, width, _ = x_BHWC.shape
    # pad dy so that row d*m + lo_h - u is row d*m + (kh - 1 - u) of the padded array
    pad_h, pad_w = kh - 1 - lo_h, kw - 1 - lo_w
    rows, cols = dh * (height - 1) + kh, dw * (width - 1) + kw
    dy_pad = jax.lax.pad(dy, jnp.zeros((), dy.dtype),
                         ((0, 0, 0), (pad_h, rows - pad_h - dy.shape[1], 0),
                          (pad_w, cols - pad_w - dy.shape[2], 0), (0, 0, 0)))
    taps = [jax.lax.slice(dy_pad, (0, kh - 1 - u, kw - 1 - v, 0),
                          (batch, kh - u + dh * (height - 1), kw - v + dw * (width - 1),
                           features), (1, dh, dw, 1)).reshape(-1, features)
            for u in range(kh) for v in range(kw)]
    # one product for all taps: (N x C)^T @ (N x kh*kw*F), N contracted without a transpose
    grads_CTF = jax.lax.dot_general(x_BHWC.reshape(-1, channels), jnp.concatenate(taps, axis=1),
                                    (((0,), (0,)), ((), ())), preferred_element_type=jnp.float32)
    return grads_CTF.reshape(channels, kh, kw, features).transpose(1, 2, 0, 3)


def _xla_dilated_conv(x_BHWC, kernel, strides, padding, dilation):
    return jax.lax.conv_general_dilated(x_BHWC, kernel, strides, padding, dilation,
                                        dimension_numbers=("NHWC", "HWIO", "NHWC"))


@functools.partial(jax.custom_vjp, nondiff_argnums=(2, 3, 4, 5, 6))
def _cpu_conv(x_BHWC, kernel, strides, padding, dilation, forward, input_grad):
    if forward == "taps":  # written out: XLA recomputed its many taps in every consumer
        # (LeNet-5's ReLU and max-pool, forward and backward)
        return written_out(lambda x: _conv_by_taps(x, kernel, strides, padding), x_BHWC)
    if forward == "phases":
        return _dilated_conv_by_phases(x_BHWC, kernel, padding, dilation)
    return _xla_dilated_conv(x_BHWC, kernel, strides, padding, dilation)


def _cpu_conv_fwd(x_BHWC, kernel, strides, padding, dilation, forward, input_grad):
    out = _cpu_conv(x_BHWC, kernel, strides, padding, dilation, forward, input_grad)
    return out, (x_BHWC, kernel)


def _cpu_conv_bwd(strides, padding, dilation, forward, input_grad, residuals, dy):
    x_BHWC, kernel = residuals
    # XLA's own gradient convolutions; their forward is not computed (nor, under jit, an
    # input gradient replaced below)
    _, back = jax.vjp(lambda x, k: _xla_dilated_conv(x, k, strides, padding, dilation),
                      x_BHWC, kernel)
    dx, dk = back(dy)
    if dilation != (1, 1):
        dk = _kernel_grad_of_dilated_input(x_BHWC, dy, kernel.shape, dilation, padding)
    if input_grad == "taps":  # written out: a consumer that reads it more than once (a
        # max-pool's backward) recomputed its kh * kw shifted adds at every read
        dx = written_out(lambda x: _input_grad_by_taps(x, kernel, dy), x_BHWC)
    elif input_grad == "phases":
        dx = _input_grad_by_phases(x_BHWC.shape, kernel, dy, strides, padding)
    return dx.astype(x_BHWC.dtype), dk.astype(kernel.dtype)


_cpu_conv.defvjp(_cpu_conv_fwd, _cpu_conv_bwd)


def keep_in_memory(x: jax.Array) -> jax.Array:
    """x, unchanged, but written to memory once instead of recomputed in each of its consumers.

    XLA:CPU fuses an array's cheap elementwise producers into every consumer that can take
    them. A convolution's backward pass reads its input through a transposed copy, and in
    ResNet-18 each such copy re-ran BatchNorm, ReLU and the residual sums of up to three
    blocks (`python -m benchmarks.op_profile resnet18`). XLA does not duplicate a division,
    so x / 1, with a 1 it cannot fold, stops that. It changes no value (x / 1 == x, NaN and
    inf included; subnormals flush to zero, as in every elementwise op of XLA:CPU), nor the
    gradient. A consumer that reads each element more than once through slices (a
    max-pool's backward) had the division fused in all the same: `written_out` computes
    such results inside a conditional instead (a conditional that only passes x through
    is removed by XLA, so it cannot serve here).
    """
    if x.size == 0 or not jnp.issubdtype(x.dtype, jnp.floating):
        return x
    s = jax.lax.stop_gradient(x.reshape(-1)[0])
    # exactly 1 whatever s is (NaN and inf too), but a value XLA only knows at run time
    one = jnp.where(s == s, jnp.clip(s, -1, 1), 0) * 0 + 1
    return x / one


# the smallest convolution input that `window_conv` keeps in memory on CPU: below it the
# extra pass cost more than the recomputation (a tiny detector's step 5% slower)
KEEP_MIN_BYTES = 1 << 20
# On CPU a convolution of a dilated input (a transposed convolution, or XLA's input gradient
# of a strided one) runs by phases from this size of XLA's column buffer up: there a pool
# thread maps the buffer afresh at every call (glibc maps any block over 64 MiB outside the
# main heap) and faults it in; below it, the phases lost as often as they won
# (docs/results/benchmarks.md, stop 59).
PHASES_MIN_COLUMN_BYTES = 64 << 20


def _dilated_conv_column_bytes(pixels: int, kernel_hw: Sequence[int], features: int,
                               itemsize: int) -> int:
    """Bytes of the column buffer of XLA:CPU's convolution of a dilated input (Eigen's
    transposed convolution): a row per pixel of the undilated input, kh * kw * features
    columns, in float32 or wider."""
    return pixels * kernel_hw[0] * kernel_hw[1] * features * max(itemsize, 4)


def window_conv(lhs: jax.Array, rhs: jax.Array, window_strides: Sequence[int], padding: Any,
                lhs_dilation: Any = None, rhs_dilation: Any = None, dimension_numbers: Any = None,
                feature_group_count: int = 1, precision: Any = None) -> jax.Array:
    """`lax.conv_general_dilated` (the signature `nn.Conv(conv_general_dilated=...)` calls)
    with six CPU shortcuts for channels-last 2-D convolutions without kernel dilation:
    - a depthwise convolution (one group per channel) runs on taps (XLA's grouped convolution
      was 9x slower forward + backward at MobileNet's 32x56x56x144), its kernel gradient from
      `_depthwise_kernel_grad` with `DEPTHWISE_GRAD_MIN_CHANNELS` channels or more;
    - a stride-1 forward with at most `FEW_CHANNELS` input channels runs on taps (XLA ran
      LeNet-5's one-channel convolution at 2 GFLOP/s; ResNet's 7x7 stride-2 stem lost on taps:
      2.7 -> 3.6 ms, compile 0.05 -> 0.37 s), its output written to memory once
      (`written_out`; LeNet-5's b128 step 4.6-4.7 -> 4.4-4.5 ms), its gradients XLA's;
    - a stride-1 convolution of a dilated input (a transposed convolution) takes its kernel
      gradient as one matrix product over all taps (XLA's took 117 ms of DCGAN's 143 ms step),
      and its forward by phases (`_dilated_conv_by_phases`) where XLA's would map a column
      buffer of `PHASES_MIN_COLUMN_BYTES` afresh at every call;
    - a stride-1 unpadded convolution with at most `FEW_CHANNELS_INPUT_GRAD` input channels
      takes its input gradient as one matrix product and shifted adds (LeNet-5's conv2,
      6 -> 16 at 14x14: 3.4 -> 1.3 ms; padded or with 12 and more channels it lost or tied),
      written out once (its max-pool's backward had recomputed the adds at every read);
    - a strided convolution takes its input gradient by phases (`_input_grad_by_phases`)
      where XLA's would map a column buffer of `PHASES_MIN_COLUMN_BYTES` afresh at every
      call (DCGAN's 4x4 and ResNet-18's first 3x3 stride-2 layers at their batches);
    - a 1x1 convolution is a matrix product of its input's (strided) tap: XLA's kernel
      gradient of a strided one is a kernel-dilated convolution (forward + backward 15.6 ->
      7.6 ms at ResNet-18's 128x32x32x64 -> 128), and its convolution's gradients go through
      transposed copies (MobileNetV2's b32 step 250-252 -> 230-231 ms).
    Elsewhere, and on GPU and TPU, it is XLA's convolution; on CPU an input of at least
    `KEEP_MIN_BYTES` goes through `keep_in_memory` first, so that the backward pass's
    transposed copy of it reads one array (ResNet-18's b128 train step: 1.6 -> 1.2 s).
    """
    def xla(x, k):
        return jax.lax.conv_general_dilated(x, k, window_strides, padding, lhs_dilation,
                                            rhs_dilation, dimension_numbers,
                                            feature_group_count, precision=precision)

    def xla_on_cpu(x, k):
        return xla(x if x.nbytes < KEEP_MIN_BYTES else keep_in_memory(x), k)

    dilation = (1, 1) if lhs_dilation is None else tuple(int(d) for d in lhs_dilation)
    if (lhs.ndim != 4 or tuple(rhs_dilation or (1, 1)) != (1, 1)
            or (isinstance(padding, str) and dilation != (1, 1))):
        return jax.lax.platform_dependent(lhs, rhs, cpu=xla_on_cpu, default=xla)
    nhwc = jax.lax.conv_dimension_numbers(lhs.shape, rhs.shape, ("NHWC", "HWIO", "NHWC"))
    strides = tuple(int(s) for s in window_strides)
    # "SAME" / "VALID" as lax resolves them (no input dilation), if the layout is NHWC/HWIO
    pads = tuple((int(lo), int(hi)) for lo, hi in (
        jax.lax.padtype_to_pads(lhs.shape[1:3], rhs.shape[:2], strides, padding)
        if isinstance(padding, str) else padding))
    depthwise = feature_group_count == lhs.shape[-1] == rhs.shape[-1] > 1 and dilation == (1, 1)
    plain = feature_group_count == 1
    on_taps = plain and rhs.shape[2] <= FEW_CHANNELS and dilation == strides == (1, 1)
    transposed = plain and dilation != (1, 1) and strides == (1, 1)
    grad_on_taps = (plain and rhs.shape[2] <= FEW_CHANNELS_INPUT_GRAD
                    and not any(map(any, pads)) and dilation == strides == (1, 1))
    pointwise = plain and tuple(rhs.shape[:2]) == (1, 1) and dilation == (1, 1)
    # XLA:CPU runs both of these as a convolution of a dilated input (Eigen's transposed
    # convolution): a strided convolution's input gradient (of the output gradient's pixels)
    # and a transposed convolution's forward (of its input's)
    out_h, out_w = ((n + lo + hi - k) // s + 1 for n, (lo, hi), k, s in zip(
        lhs.shape[1:3], pads, rhs.shape[:2], strides))
    phases_allowed = min(map(min, pads)) >= 0
    grad_by_phases = (plain and dilation == (1, 1) and strides != (1, 1) and not pointwise
                      and phases_allowed and _dilated_conv_column_bytes(
                          lhs.shape[0] * out_h * out_w, rhs.shape[:2], rhs.shape[2],
                          lhs.dtype.itemsize) >= PHASES_MIN_COLUMN_BYTES)
    forward_by_phases = (transposed and phases_allowed and _dilated_conv_column_bytes(
        lhs.shape[0] * lhs.shape[1] * lhs.shape[2], rhs.shape[:2], rhs.shape[3],
        lhs.dtype.itemsize) >= PHASES_MIN_COLUMN_BYTES)
    if (not (depthwise or on_taps or transposed or grad_on_taps or pointwise or grad_by_phases)
            or jax.lax.conv_dimension_numbers(lhs.shape, rhs.shape, dimension_numbers) != nhwc):
        return jax.lax.platform_dependent(lhs, rhs, cpu=xla_on_cpu, default=xla)
    if pointwise:
        cpu = lambda x, k: _pointwise_as_product(x, k, strides, pads, precision)  # noqa: E731
    elif depthwise:
        by_taps = (_depthwise_with_kernel_grad if lhs.shape[-1] >= DEPTHWISE_GRAD_MIN_CHANNELS
                   else _depthwise_by_taps)
        cpu = lambda x, k: by_taps(x, k, strides, pads)  # noqa: E731
    elif grad_by_phases:
        cpu = lambda x, k: _cpu_conv(  # noqa: E731
            x if x.nbytes < KEEP_MIN_BYTES else keep_in_memory(x), k, strides, pads, dilation,
            "xla", "phases")
    else:
        forward = "taps" if on_taps else "phases" if forward_by_phases else "xla"
        cpu = lambda x, k: _cpu_conv(x, k, strides, pads, dilation, forward,  # noqa: E731
                                     "taps" if grad_on_taps else "xla")
    return jax.lax.platform_dependent(lhs, rhs, cpu=cpu, default=xla)


def _pointwise_as_product(x_BHWC: jax.Array, kernel: jax.Array, strides: tuple[int, int],
                          padding: tuple[tuple[int, int], ...], precision: Any) -> jax.Array:
    """A 1x1 convolution as one matrix product of its input's tap (the strided, padded
    slice it reads; the input itself at stride 1 without padding) with the kernel's
    [C, F] matrix, so that both gradients are products too."""
    tap = (x_BHWC if strides == (1, 1) and not any(map(any, padding))
           else window_taps(x_BHWC, (1, 1), strides, padding)[0])
    batch, height, width, channels = tap.shape
    out = jax.lax.dot_general(tap.reshape(-1, channels), kernel[0, 0],
                              (((1,), (0,)), ((), ())), precision=precision)
    return out.reshape(batch, height, width, kernel.shape[-1])


def upsampling_conv(features: int, size: int, **conv_fields: Any) -> nn.Conv:
    """`nn.ConvTranspose(features, (size, size), strides=2, padding="SAME", **conv_fields)`
    written as the convolution of the 2x-dilated input that it is (the same `kernel` and
    `bias`, the same output): as an nn.Conv through `window_conv`, its kernel gradient is one
    matrix product over all taps on CPU."""
    pad_len = size  # lax's "SAME" transposed padding for stride 2: size + 2 - 2 in all
    before = size - 1 if size < 3 else -(-pad_len // 2)
    return nn.Conv(features, (size, size), padding=((before, pad_len - before),) * 2,
                   input_dilation=2, conv_general_dilated=window_conv, **conv_fields)
