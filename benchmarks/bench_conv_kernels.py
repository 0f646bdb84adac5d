"""The CNN rows' convolutions alone: ours against PyTorch at each model's own shapes.

The ResNet-18 and LeNet-5 rows trail PyTorch with most of their time in convolutions (op
profiles: ResNet-18 80% in XLA's convolution kernels, none over 2.5%; LeNet-5 58% in its
two convolutions' gradients). Each row here is one convolution of `resnet18` (small stem,
32x32 images) or `lenet5` (small stem, 28x28), forward and backward (input and kernel
gradients; the first convolution's input is the images, so its kernel gradient only), as
the train step runs it: NHWC/HWIO through `taps.window_conv` (XLA's
convolution, or its CPU shortcuts where they apply) against `torch.nn.functional.conv2d` on
channels_last tensors. Each model's last row sums its rows times the number of such
convolutions in the model, which says how much of the step's gap the kernels explain.
"""

from __future__ import annotations

from collections.abc import Iterator

import jax
import jax.numpy as jnp
import numpy as np

from benchmarks.harness import Row, compare
from dl_arch.models.cnn.taps import window_conv
from dl_arch.train.compile_options import model_jit

# (input side, in channels, out channels, kernel side, stride, padding, convolutions of
# this shape)
RESNET18_SMALL_STEM_32 = (
    (32, 3, 64, 3, 1, 1, 1),  # the stem
    (32, 64, 64, 3, 1, 1, 4),  # stage 1
    (32, 64, 128, 3, 2, 1, 1), (16, 128, 128, 3, 1, 1, 3), (32, 64, 128, 1, 2, 0, 1),
    (16, 128, 256, 3, 2, 1, 1), (8, 256, 256, 3, 1, 1, 3), (16, 128, 256, 1, 2, 0, 1),
    (8, 256, 512, 3, 2, 1, 1), (4, 512, 512, 3, 1, 1, 3), (8, 256, 512, 1, 2, 0, 1),
)
LENET5_SMALL_STEM_28 = ((28, 1, 6, 5, 1, 2, 1), (14, 6, 16, 5, 1, 0, 1))


def _ours(batch: int, hw: int, cin: int, cout: int, k: int, stride: int, pad: int,
          input_grad: bool):
    rng = np.random.default_rng(0)
    x = jnp.asarray(rng.standard_normal((batch, hw, hw, cin)), jnp.float32)
    w = jnp.asarray(rng.standard_normal((k, k, cin, cout)) * 0.05, jnp.float32)

    def loss(x, w):
        y = window_conv(x, w, (stride, stride), ((pad, pad), (pad, pad)),
                        dimension_numbers=("NHWC", "HWIO", "NHWC"))
        return jnp.sum(y * y) * 0.5  # a gradient of y itself flows back

    grads = model_jit(jax.grad(loss, argnums=(0, 1) if input_grad else 1))
    return lambda: grads(x, w)


def _reference(torch, batch: int, hw: int, cin: int, cout: int, k: int, stride: int,
               pad: int, input_grad: bool):
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(batch, cin, hw, hw, generator=gen).to(memory_format=torch.channels_last)
    w = (torch.randn(cout, cin, k, k, generator=gen) * 0.05).to(
        memory_format=torch.channels_last)
    x.requires_grad_(input_grad)
    w.requires_grad_(True)

    def run():
        x.grad = w.grad = None
        y = torch.nn.functional.conv2d(x, w, stride=stride, padding=pad)
        (0.5 * (y * y).sum()).backward()
        return x.grad, w.grad

    return run


def _model_rows(torch, model: str, shapes: tuple, batch: int, quick: bool) -> Iterator[Row]:
    ours_total = ref_total = 0.0
    for i, (hw, cin, cout, k, stride, pad, count) in enumerate(shapes):
        # the first convolution sees the images: no input gradient, as in the train step
        name = (f"conv fwd+bwd {model} b{batch} {hw}x{hw} {cin}->{cout} {k}x{k}/{stride} "
                f"(x{count}{', no input gradient' if i == 0 else ''})")
        row = compare(name, _ours(batch, hw, cin, cout, k, stride, pad, i > 0),
                      _reference(torch, batch, hw, cin, cout, k, stride, pad, i > 0), "torch",
                      quick)
        ours_total += count * row.ours_s
        ref_total += count * row.ref_s
        yield row
    yield Row(f"all convolutions of {model} b{batch}", ours_total, ref_total, "torch",
              extra="sum of the rows above, each times its count")


def rows(quick: bool) -> Iterator[Row]:
    import torch

    yield from _model_rows(torch, "resnet18", RESNET18_SMALL_STEM_32, 32 if quick else 128,
                           quick)
    yield from _model_rows(torch, "lenet5", LENET5_SMALL_STEM_28, 128, quick)
