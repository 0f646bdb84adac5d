"""A/B of GroupNorm: flax's `nn.GroupNorm` (before) against `GroupNorm` below (now: the
statistics from per-channel sums over the spatial axes, then over each group's channels;
tried in stop 62, not adopted), first alone (forward and backward at the configs' shapes),
then in the loop steps of the configs that use it, alternated in one process
(`benchmarks.harness.alternate`).

    PYTHONPATH=. python docs/results/cpu_zen4_2026-12-05b/group_norm_ab.py

The configs' models look `nn.GroupNorm` up when they are traced, so "now" puts the class
below there while its step is traced and compiled; each side's first step's metrics are
checked equal.
"""

from dl_arch.train.host_memory import keep_freed_memory

keep_freed_memory()

from typing import Any  # noqa: E402

import flax.linen as nn  # noqa: E402
import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
from swapped_step import print_ab  # noqa: E402

from benchmarks.harness import alternate  # noqa: E402
from dl_arch.train.compile_options import model_jit  # noqa: E402


class GroupNorm(nn.Module):
    """Normalises each example over its spatial axes and the channels of each of `num_groups`
    groups, then scales and shifts each channel. Input (B, ..., C), C divisible by the groups."""

    num_groups: int
    epsilon: float = 1e-6
    dtype: Any = None
    param_dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        channels = x.shape[-1]
        if channels % self.num_groups:
            raise ValueError(f"GroupNorm: {channels} channels do not split into "
                             f"{self.num_groups} groups")
        scale = self.param("scale", nn.initializers.ones, (channels,), self.param_dtype)
        bias = self.param("bias", nn.initializers.zeros, (channels,), self.param_dtype)
        out_dtype = self.dtype or jnp.result_type(x, scale, bias)
        batch, per_group = x.shape[0], channels // self.num_groups
        count = per_group * (x.size // (batch * channels))
        x32 = x.astype(jnp.promote_types(x.dtype, jnp.float32))
        spatial = tuple(range(1, x.ndim - 1))

        def group_means(values_BC: jax.Array) -> jax.Array:  # (B, C) sums -> (B, G) means
            return values_BC.reshape(batch, self.num_groups, per_group).sum(axis=-1) / count

        mean_BG = group_means(jnp.sum(x32, axis=spatial))
        var_BG = jnp.maximum(0.0, group_means(jnp.sum(jnp.square(x32), axis=spatial))
                             - jnp.square(mean_BG))
        mean_BC = jnp.repeat(mean_BG, per_group, axis=1)
        mul_BC = (jnp.repeat(jax.lax.rsqrt(var_BG + self.epsilon), per_group, axis=1)
                  * scale[None])
        shape = (batch,) + (1,) * len(spatial) + (channels,)
        y = ((x32 - mean_BC.reshape(shape)) * mul_BC.reshape(shape)
             + bias.reshape(shape[1:])[None])
        return y.astype(out_dtype)


rng = np.random.default_rng(0)
for shape in ((64, 16, 16, 32), (64, 8, 8, 64), (32, 16, 16, 64), (64, 32, 32, 32)):
    x = jnp.asarray(rng.standard_normal(shape, np.float32) * 2 + 1)
    cotangent = jnp.asarray(rng.standard_normal(shape, np.float32))
    variables = nn.GroupNorm(num_groups=8).init(jax.random.key(0), x)
    grads = [model_jit(jax.value_and_grad(lambda v, x, m=m: jnp.sum(m.apply(v, x) * cotangent),
                                          argnums=(0, 1)))
             for m in (nn.GroupNorm(num_groups=8), GroupNorm(num_groups=8))]
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=2e-4, atol=2e-4),
                 *[jax.device_get(g(variables, x)) for g in grads])
    before, now = alternate([lambda g=g: g(variables, x) for g in grads])
    print(f"GroupNorm(8) fwd+bwd {shape}: before {before * 1e6:.0f} us, now {now * 1e6:.0f} us, "
          f"{before / now:.2f}x", flush=True)


for spec in ("configs/vae_shapes.py", "configs/dae_shapes.py", "configs/detector_shapes.py"):
    print_ab(spec, nn, "GroupNorm", nn.GroupNorm, GroupNorm)
