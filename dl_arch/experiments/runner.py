"""The sweep runner: an experiment's grid -> one sub-workdir per (trial, seed) -> report.

The experiment file is loaded by `dl_arch.experiments.study`, its runs and their dirs are
`dl_arch.experiments.runs`. Every run's config is resolved before the first trains, so a
mistake in any trial stops the sweep at once. A run whose `summary.json` says `completed`
is skipped; any other run is (re)started on its workdir, so the loop resumes it from its
checkpoints; a run that failed keeps its traceback in `<run>/error.txt`.
`--parallel=N` runs N runs at once as separate processes on this host, which die with the
sweep (even a SIGKILLed one; without the flag, the experiment's `default_parallel`);
`--trial=K` runs only run K (or the runs of the trial named K), for one element of a cluster
job array. The report is the generic `report.md`, or the page the experiment's `page` writes.
Launched on several hosts (with `--parallel=1`), every process trains each run together,
as a single multi-host run does, and process 0 writes the files.
"""

from __future__ import annotations

import datetime
import importlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import traceback
from collections.abc import Callable
from typing import Any

import ml_collections

from dl_arch.config.errors import ConfigError
from dl_arch.experiments import report
from dl_arch.experiments.runs import (
    DIVERGED,
    ERROR_FILE,
    FINISHED,
    SUMMARY_FILE,
    TRIAL_FILE,
    Run,
    check_identity,
    dependencies_done,
    expand_runs,
    flatten,
    read_json,
    run_status,
    select_runs,
)
from dl_arch.experiments.study import REPO_ROOT, build_run_config, load_experiment


class SweepInterrupted(Exception):
    """The sweep got SIGTERM: runs saved checkpoints; the same command resumes them."""


def _raise_interrupted(signum: int, frame: Any) -> None:
    raise SweepInterrupted(f"signal {signum}")


def _import_function(dotted: str) -> Callable[..., Any]:
    """`package.module:function` -> the function (an experiment's trainer or page)."""
    module, _, attr = dotted.partition(":")
    return getattr(importlib.import_module(module), attr)


def is_main_process() -> bool:
    """Process 0 of a multi-host run writes the sweep's files; every process trains."""
    jax = sys.modules.get("jax")  # multi-host start-up imports jax; without it, one process
    return jax is None or jax.process_index() == 0


def write_error(run: Run, exc: BaseException, spec: str) -> str:
    """Writes `<run>/error.txt`: when, where, which trial, the step, and the traceback."""
    path = os.path.join(run.workdir, ERROR_FILE)
    os.makedirs(run.workdir, exist_ok=True)
    with open(path, "w") as f:
        f.write(f"time: {datetime.datetime.now().isoformat(timespec='seconds')}\n"
                f"host: {socket.gethostname()} pid {os.getpid()}\n"
                f"experiment: {spec}\n"
                f"trial: {run.trial} seed {run.seed} (run {run.index})\n"
                f"config: {run.config_spec or 'the experiment base'}\n"
                f"step: {getattr(exc, 'dl_arch_step', 'before the first step')}\n"
                f"error: {type(exc).__name__}: {exc}\n\n")
        f.write("".join(traceback.format_exception(exc)))
    return path


def execute_run(exp: ml_collections.ConfigDict, run: Run) -> dict[str, Any]:
    """Trains one run in this process (resuming it), then runs the experiment's probes.

    Any failure but a preemption leaves `<run>/error.txt` with its traceback.
    """
    check_identity(run)
    main = is_main_process()
    error_path = os.path.join(run.workdir, ERROR_FILE)
    if main:
        os.makedirs(run.workdir, exist_ok=True)
        with open(os.path.join(run.workdir, TRIAL_FILE), "w") as f:
            json.dump(run.identity(), f, indent=1)
        if os.path.exists(error_path):
            os.remove(error_path)
    try:
        config = build_run_config(exp, run)
        metrics = _import_function(exp.trainer)(config, run.workdir) or {}
        if metrics.get("preempted"):
            raise SweepInterrupted(f"{run.workdir} stopped at step {metrics.get('step')} "
                                   "(SIGTERM)")
        if exp.probes and main:
            from dl_arch.experiments import probes  # deferred: it imports jax

            probes.run_probes(list(exp.probes), config, run.workdir)
    except SweepInterrupted:
        raise
    except Exception as e:
        if main:
            write_error(run, e, exp.spec)
        raise
    return metrics


def _child_command(exp: ml_collections.ConfigDict, workdir: str, run: Run) -> list[str]:
    return [sys.executable, "-m", "dl_arch.experiments.run_trial",
            f"--experiment={exp.spec}", f"--workdir={workdir}", f"--index={run.index}",
            f"--parent_pid={os.getpid()}"]


def _short_metrics(run: Run) -> str:
    flat = flatten(read_json(os.path.join(run.workdir, SUMMARY_FILE)) or {})
    keys = [k for k in sorted(flat) if k.startswith("eval/")][:3]
    return " ".join(f"{k}={flat[k]:.4g}" for k in keys if isinstance(flat[k], (int, float)))


def _run_sequential(exp, runs: list[Run], all_runs: list[Run],
                    log: Callable[[str], None]) -> list[Run]:
    failed = []
    for n, run in enumerate(runs):
        if not dependencies_done(run, all_runs):
            failed.append(run)
            log(f"[{n + 1}/{len(runs)}] {run.trial} seed={run.seed}: NOT RUN, it depends on "
                f"{', '.join(run.depends_on)}, which did not finish")
            continue
        log(f"[{n + 1}/{len(runs)}] {run.trial} seed={run.seed}: {run_status(run)} -> running "
            f"in {run.workdir}")
        t0 = time.time()
        try:
            execute_run(exp, run)
        except (KeyboardInterrupt, SweepInterrupted):
            raise
        except DIVERGED as e:  # a NaN or exploding loss is an outcome of the grid, not a bug
            log(f"[{n + 1}/{len(runs)}] {run.trial} seed={run.seed}: DIVERGED ({e})")
            continue
        except Exception as e:  # one failed trial must not stop the sweep
            failed.append(run)
            log(f"[{n + 1}/{len(runs)}] {run.trial} seed={run.seed}: FAILED ({type(e).__name__}: "
                f"{e}); traceback in {os.path.join(run.workdir, ERROR_FILE)}")
            continue
        log(f"[{n + 1}/{len(runs)}] {run.trial} seed={run.seed}: done in {time.time() - t0:.1f}s "
            f"{_short_metrics(run)}")
    return failed


def _run_parallel(exp, workdir: str, runs: list[Run], all_runs: list[Run], parallel: int,
                  log: Callable[[str], None]) -> list[Run]:
    pending = list(runs)
    active: dict[int, tuple[subprocess.Popen, Run, float, Any]] = {}
    failed = []
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [REPO_ROOT, env.get("PYTHONPATH", "")]))
    # N processes share one accelerator: each may take its share of memory, not 75% of it
    env.setdefault("XLA_PYTHON_CLIENT_MEM_FRACTION", f"{0.9 / parallel:.3f}")
    done_count = 0
    try:
        while pending or active:
            while len(active) < parallel:
                ready = [r for r in pending if dependencies_done(r, all_runs)]
                if not ready:
                    break
                run = ready[0]
                pending.remove(run)
                check_identity(run)  # fail in the parent, before starting anything
                os.makedirs(run.workdir, exist_ok=True)
                out = open(os.path.join(run.workdir, "stdout.log"), "a")
                proc = subprocess.Popen(_child_command(exp, workdir, run), stdout=out,
                                        stderr=subprocess.STDOUT, env=env, cwd=os.getcwd())
                active[proc.pid] = (proc, run, time.time(), out)
                log(f"started {run.trial} seed={run.seed} (pid {proc.pid}) in {run.workdir}")
            time.sleep(0.2)
            for pid, (proc, run, t0, out) in list(active.items()):
                if proc.poll() is None:
                    continue
                out.close()
                del active[pid]
                done_count += 1
                tag = f"[{done_count}/{len(runs)}] {run.trial} seed={run.seed}"
                if proc.returncode == 0:
                    log(f"{tag}: done in {time.time() - t0:.1f}s {_short_metrics(run)}")
                elif run_status(run) == "diverged":
                    log(f"{tag}: DIVERGED (NaN loss); see {os.path.join(run.workdir, ERROR_FILE)}")
                else:
                    failed.append(run)
                    error = os.path.join(run.workdir, ERROR_FILE)
                    log(f"{tag}: FAILED (exit {proc.returncode}); see "
                        + (f"{error} and " if os.path.exists(error) else "")
                        + os.path.join(run.workdir, "stdout.log"))
            if pending and not active and not any(dependencies_done(r, all_runs)
                                                  for r in pending):
                # what is left waits on runs that failed
                for run in pending:
                    log(f"{run.trial} seed={run.seed}: NOT RUN, it depends on "
                        f"{', '.join(run.depends_on)}, which did not finish")
                failed += pending
                pending = []
    finally:
        # interrupted (Ctrl-C, SIGTERM): our own children get SIGTERM, checkpoint and exit
        for proc, _, _, _out in active.values():
            proc.terminate()
        for proc, _, _, out in active.values():
            proc.wait()
            out.close()
    return failed


def run_experiment(path_with_options: str, workdir: str, parallel: int | None = 1,
                   trial: int | str | None = None, report_only: bool = False) -> str:
    """Runs an experiment's grid into `workdir` and writes its report; returns the report's
    path (report.md, or the experiment's own page).

    Finished runs are skipped and interrupted ones resumed; with `trial` only that run is
    trained and no report is written (run again with `report_only` once all have finished).
    `parallel=None` takes the experiment's `default_parallel`.
    """
    if not workdir:
        raise ConfigError("--workdir is empty; give the directory the sweep writes to")
    if parallel is not None and parallel < 1:
        raise ConfigError(f"--parallel={parallel}; use 1 (sequential) or more processes")
    exp = load_experiment(path_with_options)
    if parallel is None:
        parallel = int(exp.default_parallel)
    runs = expand_runs(exp, workdir)
    os.makedirs(workdir, exist_ok=True)
    log = lambda msg: print(f"[{exp.name}] {msg}", flush=True)
    log(f"{len(runs)} runs ({len(exp.trials)} trials x {len(exp.seeds)} seeds: run K is trial "
        f"K // {len(exp.seeds)}, seed number K % {len(exp.seeds)}) in {workdir}")
    failed: list[Run] = []
    single = trial is not None and str(trial) not in ("", "-1")
    if not report_only:
        chosen = select_runs(runs, trial)
        todo = [r for r in chosen if run_status(r) not in FINISHED]
        for r in todo:  # a changed grid or a config mistake fails before anything runs
            check_identity(r)
            build_run_config(exp, r)
        finished = len(chosen) - len(todo)
        if finished:
            log(f"reusing {finished} finished run(s) of {len(chosen)} from {workdir}; delete "
                f"a run's folder (or the whole folder) to rerun it")
        else:
            log(f"none of the {len(chosen)} selected runs has finished yet")
        if single and todo and not dependencies_done(todo[0], runs):
            raise ConfigError(
                f"--trial={trial}: {todo[0].trial} depends on {', '.join(todo[0].depends_on)}, "
                "whose runs have not all finished; run those first (SLURM: a second array "
                "with --dependency=afterok)"
            )
        previous = signal.signal(signal.SIGTERM, _raise_interrupted) if parallel > 1 else None
        try:
            if parallel > 1 and len(todo) > 1:
                failed = _run_parallel(exp, workdir, todo, runs, parallel, log)
            else:
                failed = _run_sequential(exp, todo, runs, log)
        except SweepInterrupted as e:
            log(f"preempted ({e}); finished runs are kept and interrupted ones checkpointed: "
                "run the same command again to resume")
            raise SystemExit(143) from e
        finally:
            if previous is not None:
                signal.signal(signal.SIGTERM, previous)
        if single:
            if failed:
                raise RuntimeError(f"run(s) failed: {', '.join(r.workdir for r in failed)}")
            log("trial finished; write the report with --report_only once every run is done")
            return os.path.join(workdir, "report.md")
    if parallel == 1 and not is_main_process():
        return os.path.join(workdir, "report.md")  # multi-host: process 0 writes the report
    command = f"python launch.py --experiment={path_with_options} --workdir={workdir}"
    command += f" --parallel={parallel}" if parallel > 1 else ""
    if exp.page:
        path, text = _import_function(exp.page)(exp, runs, workdir, command)
    else:
        path = report.write_report(exp, runs, workdir, command=command)
        text = report.summary_text(exp, runs)
    print(text, flush=True)
    log(f"report: {path}")
    if failed:
        raise RuntimeError(
            f"{len(failed)} run(s) failed (see error.txt / stdout.log in each): "
            + ", ".join(r.workdir for r in failed)
        )
    return path
