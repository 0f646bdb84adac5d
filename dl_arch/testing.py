"""Helpers for tests of every family: load a config file, overfit one batch, run a config."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax

from dl_arch.config.files import load_config_file
from dl_arch.train.compile_options import model_jit
from dl_arch.train.trainer import Trainer

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# XLA's CPU options for test programs, which are compiled far more often than they run: the
# classic (non-MLIR) fusion emitters, LLVM's lowest optimisation level and its FastISel
# instruction selector. -O0 against -O1 (one pinned core, empty cache, CPU seconds):
# test_summarization + test_question_answering 145 -> 97 s, test_gan + test_rnn_tasks (their
# overfit and training tests run hundreds of steps) 207 -> 134 s (docs/results/test_suite.md).
TEST_XLA_FLAGS = ("--xla_cpu_use_fusion_emitters=false --xla_backend_optimization_level=0"
                  " --xla_backend_extra_options=-fast-isel")
# ... except the programs of the helpers below, which run one step many times: at -O0 the
# 60-step scan of GoogLeNet-tiny ran 76.6 s against 5.1 s at -O1 (compile 3.9 s against 9.3 s).
MANY_STEPS_OPTIONS = {"xla_backend_optimization_level": 1}


def burn_cpu(seconds: float) -> None:
    """Keeps this thread busy for `seconds` of its own CPU time: input that costs CPU (a
    sleep costs none), for the tests of the loop's input clock."""
    start = time.thread_time()
    while time.thread_time() - start < seconds:
        pass


def launch_process(args: list[str], devices: int = 1, **kwargs: Any) -> subprocess.Popen:
    """`python launch.py ARGS` in a child process (unbuffered, stdout and stderr piped together)
    with the tests' XLA flags and `devices` CPU devices: for the tests that signal or kill it."""
    flags = f"{TEST_XLA_FLAGS} --xla_force_host_platform_device_count={devices}"
    env = dict(os.environ, PYTHONUNBUFFERED="1", XLA_FLAGS=flags)
    return subprocess.Popen([sys.executable, os.path.join(REPO, "launch.py"), *args], cwd=REPO,
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            **kwargs)


def load_config(spec: str) -> ml_collections.ConfigDict:
    """`'configs/x.py:smoke,T=10'` (relative to the repository) -> what its `get_config`
    returns, read by the same loader as launch.py's `--config`."""
    return load_config_file(os.path.join(REPO, spec))  # an absolute path is kept as it is


def first_batch(config: ml_collections.ConfigDict, task: Any | None = None) -> dict[str, Any]:
    """The first global training batch of a config, as device arrays."""
    return Trainer(config, task=task).first_batch()


def overfit_one_batch(config: ml_collections.ConfigDict, steps: int = 100
                      ) -> tuple[list[dict[str, float]], Any]:
    """Trains repeatedly on one batch; returns per-step metrics (host floats) and the state."""
    trainer = Trainer(config)
    batch = trainer.first_batch()
    state = trainer.init_state(batch)
    step = trainer.train_step(compiler_options=MANY_STEPS_OPTIONS)
    history = []
    for _ in range(steps):
        state, metrics = step(state, batch)
        history.append({k: float(v) for k, v in jax.device_get(metrics).items()})
    return history, state


def adam_on_one_batch(model: Any, variables: dict[str, Any], inputs: tuple, loss_of: Any,
                      steps: int, lr: float) -> tuple[np.ndarray, dict[str, Any]]:
    """Adam on one batch of a model alone (no Trainer), in train mode (batch statistics when
    the model has them, dropout keyed per step) inside one jitted scan: (per-step losses,
    final variables). `loss_of` maps the model's output to a scalar."""
    tx = optax.adam(lr)

    def step(carry, i):
        params, stats, opt_state = carry

        def loss_fn(p):
            v = {"params": p} if stats is None else {"params": p, "batch_stats": stats}
            out, updated = model.apply(v, *inputs, train=True, mutable=["batch_stats"],
                                       rngs={"dropout": jax.random.fold_in(jax.random.key(0), i)})
            return loss_of(out), updated.get("batch_stats")

        (loss, new_stats), grads = jax.value_and_grad(loss_fn, has_aux=True)(params)
        updates, opt_state = tx.update(grads, opt_state, params)
        return (optax.apply_updates(params, updates), new_stats, opt_state), loss

    # the optimiser's init inside the program: eagerly it compiles one program per shape
    run = model_jit(lambda p, s: jax.lax.scan(step, (p, s, tx.init(p)), jnp.arange(steps)),
                    compiler_options=MANY_STEPS_OPTIONS)
    (params, stats, _), losses = run(variables["params"], variables.get("batch_stats"))
    final = {"params": params} if stats is None else {"params": params, "batch_stats": stats}
    return np.asarray(losses), final
