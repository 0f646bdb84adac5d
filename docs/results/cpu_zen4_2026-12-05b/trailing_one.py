"""XLA:CPU on arrays with a trailing dimension of 1. Part 1: sum(f(x)) for f = exp, sigmoid,
square at equal sizes in several shapes and reduced axes, with YNNPACK's reductions (the
step's programs, `model_jit`) and with XLA's own loops. Part 2: a VAE-like loss and its
gradient (BCE summed per image, plus the squared error of sigmoid(logits) as a metric) on
the same values as (128, 28, 28, 1), (128, 28, 28) and (128, 784) inputs, and on 4-D inputs
reshaped to rows first (the landed form), behind an optimization barrier, or as they are.
Medians of alternated rounds (`benchmarks.harness.alternate`).

    PYTHONPATH=. python docs/results/cpu_zen4_2026-12-05b/trailing_one.py
"""

import jax
import jax.numpy as jnp
import numpy as np
import optax

from benchmarks.harness import alternate
from dl_arch.train.compile_options import YNN_OPTION, model_jit

rng = np.random.default_rng(0)
XLA_REDUCE = {YNN_OPTION: "LIBRARY_FUSION_TYPE_INDIVIDUAL_DOT"}
CASES = [((4096, 256), (-1,)), ((16, 256, 256), (-1,)), ((16, 4, 64, 256), (-1,)),
         ((128, 784), (1,)), ((128, 28, 28), (1, 2)), ((128, 28, 28, 1), (1, 2, 3)),
         ((128, 28, 28, 1), (3,)), ((128, 16, 16, 8), (3,))]
for fname, f in (("exp", jnp.exp), ("sigmoid", jax.nn.sigmoid), ("square", jnp.square)):
    for shape, axes in CASES:
        x = jnp.asarray(rng.standard_normal(shape, np.float32))

        def reduced(x, axes=axes, f=f):
            return jnp.sum(f(x), axis=axes)

        a, b = model_jit(reduced), jax.jit(reduced, compiler_options=XLA_REDUCE)
        np.testing.assert_allclose(np.asarray(a(x)), np.asarray(b(x)), rtol=2e-4, atol=1e-3)
        ta, tb = alternate([lambda a=a, x=x: a(x), lambda b=b, x=x: b(x)])
        print(f"{fname} {shape} axes {axes}: ynn {ta * 1e6:.0f} us, xla {tb * 1e6:.0f} us, "
              f"ynn/xla {ta / tb:.1f}", flush=True)


def terms(logits, x):
    recon = optax.sigmoid_binary_cross_entropy(logits, x).sum(axis=1)
    mse = jnp.square(jax.nn.sigmoid(logits) - x).sum(axis=1) / 784
    return jnp.mean(recon), jnp.mean(mse)


def rows(v):
    return v.reshape(v.shape[0], -1)


def as_before(logits, x):  # the per-pixel terms on the images' own shape, summed as rows
    recon = rows(optax.sigmoid_binary_cross_entropy(logits, x)).sum(axis=1)
    mse = rows(jnp.square(jax.nn.sigmoid(logits) - x)).sum(axis=1) / 784
    return jnp.mean(recon), jnp.mean(mse)


def rows_first(logits, x):
    return terms(rows(logits), rows(x))


def behind_barrier(logits, x):
    return terms(*jax.lax.optimization_barrier((rows(logits), rows(x))))


l4 = rng.standard_normal((128, 28, 28, 1), np.float32)
x4 = rng.uniform(size=(128, 28, 28, 1)).astype(np.float32)
grad = model_jit(jax.value_and_grad(as_before, has_aux=True))
ways = {}
for shape in ((128, 28, 28, 1), (128, 28, 28), (128, 784)):
    logits, x = jnp.asarray(l4.reshape(shape)), jnp.asarray(x4.reshape(shape))
    ways[f"inputs {shape}"] = lambda logits=logits, x=x: grad(logits, x)
logits, x = jnp.asarray(l4), jnp.asarray(x4)
for name, f in (("4-D inputs, rows first", rows_first),
                ("4-D inputs, rows behind a barrier", behind_barrier)):
    g = model_jit(jax.value_and_grad(f, has_aux=True))
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7),
                 jax.device_get(g(logits, x)), jax.device_get(grad(logits, x)))
    ways[name] = lambda g=g: g(logits, x)
for rnd in range(3):
    t = alternate(list(ways.values()))
    print(f"loss and gradient, round {rnd}: "
          + ", ".join(f"{n} {s * 1e6:.0f} us" for n, s in zip(ways, t)), flush=True)
