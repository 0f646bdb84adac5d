"""A/B (stop 57): one train step with `taps.keep_in_memory` applied to CPU convolution inputs
of at least T bytes, for each T given, in one process; prints ms a step per round.

    PYTHONPATH=. python docs/results/cpu_zen5_2026-12-05/keep_in_memory_ab.py TARGET T1,T2,...

TARGET is `model:batch` (a registry CNN, small stem, 32x32 images (LeNet-5: 28x28), the SGD step of
`benchmarks.bench_cnn`), `dcgan:SIZE` (`benchmarks.bench_generative`'s DCGAN row at 32 or
64) or a config file (its loop step, as `benchmarks.bench_loop` times it).
T = 1e18 keeps nothing (the code before the change); 1048576 is `KEEP_MIN_BYTES`.
"""

import os
import sys

from dl_arch.train.host_memory import keep_freed_memory

keep_freed_memory()

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

from benchmarks.harness import block, median_seconds  # noqa: E402
from dl_arch.models.cnn import taps  # noqa: E402

KEEP = taps.keep_in_memory


def build(target):
    """`run()`: one step of the target on its state, returning the loss (the loop step: its
    metrics, the first of them printed)."""
    if target.endswith(".py"):
        from benchmarks.loop_step import loop_stepper
        from dl_arch.testing import load_config
        from dl_arch.train.trainer import Trainer

        trainer = Trainer(load_config(target))
        return loop_stepper(trainer, trainer.first_batch())[0]
    if target.startswith("dcgan:"):
        from benchmarks.bench_generative import _dcgan_config, _ours

        size = int(target.split(":")[1])
        images = np.random.default_rng(0).uniform(size=(64, size, size, 3)).astype(np.float32)
        return _ours(_dcgan_config(size, 3, 64, 3 if size == 32 else 4, 64), images)[0]
    from benchmarks.bench_cnn import our_sgd_step
    from dl_arch.registry import MODELS

    name, batch = target.split(":")
    rng = np.random.default_rng(0)
    hw, ch = (28, 1) if name.startswith("lenet") else (32, 3)
    images = jnp.asarray(rng.standard_normal((int(batch), hw, hw, ch), np.float32))
    labels = jnp.asarray(rng.integers(0, 10, int(batch)).astype(np.int32))
    fields = ({"dropout_rate": 0.0} if name.startswith(("mobilenet", "googlenet", "vgg", "alexnet"))
              else {})
    return our_sgd_step(MODELS.get(name)(num_classes=10, stem="small", **fields), images,
                        labels)[0]


def main():
    target, thresholds = sys.argv[1], [float(t) for t in sys.argv[2].split(",")]
    runs, sizes = {}, set()
    for t in thresholds:
        def keep(x, t=t):
            sizes.add(x.nbytes)
            return KEEP(x) if x.nbytes >= t else x

        taps.keep_in_memory = keep
        # the threshold is read through keep_in_memory here: window_conv's own check is off
        taps.KEEP_MIN_BYTES = 0
        run = build(target)
        losses = [round(float(jnp.ravel(jax.tree.leaves(run())[0])[0]), 6) for _ in range(2)]
        print(f"T={t:g}", "losses", losses, flush=True)
        runs[f"T={t:g}"] = run
    print("conv inputs (MiB):", sorted(round(s / 2**20, 2) for s in sizes))
    print_rounds(target, runs, 9 if target.endswith(".py") else 3)


def compare_settings(target, settings, apply, build_run):
    """For each (name, value) of `settings`: `apply(value)` (read when the step is traced),
    then `build_run(target)`; prints the first output of each run once, then the rounds."""
    runs = {}
    for name, value in settings:
        apply(value)
        run = build_run(target)
        out = jax.tree.leaves(run())[0]
        print(name, "first output", round(float(jnp.ravel(out)[0]), 5), flush=True)
        runs[name] = run
    print_rounds(target, runs, 9 if target.endswith(".py") else 3)


def compare_taps_constant(name, label, build_run):
    """`compare_settings` over the values of `taps.<name>` listed in argv[2] (comma-separated),
    on the target argv[1]; each run is labelled `label=value`."""
    values = [float(v) for v in sys.argv[2].split(",")]
    compare_settings(sys.argv[1], [(f"{label}={v:g}", v) for v in values],
                     lambda v: setattr(taps, name, v), build_run)


def layer_input(dims):
    """(rng, x): a standard normal float32 input of shape `BxHxWxC`, seeded 0."""
    rng = np.random.default_rng(0)
    return rng, jnp.asarray(rng.standard_normal(tuple(int(d) for d in dims.split("x")),
                                                np.float32))


def conv_layer_grads(conv, x, rng=None):
    """`run()` of a Flax conv layer's input and kernel gradients at x, of sum(y * g) with g
    standard normal from `rng`, or of sum(y ** 2) without it."""
    from dl_arch.train.compile_options import model_jit

    kernel = jax.jit(conv.init)(jax.random.key(0), x)["params"]["kernel"]
    apply = lambda k, x: conv.apply({"params": {"kernel": k}}, x)  # noqa: E731
    g = None if rng is None else jnp.asarray(
        rng.standard_normal(apply(kernel, x).shape, np.float32))
    grad = model_jit(jax.grad(
        lambda x, k: jnp.sum(apply(k, x) ** 2 if g is None else apply(k, x) * g),
        argnums=(0, 1)))
    return lambda: grad(x, kernel)


def print_rounds(label, runs, n):
    """ROUNDS (3) rounds of every run in turn: the best of n-call medians, ms a call."""
    for _ in range(int(os.environ.get("ROUNDS", 3))):
        print(label, " | ".join(f"{k} {min(median_seconds(lambda r=r: block(r()), n)) * 1e3:.1f}"
                                for k, r in runs.items()), flush=True)


if __name__ == "__main__":
    main()
