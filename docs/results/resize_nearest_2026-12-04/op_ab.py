"""Nearest 2x upsampling, forward and backward, as `jax.image.resize` against repeats
(`dl_arch.models.layers.resize.resize_nearest`), one process, alternated rounds
(`benchmarks.harness.alternate`); also the largest gradient difference and whether each
compiled backward holds a scatter. Log: op_ab.log. From the repository root:
`PYTHONPATH=. python docs/results/resize_nearest_2026-12-04/op_ab.py`.
"""
import jax
import jax.numpy as jnp

from benchmarks.harness import alternate
from dl_arch.models.layers.resize import resize_nearest


def image_resize(x, h, w):
    return jax.image.resize(x, (x.shape[0], h, w, x.shape[3]), "nearest")


if __name__ == "__main__":
    for b, h, w, c in [(32, 8, 8, 128), (32, 16, 16, 128), (16, 32, 32, 64)]:
        x = jax.random.normal(jax.random.key(0), (b, h, w, c))
        g = jax.random.normal(jax.random.key(1), (b, 2 * h, 2 * w, c))
        fs = [jax.jit(jax.grad(lambda x, f=f: jnp.sum(f(x, 2 * h, 2 * w) * g)))
              for f in (image_resize, resize_nearest)]
        diff = float(jnp.max(jnp.abs(fs[0](x) - fs[1](x))))
        t = alternate([lambda f=f: f(x) for f in fs])
        scatter = ["scatter" in f.lower(x).compile().as_text() for f in fs]
        print((b, h, w, c), f"image.resize {t[0] * 1e3:.3f} ms  repeats {t[1] * 1e3:.3f} ms"
              f"  max|grad diff| {diff}  scatter in backward: {scatter}", flush=True)
