"""A/B of U-Net's 2x2 stride-2 up-convolutions: flax's `nn.ConvTranspose` (before) against
`segmentation.upsample.BlockConvTranspose` (now), first alone (forward and backward at
`unet_shapes`' shapes), then in the loop steps of the configs that use U-Net, alternated in
one process (`benchmarks.harness.alternate`).

    PYTHONPATH=. python docs/results/cpu_zen4_2026-12-05b/block_conv_transpose_ab.py

U-Net looks `BlockConvTranspose` up when it is traced, so "before" puts flax's layer there
while its step is traced and compiled; each side's first step's metrics are checked equal.
"""

from dl_arch.train.host_memory import keep_freed_memory

keep_freed_memory()

import flax.linen as nn  # noqa: E402
import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
from swapped_step import print_ab  # noqa: E402

from benchmarks.harness import alternate  # noqa: E402
from dl_arch.models.segmentation import unet  # noqa: E402
from dl_arch.models.segmentation.upsample import BlockConvTranspose  # noqa: E402
from dl_arch.train.compile_options import model_jit  # noqa: E402


def flax_conv_transpose(features: int, stride: int, **kwargs) -> nn.ConvTranspose:
    return nn.ConvTranspose(features, (stride, stride), strides=(stride, stride),
                            padding="VALID", **kwargs)


rng = np.random.default_rng(0)
for shape, features in (((32, 4, 4, 128), 64), ((32, 8, 8, 64), 32), ((32, 16, 16, 32), 16),
                        ((32, 32, 32, 16), 8)):
    x = jnp.asarray(rng.standard_normal(shape, np.float32))
    cotangent = jnp.asarray(rng.standard_normal(
        (shape[0], 2 * shape[1], 2 * shape[2], features), np.float32))
    layers = (flax_conv_transpose(features, 2), BlockConvTranspose(features, 2))
    variables = layers[0].init(jax.random.key(0), x)
    grads = [model_jit(jax.value_and_grad(lambda v, x, m=m: jnp.sum(m.apply(v, x) * cotangent),
                                          argnums=(0, 1)))
             for m in layers]
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-3),
                 *[jax.device_get(g(variables, x)) for g in grads])
    before, now = alternate([lambda g=g: g(variables, x) for g in grads])
    print(f"2x2/2 up-convolution fwd+bwd {shape} -> {features}: before {before * 1e3:.2f} ms, "
          f"now {now * 1e3:.2f} ms, {before / now:.2f}x", flush=True)


for spec in ("configs/unet_shapes.py", "configs/unet_shapes.py:smoke"):
    print_ab(spec, unet, "BlockConvTranspose", flax_conv_transpose, BlockConvTranspose)
