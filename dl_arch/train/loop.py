"""The one training loop: every model family runs through `train_and_evaluate`.

Order of a run: resolve the config -> lock the workdir -> mesh -> the `Trainer` (task,
optimisers, data, state shapes) -> state (restored from the newest checkpoint that
restores, else initialised into its sharding, then `init_from`) -> compile the step once
-> loop {step; log; evaluate; checkpoint} -> final evaluation, report, summary.
Metrics of step t are pulled to the host after step t+1 is dispatched, so logging never
stalls the device; a NaN/Inf loss, or one grown past `config.divergence_factor` times its
first value, stops the run (`LossDiverged`) before any checkpoint holds it. Each
checkpoint also holds the running mean of the train metrics since the last log line, and
a resume drops the metrics rows past its step: a killed-and-resumed run logs the same
rows as an uninterrupted one.
"""

from __future__ import annotations

import json
import logging
import math
import os
import signal
import time
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from dl_arch.config.errors import ConfigError, LossDiverged
from dl_arch.config.resolve import resolve_config
from dl_arch.data.pipeline import eval_batches
from dl_arch.tasks.base import Task
from dl_arch.train import mesh as mesh_lib
from dl_arch.train.checkpoints import Checkpointer
from dl_arch.train.progress import Progress
from dl_arch.train.state import TrainState
from dl_arch.train.summary import compiled_flops, format_table, param_table, peak_memory_bytes
from dl_arch.train.trainer import Trainer, build_task
from dl_arch.train.workdir_lock import WorkdirLock
from dl_arch.train.writers import MetricWriter, truncate_metrics

log = logging.getLogger("dl_arch")


class Preempted:
    """Set by SIGTERM; the loop saves at the next step boundary and exits cleanly."""

    def __init__(self) -> None:
        self.flag = False
        self._previous = None

    def __enter__(self) -> Preempted:
        try:
            self._previous = signal.signal(signal.SIGTERM, self._handle)
        except ValueError:  # not the main thread: no signal handling
            self._previous = None
        return self

    def _handle(self, signum: int, frame: Any) -> None:
        log.warning("SIGTERM received: saving a checkpoint at the next step boundary")
        self.flag = True

    def __exit__(self, *exc: Any) -> None:
        if self._previous is not None:
            signal.signal(signal.SIGTERM, self._previous)


def save_config(config: ml_collections.ConfigDict, workdir: str) -> None:
    if jax.process_index() == 0:
        with open(os.path.join(workdir, "config.json"), "w") as f:
            f.write(config.to_json_best_effort(indent=2, sort_keys=True))


def config_changes(old: Any, new: Any, prefix: str = "") -> list[str]:
    """'field: old -> new' for every leaf that differs between two JSON-like config dicts.

    A resumed run whose config changed (a new default, a forgotten override) trains on from
    the checkpoint with the new values; listing them makes that visible."""
    if not (isinstance(old, dict) and isinstance(new, dict)):
        return [] if old == new else [f"{prefix}: {old!r} -> {new!r}"]
    changes = []
    for key in sorted(set(old) | set(new)):
        changes += config_changes(old.get(key, "<absent>"), new.get(key, "<absent>"),
                                  f"{prefix}.{key}" if prefix else key)
    return changes


def _warn_of_config_changes(config: ml_collections.ConfigDict, workdir: str) -> None:
    """Logs the fields that differ from the resumed run's config.json (num_train_steps aside:
    raising it is how a finished run is continued)."""
    path = os.path.join(workdir, "config.json")
    if not os.path.exists(path):
        return
    with open(path) as f:
        old = json.load(f)
    new = json.loads(config.to_json_best_effort())
    changed = [c for c in config_changes(old, new) if not c.startswith("num_train_steps:")]
    if changed:
        log.warning("resuming with %d config field(s) changed since %s: %s", len(changed), path,
                    "; ".join(changed))


class _Averager:
    """Running mean of per-step train metrics between two log lines."""

    def __init__(self) -> None:
        self.sums: dict[str, float] = {}
        self.n = 0

    def add(self, metrics: dict[str, Any]) -> None:
        for k, v in metrics.items():
            self.sums[k] = self.sums.get(k, 0.0) + float(v)
        self.n += 1

    def pop(self) -> dict[str, float]:
        out = {k: v / max(self.n, 1) for k, v in self.sums.items()}
        self.sums, self.n = {}, 0
        return out

    def state(self) -> dict[str, Any]:
        """Sums and count as JSON, saved in each checkpoint so a resume logs the same means."""
        return {"sums": dict(self.sums), "n": self.n}

    @classmethod
    def from_state(cls, state: dict[str, Any] | None) -> _Averager:
        averager = cls()
        if state:
            averager.sums = {k: float(v) for k, v in state["sums"].items()}
            averager.n = int(state["n"])
        return averager


def evaluate(config: ml_collections.ConfigDict, task: Task, state: TrainState, eval_fn: Any,
             mesh: Any) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """Metrics over the eval split (or its first `eval_max_batches` batches), and one batch."""
    totals, first = None, None
    eval_bs = config.eval_batch_size or config.batch_size
    for local in eval_batches(config.dataset, config.seed, eval_bs, task.preprocess,
                              jax.process_index(), jax.process_count(), config.eval_max_batches):
        first = first if first is not None else local
        out = eval_fn(state, mesh_lib.to_global(local, mesh))
        totals = out if totals is None else jax.tree_util.tree_map(jnp.add, totals, out)
    if totals is None:
        return {}, None
    totals = jax.device_get(totals)
    metrics = task.finalize_metrics({k: (np.asarray(s), np.asarray(c)) for k, (s, c) in totals.items()})
    return {f"eval/{k}": v for k, v in metrics.items()}, first


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


def _stop_requested(preempted: Preempted, pcount: int) -> bool:
    """Whether SIGTERM arrived (on any process), checked at a point every process reaches."""
    return preempted.flag if pcount == 1 else _any_process(preempted.flag, 0, 1)


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
    train_iter = iter(trainer.train_dataset())
    example_batch = trainer.first_batch()
    abstract_sharded = trainer.abstract_state(example_batch)
    state_sharding = trainer.state_sharding(abstract_sharded)

    ckpt = Checkpointer(workdir, config.max_checkpoints_to_keep)
    closers.append(ckpt.close)
    restored = ckpt.restore(abstract_sharded, train_iter)
    loop_state: dict[str, Any] = {}
    if restored is not None:
        state, start, loop_state = restored
        loop_state = loop_state or {}
        log.info("resumed from checkpoint step %d in %s", start, ckpt.directory)
        _warn_of_config_changes(config, workdir)
        summary_path = os.path.join(workdir, "summary.json")
        if start >= config.num_train_steps and os.path.exists(summary_path):
            # nothing runs, so config.json keeps the config the run was made with
            log.info("run already complete (%s)", summary_path)
            with open(summary_path) as f:
                return json.load(f)
    else:
        start = 0
    if _stop_requested(preempted, pcount):
        log.warning("stopped by SIGTERM before the first step; nothing saved")
        return {"preempted": True, "step": start}
    save_config(config, workdir)
    if restored is None:
        state = trainer.init_state(example_batch)

    log.info("model parameters:\n%s", format_table(param_table(state.params)))
    compiled = trainer.train_step(state_sharding).lower(state, example_batch).compile()
    flops = compiled_flops(compiled)
    log.info("FLOPs per train step (XLA cost analysis): %s",
             f"{flops:.4g}" if flops else "not reported by this backend")
    eval_fn = trainer.eval_step()
    if _stop_requested(preempted, pcount):
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
    averager = _Averager.from_state(loop_state.get("averager"))
    first_losses: dict[str, float] = dict(loop_state.get("first_losses") or {})
    final_metrics: dict[str, Any] = {}
    pending: tuple[int, Any] | None = None

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

    def drain() -> None:
        """Pulls the pending step's metrics to the host: NaN and divergence checks, logging."""
        nonlocal pending
        if pending is None:
            return
        step, metrics = pending
        pending = None
        metrics = jax.device_get(metrics)
        losses = {k: float(v) for k, v in metrics.items() if k.endswith("loss")}
        bad = {k: v for k, v in losses.items() if not math.isfinite(v)}
        if bad:
            raise diverged(f"{', '.join(f'{k}={v}' for k, v in bad.items())} at step {step}", step)
        for k, v in losses.items():
            first_losses.setdefault(k, v)
        factor = config.divergence_factor
        grown = {k: v for k, v in losses.items()
                 if factor > 0 and first_losses[k] != 0 and abs(v) > factor * abs(first_losses[k])}
        if grown:
            k, v = next(iter(grown.items()))
            raise diverged(f"{k}={v:.4g} at step {step} is more than config.divergence_factor="
                           f"{factor:g} times its first value {first_losses[k]:.4g}", step,
                           " (config.divergence_factor=0 turns this check off)")
        last_loss = losses.get("loss", next(iter(losses.values()), None))
        averager.add(metrics)
        if step % config.log_every_steps == 0 or step == config.num_train_steps:
            row = {f"train/{k}": v for k, v in averager.pop().items()}
            row["train/steps_per_sec"] = progress.steps_per_sec(step)
            writer.write_scalars(step, row)
        progress.update(step, last_loss)

    def run_eval(step: int, final: bool) -> dict[str, Any]:
        metrics, first = evaluate(config, task, state, eval_fn, mesh)
        if metrics:
            writer.write_scalars(step, metrics)
            _log_line("eval", step, metrics)
        if first is not None and (final or config.report_on_eval):
            variables = jax.device_get({"params": state.params, **state.mutable})
            extra = task.host_report(variables, first, step, workdir, writer, final)
            if extra:  # end-of-run scores computed on the host (e.g. a Fréchet distance)
                extra = {f"eval/{k}": float(v) for k, v in extra.items()}
                writer.write_scalars(step, extra)
                _log_line("eval", step, extra)
                metrics = {**metrics, **extra}
        writer.flush()
        return metrics

    step = start
    try:
        for step in range(start + 1, config.num_train_steps + 1):
            batch = mesh_lib.to_global(next(train_iter), mesh)
            state, metrics = compiled(state, batch)
            drain()
            pending = (step, metrics)
            stop = preempted.flag if pcount == 1 else _any_process(preempted.flag, step,
                                                                   config.log_every_steps)
            last = step == config.num_train_steps
            if step % config.eval_every_steps == 0 and not last:
                drain()
                run_eval(step, final=False)
            if step % config.checkpoint_every_steps == 0 or last or stop:
                drain()
                ckpt.save(step, state, train_iter, force=True, loop_state=current_loop_state())
            if stop:
                drain()
                log.warning("stopped by SIGTERM after step %d; checkpoint saved", step)
                return {"preempted": True, "step": step}
        drain()
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
        "steps_per_sec": progress.steps_per_sec(config.num_train_steps) if step > start else None,
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


def _any_process(flag: bool, step: int, every: int) -> bool:
    """Multi-host: all processes agree to stop at the same step (checked every `every`)."""
    if step % every:
        return False
    from jax.experimental import multihost_utils

    return bool(np.any(multihost_utils.process_allgather(np.asarray(flag))))


def restore_for_inference(config: ml_collections.ConfigDict, workdir: str
                          ) -> tuple[Task, dict[str, Any]]:
    """(task, variables) of the newest checkpoint in `workdir`, e.g. for `--sample`."""
    from dl_arch.train.checkpoints import restore_raw_state

    task = build_task(config)
    ckpt_dir = os.path.join(workdir, "checkpoints")
    if not os.path.isdir(ckpt_dir) or not any(d.isdigit() for d in os.listdir(ckpt_dir)):
        raise ConfigError(f"--workdir={workdir} holds no checkpoint to sample from; train first "
                          f"with the same --config and --workdir")
    raw = restore_raw_state(workdir)
    return task, {"params": raw["params"], **(raw.get("mutable") or {})}
