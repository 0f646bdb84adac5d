"""The one training loop: every model family runs through `train_and_evaluate`.

Order of a run: resolve the config -> lock the workdir -> mesh -> the `Trainer` (task,
optimisers, data, state shapes) -> state (restored from the newest checkpoint that
restores, else initialised into its sharding, then `init_from`) -> compile the step once
-> loop {step; log; evaluate; checkpoint} -> final evaluation, report, summary.
Batches are read and placed on the devices two calls ahead by a thread (`Prefetcher`),
whose checkpointed state is that of the last batch the loop consumed. A call runs one step,
or with `config.steps_per_call` > 1 a chunk of steps over stacked batches
(`dl_arch.train.chunks`).
Train metrics are summed on the device (`metric_window`) and read only at logging,
evaluation and checkpoint steps, so no other step waits for the host; a NaN/Inf loss, or
one grown past `config.divergence_factor` times its first value, at any step, stops the
run (`LossDiverged`, naming that step) before any checkpoint holds it. Each
checkpoint also holds the running mean of the train metrics since the last log line, and
a resume drops the metrics rows past its step: a killed-and-resumed run logs the same
rows as an uninterrupted one.
"""

from __future__ import annotations

import collections
import json
import logging
import math
import os
import time
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from dl_arch.config.errors import ConfigError, LossDiverged
from dl_arch.config.resolve import resolve_config
from dl_arch.data.batch_iterator import block_size
from dl_arch.data.batching import batch_bytes
from dl_arch.data.pipeline import eval_batches
from dl_arch.data.prefetch import Prefetcher
from dl_arch.evaluators.base import EvalContext, write_report
from dl_arch.tasks.base import Task
from dl_arch.train import mesh as mesh_lib
from dl_arch.train import metric_window
from dl_arch.train.batch_keys import probe_step
from dl_arch.train.checkpoints import Checkpointer
from dl_arch.train.chunks import ChunkedBatches, chunk_lengths, chunking_note
from dl_arch.train.flops import jaxpr_flops
from dl_arch.train.host_memory import keep_freed_memory
from dl_arch.train.input_wait import InputWait
from dl_arch.train.preemption import Preempted, any_process, stop_requested
from dl_arch.train.progress import Progress
from dl_arch.train.run_config import save_config, warn_of_config_changes
from dl_arch.train.state import TrainState
from dl_arch.train.summary import format_table, param_table, peak_memory_bytes
from dl_arch.train.trainer import Trainer, build_task
from dl_arch.train.workdir_lock import WorkdirLock
from dl_arch.train.writers import MetricWriter, truncate_metrics

RUN_AHEAD = 2  # calls the host may dispatch before the device has finished them
# The train row's wall-clock figures (`InputWait` for the last three): two runs of the same
# steps log them differently.
TIMING_METRICS = ("train/steps_per_sec", "train/input_wait", "train/input_busy",
                  "train/host_cpu")

log = logging.getLogger("dl_arch")


def eval_split(config: ml_collections.ConfigDict, task: Task) -> Any:
    """This process's eval batches (local, padded), read afresh at each call."""
    eval_bs = config.eval_batch_size or config.batch_size
    return eval_batches(config.dataset, config.seed, eval_bs, task.preprocess,
                        jax.process_index(), jax.process_count(), config.eval_max_batches)


def evaluate(config: ml_collections.ConfigDict, task: Task, state: TrainState, eval_fn: Any,
             mesh: Any) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """The task's finalized metrics over the eval split (or its first `eval_max_batches`
    batches), arrays included, and the first local batch."""
    totals, first = None, None
    for local in eval_split(config, task):
        first = first if first is not None else local
        out = eval_fn(state, mesh_lib.to_step_input(local, mesh))
        totals = out if totals is None else jax.tree_util.tree_map(jnp.add, totals, out)
    if totals is None:
        return {}, None
    totals = jax.device_get(totals)
    return task.finalize_metrics({k: (np.asarray(s), np.asarray(c))
                                  for k, (s, c) in totals.items()}), first


def _scalars(metrics: dict[str, Any]) -> dict[str, Any]:
    return {f"eval/{k}": v for k, v in metrics.items() if np.ndim(v) == 0}


def _log_line(prefix: str, step: int, metrics: dict[str, Any]) -> None:
    shown = ", ".join(f"{k.split('/', 1)[-1]}={v:.4g}" for k, v in metrics.items()
                      if np.ndim(v) == 0 and isinstance(v, (int, float, np.floating)))
    log.info("%s step %d: %s", prefix, step, shown)


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str) -> dict[str, Any]:
    """Runs (or resumes) one training run in `workdir`; returns the final metrics.

    The config is resolved first (idempotent) and that resolved form is used and saved. The
    workdir is locked for the run's length (one writer per workdir), and SIGTERM is handled
    from the start: before the first step it returns {"preempted": True} having saved nothing.
    """
    t_start = time.time()
    keep_freed_memory()  # each step's temporaries reused, not mapped afresh (host_memory)
    config = resolve_config(config)
    os.makedirs(workdir, exist_ok=True)
    with WorkdirLock(workdir, active=jax.process_index() == 0), Preempted() as preempted:
        closers: list[Any] = []
        try:
            result = _run(config, workdir, preempted, closers, t_start)
        except BaseException:
            _close_all(closers, quiet=True)  # the error in flight is the one to report
            raise
        _close_all(closers, quiet=False)
        return result


def _close_all(closers: list[Any], quiet: bool) -> None:
    """Closes progress, writer and checkpointer (newest first); `quiet` logs their errors."""
    error = None
    for close in reversed(closers):
        try:
            close()
        except Exception as e:  # noqa: BLE001 - close the rest first, then report
            if quiet:
                log.warning("while stopping: %s: %s", type(e).__name__,
                            (str(e).splitlines() or [""])[0][:200])
            else:
                error = error or e
    closers.clear()
    if error is not None:
        raise error


def _run(config: ml_collections.ConfigDict, workdir: str, preempted: Preempted,
         closers: list[Any], t_start: float) -> dict[str, Any]:
    """The body of `train_and_evaluate` (resources to close are appended to `closers`)."""
    mesh = mesh_lib.make_mesh()
    mesh_lib.check_batch_size(config.batch_size, mesh)
    mesh_lib.check_batch_size(config.batch_size // config.grad_accum_steps, mesh,
                              "config.batch_size / config.grad_accum_steps")
    mesh_lib.check_batch_size(config.eval_batch_size or config.batch_size, mesh,
                              "config.eval_batch_size")
    log.info("devices: %d x %s (%d processes); mesh %s", jax.device_count(),
             jax.devices()[0].device_kind, jax.process_count(), dict(mesh.shape))

    trainer = Trainer(config, mesh)
    task = trainer.task
    pcount = jax.process_count()
    first_batch = trainer.first_batch()
    abstract_sharded = trainer.abstract_state(first_batch)
    state_sharding = trainer.state_sharding(abstract_sharded)
    # the keys the step never reads are dropped where training batches are loaded
    metric_shapes, unread = probe_step(trainer.step_fn(), abstract_sharded, first_batch)
    example_batch = {k: v for k, v in first_batch.items() if k not in unread}
    if unread:
        log.info("the train step reads no %s: dropped from the training batches",
                 ", ".join(unread))
    train_iter = iter(trainer.train_dataset(keys=tuple(example_batch) if unread else None))

    ckpt = Checkpointer(workdir, config.max_checkpoints_to_keep)
    closers.append(ckpt.close)
    restored = ckpt.restore(abstract_sharded, train_iter)
    loop_state: dict[str, Any] = {}
    if restored is not None:
        state, start, loop_state = restored
        loop_state = loop_state or {}
        log.info("resumed from checkpoint step %d in %s", start, ckpt.directory)
        warn_of_config_changes(config, workdir)
        summary_path = os.path.join(workdir, "summary.json")
        if start >= config.num_train_steps and os.path.exists(summary_path):
            # nothing runs, so config.json keeps the config the run was made with
            log.info("run already complete (%s)", summary_path)
            with open(summary_path) as f:
                return json.load(f)
    else:
        start = 0
    if stop_requested(preempted, pcount):
        log.warning("stopped by SIGTERM before the first step; nothing saved")
        return {"preempted": True, "step": start}
    save_config(config, workdir)
    if restored is None:
        state = trainer.init_state(first_batch)

    log.info("model parameters:\n%s", format_table(param_table(state.params)))
    probe_window = jax.device_put(metric_window.fresh(metric_shapes), trainer.replicated)
    traced = trainer.loop_step(state_sharding).trace(state, example_batch, probe_window)
    flops = jaxpr_flops(traced.jaxpr)
    compiled = traced.lower().compile()
    executables = {1: compiled}  # per chunk length (`train.chunks`)
    note = chunking_note(config)
    if note:
        log.info("%s", note)
    state_spec = jax.tree_util.tree_map(lambda x: jax.ShapeDtypeStruct(
        x.shape, x.dtype, sharding=x.sharding) if isinstance(x, jax.Array) else x, state)
    stacked, chunk_fn = mesh_lib.batch_sharding(mesh, stacked=True), trainer.loop_chunk(
        state_sharding)

    def executable(length: int) -> Any:
        """The compiled call of a chunk of `length` steps, compiled at its first use."""
        if length not in executables:
            executables[length] = chunk_fn.lower(state_spec, jax.tree_util.tree_map(
                lambda x: jax.ShapeDtypeStruct((length,) + x.shape, x.dtype, sharding=stacked),
                example_batch), probe_window).compile()
        return executables[length]

    executable(config.steps_per_call)  # the usual length, compiled before the first step
    log.info("FLOPs per train step (matmuls and convolutions, from the jaxpr): %.4g", flops)
    eval_fn = trainer.eval_step()
    evaluators = trainer.evaluators()
    if stop_requested(preempted, pcount):
        log.warning("stopped by SIGTERM before the first step; nothing saved")
        return {"preempted": True, "step": start}

    if restored is not None:  # the interrupted run's rows past its checkpoint are trained again
        dropped = truncate_metrics(workdir, start, drop_eval_at_step=start >= config.num_train_steps)
        if dropped:
            log.info("dropped %d metrics.jsonl row(s) past the resumed step %d", dropped, start)
    writer = MetricWriter(workdir, purge_step=start + 1 if restored is not None else None)
    closers.append(writer.close)
    progress = Progress(config.num_train_steps, start, config.progress, config.log_every_steps)
    closers.append(progress.close)
    averager = metric_window.Averager.from_state(loop_state.get("averager"))
    first_losses: dict[str, float] = dict(loop_state.get("first_losses") or {})
    final_metrics: dict[str, Any] = {}
    last_loss: float | None = None

    fresh_windows: dict[tuple, Any] = {}

    def fresh_window() -> Any:
        """An empty window on the devices. The steps do not donate their window, so one
        placed window serves every drain until the run's first losses change."""
        key = tuple(sorted(first_losses.items()))
        if key not in fresh_windows:
            fresh_windows.clear()
            fresh_windows[key] = jax.device_put(metric_window.fresh(metric_shapes, first_losses),
                                                trainer.replicated)
        return fresh_windows[key]

    window = fresh_window()

    def current_loop_state() -> dict[str, Any]:
        """What the loop itself carries across a resume, saved beside the train state."""
        return {"averager": averager.state(), "first_losses": dict(first_losses)}

    def diverged(message: str, step: int, hint: str = "") -> LossDiverged:
        ckpt.wait()
        last_good = ckpt.latest_step()
        error = LossDiverged(
            f"{message}; last good checkpoint: {last_good if last_good is not None else 'none'} "
            f"in {ckpt.directory}; lower config.optimizer.learning_rate or set "
            f"config.optimizer.clip_norm{hint}")
        error.dl_arch_step = step
        return error

    def drain(step: int) -> None:
        """Reads the device window of train metrics (the steps since the last read): NaN and
        divergence checks, then the log row at logging steps; starts a fresh window."""
        nonlocal window, last_loss
        reading = metric_window.read(window)
        if reading.bad_step >= 0:
            bad = ", ".join(f"{k}={v}" for k, v in reading.bad.items() if not math.isfinite(v))
            raise diverged(f"{bad} at step {reading.bad_step}", reading.bad_step)
        first_losses.update(reading.first)
        factor = config.divergence_factor
        if reading.grown_step >= 0:
            k, v = next((k, v) for k, v in reading.grown.items()
                        if first_losses[k] != 0 and abs(v) > factor * abs(first_losses[k]))
            raise diverged(f"{k}={v:.4g} at step {reading.grown_step} is more than "
                           f"config.divergence_factor={factor:g} times its first value "
                           f"{first_losses[k]:.4g}", reading.grown_step,
                           " (config.divergence_factor=0 turns this check off)")
        averager.add(reading.sums, reading.counts)
        losses = [k for k in reading.last if k.endswith("loss")]
        last_loss = reading.last["loss"] if "loss" in reading.last else \
            (reading.last[losses[0]] if losses else None)
        if step % config.log_every_steps == 0 or step == config.num_train_steps:
            row = {f"train/{k}": v for k, v in averager.pop().items()}
            row["train/steps_per_sec"] = progress.steps_per_sec(step)
            row.update({f"train/{k}": v for k, v in input_wait.row(step).items()})
            progress.input_wait = row["train/input_wait"]
            writer.write_scalars(step, row)
        window = fresh_window()

    def run_eval(step: int, final: bool) -> dict[str, Any]:
        """Eval metrics, then the evaluators due at this step; written and returned."""
        full, first = evaluate(config, task, state, eval_fn, mesh)
        metrics = _scalars(full)
        if metrics:
            writer.write_scalars(step, metrics)
            _log_line("eval", step, metrics)
        due = [e for e in evaluators if e.due(step, final)]
        if first is not None and due:
            ctx = EvalContext(variables=jax.device_get(trainer.eval_variables(state)),
                              metrics=full, batch=first, step=step, final=final,
                              workdir=workdir, eval_batches=lambda: eval_split(config, task))
            for evaluator in due:
                report = evaluator(ctx)
                write_report(report, step, final, workdir, writer)
                if report.scalars:  # scores computed on the host (a Fréchet distance, AP)
                    extra = {f"eval/{k}": float(v) for k, v in report.scalars.items()}
                    _log_line(f"eval {evaluator.name}", step, extra)
                    metrics = {**metrics, **extra}
        writer.flush()
        return metrics

    # chunks of steps (one step each unless config.steps_per_call > 1), each made ready for
    # the step (placed on the devices; on one CPU device, left to the step's call) by the
    # prefetch thread: two ahead, or for small batches, read in blocks, two blocks and one
    # more (`block_size`); the thread refills once half is left, so a block's read overlaps
    # the steps of the one before
    block = block_size(batch_bytes(example_batch) // pcount)
    batches = Prefetcher(ChunkedBatches(train_iter, chunk_lengths(start, config)),
                         lambda c: (c[0], mesh_lib.to_step_input(c[1], mesh,
                                                                 stacked=c[0] > 1)),
                         size=1 + (2 * block if block > 1 else 1))
    closers.append(batches.close)
    in_flight: collections.deque[jax.Array] = collections.deque()
    input_wait = InputWait(config.dataset.num_workers, lambda: batches.busy_seconds)
    # the intervals read once: a ConfigDict attribute costs about 1.5 µs, five a step
    total, log_every = int(config.num_train_steps), int(config.log_every_steps)
    eval_every, save_every = int(config.eval_every_steps), int(config.checkpoint_every_steps)
    step = start
    try:
        while step < total:
            length, batch = input_wait.next(batches)
            state, window, ticket = executable(length)(state, batch, window)
            step += length
            in_flight.append(ticket)
            if len(in_flight) > RUN_AHEAD:  # a SIGTERM waits for at most RUN_AHEAD queued calls
                in_flight.popleft().block_until_ready()
            stop = preempted.flag if pcount == 1 else any_process(preempted.flag, step, log_every)
            last = step == total
            evaluate_now = step % eval_every == 0 and not last
            save_now = step % save_every == 0 or last or stop
            if step % log_every == 0 or evaluate_now or save_now:
                drain(step)  # the only host reads of the loop: no other step waits
            progress.update(step, last_loss)
            if evaluate_now:
                run_eval(step, final=False)
            if save_now:
                ckpt.save(step, state, batches, force=True, loop_state=current_loop_state())
            if stop:
                log.warning("stopped by SIGTERM after step %d; checkpoint saved", step)
                return {"preempted": True, "step": step}
        for ticket in in_flight:  # the training time ends with the last step's result
            ticket.block_until_ready()
        train_rate = progress.steps_per_sec(step) if step > start else None
        final_metrics = run_eval(config.num_train_steps, final=True)
    except Exception as e:
        if not hasattr(e, "dl_arch_step"):
            try:
                e.dl_arch_step = step  # launch.py writes it into error.txt
            except AttributeError:
                pass
        raise
    _close_all(closers, quiet=False)  # the last checkpoint is complete before the summary

    summary = {
        **{k: v for k, v in final_metrics.items() if np.ndim(v) == 0},
        "num_params": int(sum(np.prod(x.shape) for x in jax.tree_util.tree_leaves(state.params))),
        "flops_per_step": flops,
        "steps_per_sec": train_rate,  # the steps' own rate: no final evaluation, no closing
        "wall_time_s": time.time() - t_start,
        "peak_memory_bytes": peak_memory_bytes(),
        "num_devices": jax.device_count(),
        "completed": True,
    }
    if jax.process_index() == 0:
        with open(os.path.join(workdir, "summary.json"), "w") as f:
            json.dump({k: (float(v) if isinstance(v, np.floating) else v)
                       for k, v in summary.items()}, f, indent=2)
    return summary


def restore_for_inference(config: ml_collections.ConfigDict, workdir: str
                          ) -> tuple[Task, dict[str, Any]]:
    """(task, variables) of the newest checkpoint in `workdir`, e.g. for `--sample` (the
    parameter average when the run kept one and `config.eval_with_ema`). A workdir without
    a checkpoint gives the weights of `config.init_from='hf:<folder>'` as imported, so an
    imported model samples before (or without) any fine-tuning."""
    from dl_arch.train.checkpoints import restore_raw_state

    task = build_task(config)
    config = resolve_config(config)
    ckpt_dir = os.path.join(workdir, "checkpoints")
    if not os.path.isdir(ckpt_dir) or not any(d.isdigit() for d in os.listdir(ckpt_dir)):
        if config.init_from.startswith("hf:"):
            from dl_arch.interop.huggingface import load_for_init_from

            log.info("--workdir=%s holds no checkpoint: the weights of config.init_from=%s",
                     workdir, config.init_from)
            return task, {"params": load_for_init_from(config.init_from, config.model)}
        raise ConfigError(f"--workdir={workdir} holds no checkpoint to sample from; train first "
                          f"with the same --config and --workdir (or set config.init_from="
                          f"hf:<folder> to sample an imported model)")
    raw = restore_raw_state(workdir)
    averaged = config.eval_with_ema and raw.get("ema") is not None
    return task, {"params": raw["ema"] if averaged else raw["params"],
                  **(raw.get("mutable") or {})}
