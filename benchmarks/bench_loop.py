"""The whole training loop against its bare step: what a user's run pays beside the model.

For each small config, in one process: steady-state steps/s of `train_and_evaluate` (the
path `launch.py` runs: input pipeline, device placement, metric windows, logging;
evaluation and checkpoints only at the end, compilation and the first tenth of the run
excluded) against the same loop step (one step per call) called back to back on one
device-resident batch. A ratio of 1.0 means the loop costs nothing beside the step; with
`steps_per_call` > 1 the loop can pass it, since the bare step pays a launch per step.
Loop and bare runs alternate (three rounds, one with --quick) and each side's fastest run
is reported (timeit's rule: a slower run also measured something else): the bare step alone
read 8,794-24,541 steps/s in five timings in one process on the 2-core EPYC, and its slow
readings caught two of three runs of a row, so medians kept them (docs/results/
benchmarks.md, "The loop rows' rounds").

Both sides' host CPU is read too (`train/host_cpu`, `HostCpu`: cores kept busy, input workers
included), so a row also gives the CPU a step costs in the loop and bare, and the ratio the
host's cores allow: the bare step's time over the loop's CPU per step spread over every
core. A loop that reaches that bound spends nothing beyond the work its steps and batches
need; the rest of its gap is the machine's.
"""

from __future__ import annotations

import json
import os
import statistics
import tempfile
import time
from collections.abc import Callable
from typing import Any, NamedTuple

import jax

from benchmarks.harness import Row
from benchmarks.loop_step import loop_stepper
from dl_arch.config.resolve import resolve_config
from dl_arch.testing import load_config
from dl_arch.train.host_cpu import HostCpu, available_cores
from dl_arch.train.loop import train_and_evaluate
from dl_arch.train.trainer import Trainer

# (config, grain worker processes, steps per call, training examples: 0 = the config's,
#  steps a run: full, quick): each run long enough to hold several log rows past its first
#  tenth (`mlp_xor` runs 5,000-25,000 steps/s, `lstm_adding` about 45)
CONFIGS = (("configs/mlp_xor.py", 0, 1, 0, 20000, 5000),
           ("configs/mlp_xor.py", 0, 16, 0, 20000, 5000),
           ("configs/mlp_xor.py", 0, 1, 8192, 20000, 5000),
           ("configs/mlp_xor.py", 0, 16, 8192, 20000, 5000),
           ("configs/lenet5_shapes.py", 0, 1, 0, 2000, 300),
           ("configs/lenet5_shapes.py", 2, 1, 0, 2000, 300),
           ("configs/lstm_adding.py", 0, 1, 0, 1000, 200))
ROUNDS = {False: 3, True: 1}  # loop runs, each followed by a bare run, per row (full, quick)


def _config(spec: str, steps: int, workers: int = 0, steps_per_call: int = 1,
            examples: int = 0):
    config = resolve_config(load_config(spec), [("evaluators", ())])  # no pictures
    config.num_train_steps = steps
    config.eval_every_steps = steps
    config.checkpoint_every_steps = steps
    config.log_every_steps = min(50, steps)
    config.eval_max_batches = 1
    config.progress = "none"
    config.steps_per_call = steps_per_call
    config.dataset.num_workers = workers
    if examples:  # a finite split, materialised once (dl_arch.data.cache)
        config.dataset.num_train_examples = examples
    return config


def bare_run(config, steps: int) -> tuple[float, float]:
    """(steps/s, cores busy) of the loop's own jitted step (metric window included) on one
    batch, back to back."""
    trainer = Trainer(config)
    run, _ = loop_stepper(trainer, trainer.first_batch())
    jax.block_until_ready(run())
    host = HostCpu(children=False)  # the bare step has no input workers
    t0 = time.perf_counter()
    for _ in range(steps):
        last = run()
    jax.block_until_ready(last)
    return steps / (time.perf_counter() - t0), host.cores_busy()


def bare_steps_per_sec(config, steps: int) -> float:
    """Steps/s of `bare_run`."""
    return bare_run(config, steps)[0]


def call_seconds(config, calls: int) -> float:
    """Median host time inside one call of the loop step, each made with nothing queued (the
    previous step finished): a call that only dispatches returns in a fraction of the step,
    one that waits for the device (a host round trip inside the step) takes most of it.
    Calls made back to back would not tell: once the runtime's queue of dispatched work is
    full, every call waits for an earlier one (on CPU from the first few calls)."""
    trainer = Trainer(config)
    run, _ = loop_stepper(trainer, trainer.first_batch())
    last = run()
    seconds = []
    for _ in range(calls):
        jax.block_until_ready(last)
        start = time.perf_counter()
        last = run()
        seconds.append(time.perf_counter() - start)
    jax.block_until_ready(last)
    return statistics.median(seconds)


class LoopFigures(NamedTuple):
    steps_per_sec: float
    input_wait: float
    input_busy: float
    host_cpu: float


def loop_run(config) -> LoopFigures:
    """(steps/s, input wait, input busy, host CPU) of a whole run in steady state: from the
    first log row past a tenth of the run (input workers started, buffers filled) to the last
    one. Each row's `train/steps_per_sec` is the mean since the first step (timed after
    compilation), so row k was written at k / rate_k seconds; the other three are the means of
    those rows' `train/input_wait` (the share of the loop's time spent waiting for the next
    batch), `train/input_busy` (the input thread's CPU time over the same time) and
    `train/host_cpu` (the cores the process and its input workers kept busy)."""
    with tempfile.TemporaryDirectory() as workdir:
        train_and_evaluate(config, workdir)
        with open(os.path.join(workdir, "metrics.jsonl")) as f:
            rows = [json.loads(line) for line in f]
    train = {r["step"]: r for r in rows if "train/steps_per_sec" in r}
    times = {k: k / r["train/steps_per_sec"] for k, r in train.items()}
    first = min(k for k in times if k >= config.num_train_steps // 10)
    last = max(times)
    steady = [r for k, r in train.items() if first < k <= last]
    wait, busy, cpu = (sum(r[f"train/{m}"] for r in steady) / len(steady)
                       for m in ("input_wait", "input_busy", "host_cpu"))
    return LoopFigures((last - first) / (times[last] - times[first]), wait, busy, cpu)


def runs_line(runs: list[LoopFigures], bare: float) -> str:
    """Several runs of one loop in a line: their median steps/s against the bare step's
    rate `bare`, then each run's figures (for the results scripts' A/Bs)."""
    rate = statistics.median(f.steps_per_sec for f in runs)

    def each(value, digits: int = 2) -> list[float]:
        return [round(value(f), digits) for f in runs]

    return (f"{rate:.0f} steps/s ({rate / bare:.2f}x bare), runs "
            f"{each(lambda f: f.steps_per_sec, 0)}, input wait {each(lambda f: f.input_wait)}, "
            f"input busy {each(lambda f: f.input_busy)}, host_cpu {each(lambda f: f.host_cpu)}, "
            f"CPU a step {each(lambda f: 1e3 * f.host_cpu / f.steps_per_sec)} ms")


def alternated_runs(config, ways: dict[str, Callable[[], Any]], rounds: int = 3
                    ) -> dict[str, list[LoopFigures]]:
    """Whole runs of `config` for each of `ways`, in turn for `rounds` rounds in one process
    (`ways[name]()` sets that way up before each of its runs), so that a slow spell of the
    machine hits every way alike: the results scripts' A/Bs."""
    runs: dict[str, list[LoopFigures]] = {way: [] for way in ways}
    for _ in range(rounds):
        for way, set_up in ways.items():
            set_up()
            runs[way].append(loop_run(config))
    return runs


def ab_lines(title: str, runs: dict[str, list[LoopFigures]], bare: float) -> str:
    """`title` with the bare step's rate, then a `runs_line` for each way."""
    width = max(map(len, runs))
    return "\n".join([f"{title}: bare step {bare:.0f} steps/s"]
                     + [f"  {way:{width}s} {runs_line(r, bare)}" for way, r in runs.items()])


def core_bound(loop: LoopFigures, bare: float, cores: int) -> float:
    """The loop-to-bare ratio the host's cores allow: the loop's CPU a step (its step, its
    input, its own work) spread over every core, against the bare step's wall time."""
    return min(1.0, cores * loop.steps_per_sec / (bare * loop.host_cpu))


def fastest(runs: list[LoopFigures]) -> LoopFigures:
    """The run with the most steps/s of several runs of one loop (its figures together)."""
    return max(runs, key=lambda run: run.steps_per_sec)


def rows(quick: bool):
    for spec, workers, per_call, examples, full, short in CONFIGS:
        steps = short if quick else full
        config = _config(spec, steps, workers, per_call, examples)
        loops, bares = [], []
        for _ in range(ROUNDS[quick]):  # alternated, so that a slow spell hits both sides
            loops.append(loop_run(config))
            bares.append(bare_run(config, steps))
        figures = fastest(loops)
        loop = figures.steps_per_sec
        bare, bare_cpu = max(bares)
        cores = available_cores()
        name = (f"loop vs bare step: {os.path.basename(spec)[:-3]} b{config.batch_size} "
                f"workers={workers} steps_per_call={per_call}"
                + (f" {examples} cached examples" if examples else ""))
        yield Row(name, 1.0 / loop, 1.0 / bare, "bare step",
                  extra=f"loop={loop:.0f} steps/s bare={bare:.0f} steps/s "
                        f"loop/bare={loop / bare:.2f} input_wait={figures.input_wait:.0%} "
                        f"input_busy={figures.input_busy:.0%} "
                        f"cpu/step loop={1e3 * figures.host_cpu / loop:.3g} ms "
                        f"bare={1e3 * bare_cpu / bare:.3g} ms "
                        f"core_bound={core_bound(figures, bare, cores):.2f} ({cores} cores) "
                        f"fastest of {len(loops)} alternated runs each")
