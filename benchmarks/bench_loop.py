"""The whole training loop against its bare step: what a user's run pays beside the model.

For each small config, in one process: steps/s of `train_and_evaluate` (the path
`launch.py` runs: input pipeline, device placement, metric windows, logging; evaluation and
checkpoints only at the end, compilation excluded) against the same loop step called
back to back on one device-resident batch. A ratio of 1.0 means the loop costs nothing
beside the step.
"""

from __future__ import annotations

import json
import os
import tempfile
import time

import jax

from benchmarks.harness import Row
from dl_arch.config.resolve import resolve_config
from dl_arch.testing import load_config
from dl_arch.train import metric_window
from dl_arch.train.loop import train_and_evaluate
from dl_arch.train.trainer import Trainer

CONFIGS = ("configs/mlp_xor.py", "configs/lenet5_shapes.py", "configs/lstm_adding.py")


def _config(spec: str, steps: int):
    config = resolve_config(load_config(spec), [("evaluators", ())])  # no pictures
    config.num_train_steps = steps
    config.eval_every_steps = steps
    config.checkpoint_every_steps = steps
    config.log_every_steps = min(50, steps)
    config.eval_max_batches = 1
    config.progress = "none"
    return config


def bare_steps_per_sec(config, steps: int) -> float:
    """The loop's own jitted step (metric window included) on one batch, back to back."""
    trainer = Trainer(config)
    batch = trainer.first_batch()
    state = trainer.init_state(batch)
    step = trainer.loop_step()
    window = jax.device_put(metric_window.fresh(trainer.metric_shapes(state, batch)),
                            trainer.replicated)  # committed, as the step's outputs are
    state, window, _ = step(state, batch, window)
    jax.block_until_ready(window)
    t0 = time.perf_counter()
    for _ in range(steps):
        state, window, _ = step(state, batch, window)
    jax.block_until_ready(window)
    return steps / (time.perf_counter() - t0)


def loop_steps_per_sec(config) -> float:
    """steps/s of a whole run as summary.json reports it (timed after compilation)."""
    with tempfile.TemporaryDirectory() as workdir:
        train_and_evaluate(config, workdir)
        with open(os.path.join(workdir, "summary.json")) as f:
            return float(json.load(f)["steps_per_sec"])


def rows(quick: bool):
    steps = 300 if quick else 2000
    for spec in CONFIGS:
        config = _config(spec, steps)
        loop = loop_steps_per_sec(config)
        bare = bare_steps_per_sec(config, steps)
        name = f"loop vs bare step: {os.path.basename(spec)[:-3]} b{config.batch_size}"
        yield Row(name, 1.0 / loop, 1.0 / bare, "bare step",
                  extra=f"loop={loop:.0f} steps/s bare={bare:.0f} steps/s "
                        f"loop/bare={loop / bare:.2f}")
