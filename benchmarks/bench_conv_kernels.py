"""ResNet-18's convolutions alone: XLA against PyTorch at the model's own shapes.

The ResNet-18 row trails PyTorch with its time spread over every convolution (op profile:
80% in XLA's convolution kernels, none over 2.5%). Each row here is one convolution of
`resnet18` with the small stem on 32x32 images, forward and backward (input and kernel
gradients), as the train step runs it: NHWC/HWIO through `lax.conv_general_dilated` against
`torch.nn.functional.conv2d` on channels_last tensors. The last row sums every row times
the number of such convolutions in the model, which says how much of the step's gap the
kernels themselves explain.
"""

from __future__ import annotations

from collections.abc import Iterator

import jax
import jax.numpy as jnp
import numpy as np

from benchmarks.harness import Row, compare

# (input side, in channels, out channels, kernel side, stride, convolutions of this shape)
RESNET18_SMALL_STEM_32 = (
    (32, 3, 64, 3, 1, 1),  # the stem
    (32, 64, 64, 3, 1, 4),  # stage 1
    (32, 64, 128, 3, 2, 1), (16, 128, 128, 3, 1, 3), (32, 64, 128, 1, 2, 1),  # stage 2
    (16, 128, 256, 3, 2, 1), (8, 256, 256, 3, 1, 3), (16, 128, 256, 1, 2, 1),  # stage 3
    (8, 256, 512, 3, 2, 1), (4, 512, 512, 3, 1, 3), (8, 256, 512, 1, 2, 1),  # stage 4
)


def _ours(batch: int, hw: int, cin: int, cout: int, k: int, stride: int):
    rng = np.random.default_rng(0)
    x = jnp.asarray(rng.standard_normal((batch, hw, hw, cin)), jnp.float32)
    w = jnp.asarray(rng.standard_normal((k, k, cin, cout)) * 0.05, jnp.float32)
    pad = ((k // 2, k // 2),) * 2

    def loss(x, w):
        y = jax.lax.conv_general_dilated(x, w, (stride, stride), pad,
                                         dimension_numbers=("NHWC", "HWIO", "NHWC"))
        return jnp.sum(y * y) * 0.5  # a gradient of y itself flows back

    grads = jax.jit(jax.grad(loss, argnums=(0, 1)))
    return lambda: grads(x, w)


def _reference(torch, batch: int, hw: int, cin: int, cout: int, k: int, stride: int):
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(batch, cin, hw, hw, generator=gen).to(memory_format=torch.channels_last)
    w = (torch.randn(cout, cin, k, k, generator=gen) * 0.05).to(
        memory_format=torch.channels_last)
    x.requires_grad_(True)
    w.requires_grad_(True)

    def run():
        x.grad = w.grad = None
        y = torch.nn.functional.conv2d(x, w, stride=stride, padding=k // 2)
        (0.5 * (y * y).sum()).backward()
        return x.grad, w.grad

    return run


def rows(quick: bool) -> Iterator[Row]:
    import torch

    batch = 32 if quick else 128
    ours_total = ref_total = 0.0
    for hw, cin, cout, k, stride, count in RESNET18_SMALL_STEM_32:
        name = f"conv fwd+bwd b{batch} {hw}x{hw} {cin}->{cout} {k}x{k}/{stride} (x{count})"
        row = compare(name, _ours(batch, hw, cin, cout, k, stride),
                      _reference(torch, batch, hw, cin, cout, k, stride), "torch", quick)
        ours_total += count * row.ours_s
        ref_total += count * row.ref_s
        yield row
    yield Row(f"all convolutions of resnet18 (small stem) b{batch}", ours_total, ref_total,
              "torch", extra="sum of the rows above, each times its count")
