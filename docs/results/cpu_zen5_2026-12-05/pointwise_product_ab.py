"""A/B (stop 59): one train step with every 1x1 convolution of ResNet and MobileNetV2 as
XLA's convolution (the code before; its input kept in memory on CPU, as `window_conv` keeps
every large input) and as `window_conv` now runs it on CPU (one matrix product of the
input's strided tap), in one process; prints ms a step per round.

    PYTHONPATH=. python docs/results/cpu_zen5_2026-12-05/pointwise_product_ab.py TARGET

TARGET as in keep_in_memory_ab.py (`model:batch` for a registry CNN, or a config file), or
`layer:BxHxWxC:COUT:S` (one 1x1 convolution of stride S, forward and both gradients of
sum(y^2)/2, as `benchmarks.bench_conv_kernels` times it).
(`strided_pointwise_ab_first.log`: a first version, strided 1x1 layers only, as a slice and
then XLA's stride-1 convolution, against XLA's strided one.)
"""

import os
import sys

from dl_arch.train.host_memory import keep_freed_memory

keep_freed_memory()

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

from dl_arch.models.cnn import mobilenet, resnet, taps  # noqa: E402
from dl_arch.train.compile_options import model_jit  # noqa: E402

sys.path.insert(0, os.path.dirname(__file__))
from keep_in_memory_ab import build as build_step  # noqa: E402
from keep_in_memory_ab import compare_settings, layer_input  # noqa: E402


def before(lhs, rhs, window_strides, padding, *args, **kwargs):
    """window_conv as it was for 1x1 kernels: XLA's convolution."""
    if tuple(rhs.shape[:2]) != (1, 1) or kwargs.get("feature_group_count", 1) != 1:
        return taps.window_conv(lhs, rhs, window_strides, padding, *args, **kwargs)

    def xla(x, k):
        return jax.lax.conv_general_dilated(x, k, window_strides, padding, *args, **kwargs)

    def cpu(x, k):
        return xla(x if x.nbytes < taps.KEEP_MIN_BYTES else taps.keep_in_memory(x), k)

    return jax.lax.platform_dependent(lhs, rhs, cpu=cpu, default=xla)


def use(conv):
    """`conv` as ResNet's and MobileNetV2's (and the layer's) convolution."""
    resnet.window_conv = mobilenet.window_conv = conv  # read when a model is traced


def build(target):
    """`run()` of the target."""
    conv = resnet.window_conv
    if not target.startswith("layer:"):
        return build_step(target)
    _, dims, cout, stride = target.split(":")
    rng, x = layer_input(dims)
    k = jnp.asarray(rng.standard_normal((1, 1, x.shape[-1], int(cout)), np.float32) * 0.05)

    def loss(x, k):
        y = conv(x, k, (int(stride),) * 2, ((0, 0), (0, 0)),
                 dimension_numbers=("NHWC", "HWIO", "NHWC"))
        return jnp.sum(y * y) * 0.5

    grad = model_jit(jax.grad(loss, argnums=(0, 1)))
    return lambda: grad(x, k)


def main():
    compare_settings(sys.argv[1], [("conv", before), ("product", taps.window_conv)], use, build)


if __name__ == "__main__":
    main()
