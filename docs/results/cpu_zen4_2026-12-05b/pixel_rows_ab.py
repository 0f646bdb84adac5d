"""A/B of the autoencoding task's loss terms at one commit (before) and the working tree (now):
the VAE row's train step (`benchmarks.bench_generative`, 784-400-20, batch 128, 28x28x1) and
`configs/vae_shapes.py`'s and `configs/dae_shapes.py`'s loop steps, with PyTorch's VAE step
beside the row, alternated in one process.

    PYTHONPATH=. python docs/results/cpu_zen4_2026-12-05b/pixel_rows_ab.py [BEFORE_COMMIT]

"Before" is `autoencoder_terms` as BEFORE_COMMIT (default 4d25d80: the per-pixel terms on
(B, H, W, C) images) has it, loaded from git and put in place of the working tree's while
that side's step is traced; each side's losses and metrics are checked equal first.
"""

from dl_arch.train.host_memory import keep_freed_memory

keep_freed_memory()

import subprocess  # noqa: E402
import sys  # noqa: E402

import jax  # noqa: E402
import numpy as np  # noqa: E402

import dl_arch.tasks.autoencoding as ae  # noqa: E402
from benchmarks.bench_generative import _torch_vae, _vae_config  # noqa: E402
from benchmarks.harness import alternate  # noqa: E402
from benchmarks.loop_step import loop_stepper  # noqa: E402
from dl_arch.testing import load_config  # noqa: E402
from dl_arch.train.trainer import Trainer  # noqa: E402


def old_terms(commit: str):
    """`autoencoder_terms` (with the helpers it calls) as `commit` has them."""
    source = subprocess.check_output(
        ["git", "show", f"{commit}:dl_arch/tasks/autoencoding.py"], text=True)
    start = source.index("def reconstruction_error(")
    namespace = dict(vars(ae))
    exec(compile(source[start:source.index("@register_task")], commit, "exec"), namespace)
    return namespace["autoencoder_terms"]


def stepper(config, batch, terms):
    """`run` of the loop step with `terms` as the task's loss terms (bound when traced)."""
    landed = ae.autoencoder_terms
    ae.autoencoder_terms = terms
    try:
        trainer = Trainer(config)
        run, held = loop_stepper(trainer, batch)
        jax.block_until_ready(run())  # traced and compiled here
        return run, held
    finally:
        ae.autoencoder_terms = landed


commit = (sys.argv[1:] or ["4d25d80"])[0]
before = old_terms(commit)
rng = np.random.default_rng(0)
cases = {"VAE row b128": (_vae_config(128), {"image": jax.numpy.asarray(
    rng.uniform(size=(128, 28, 28, 1)).astype(np.float32))})}
for spec in ("configs/vae_shapes.py", "configs/dae_shapes.py"):
    trainer = Trainer(load_config(spec))
    cases[spec] = (trainer.config, trainer.first_batch())
for name, (config, batch) in cases.items():
    ways = {}
    for side, terms in (("before", before), ("now", ae.autoencoder_terms)):
        run, held = stepper(config, batch, terms)
        ways[side] = (run, held)
    stats = [jax.device_get(held["window"].stats) for _, held in ways.values()]
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=2e-5, atol=1e-6), *stats)
    calls = [run for run, _ in ways.values()]
    labels = list(ways)
    if name.startswith("VAE row"):
        calls.append(_torch_vae(128))
        labels.append("torch")
    for rnd in range(3):
        times = alternate(calls)
        print(f"{name}, round {rnd}: " + ", ".join(
            f"{n} {t * 1e3:.3f} ms" for n, t in zip(labels, times)), flush=True)
