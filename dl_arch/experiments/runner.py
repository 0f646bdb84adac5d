"""The sweep runner: an experiment file's grid -> one sub-workdir per (trial, seed) -> report.

An experiment is `experiments/<name>.py` with `get_experiment(arg: str | None) -> ConfigDict`:

- `base`: the config every trial starts from, a ConfigDict or a `'configs/x.py:opts'` string;
- `trials`: a list of `{name, overrides: {dotted.field: value}, config?: 'configs/y.py:opts',
  params?: {label: value}, depends_on?: [trial names]}`; `config` replaces `base` for that
  trial, `params` are extra columns for the report (e.g. `{'T': 100}`) that need not be
  config fields; `depends_on` trials finish first (pretraining before fine-tuning), and
  `{workdir}` / `{seed}` in string override values become the sweep's directory and the
  run's seed (`'init_from': '{workdir}/pretrain/seed_{seed}'`);
- `seeds`: the seeds every trial is repeated with (`config.seed`);
- `plots`, `metrics`, `probes`, `title`: what the report shows (see `dl_arch.experiments.report`).

These are declared in `EXPERIMENT_FIELDS`; an unknown one is an error. A run's config is
resolved like `launch.py --config`'s (declared defaults, the file, then the overrides and
the seed), and every run's is resolved before the first trains, so a mistake in any trial
stops the sweep at once in one line naming the experiment and trial.

Run `r = trials[i] x seeds[j]` is number `i * len(seeds) + j` and lives in
`<workdir>/<trial>/seed_<s>/`. A run whose `summary.json` says `completed` is skipped; any
other run is (re)started on its workdir, so the loop resumes it from its checkpoints; a
run that failed keeps its traceback in `<run>/error.txt`.
`--parallel=N` runs N runs at once as separate processes on this host, which die with the
sweep (even a SIGKILLed one); `--trial=K` runs only run K (or the runs of the trial named
K), for one element of a cluster job array.
Launched on several hosts (with `--parallel=1`), every process trains each run together,
as a single multi-host run does, and process 0 writes the files.
"""

from __future__ import annotations

import dataclasses
import datetime
import importlib
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import traceback
from collections.abc import Callable
from typing import Any

import ml_collections

from dl_arch.config.errors import ConfigError, LossDiverged
from dl_arch.config.fields import ANY, Field, Fields, suggest
from dl_arch.config.files import load_config_file, load_module, split_spec
from dl_arch.config.resolve import resolve_config

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DEFAULT_TRAINER = "dl_arch.train.loop:train_and_evaluate"
TRIAL_FILE = "trial.json"  # written by the runner: which trial/seed/overrides a run dir holds
SUMMARY_FILE = "summary.json"  # written by the loop at the end of a completed run
ERROR_FILE = "error.txt"  # the traceback of the last failed attempt
PROBE_FILE = "probes.json"  # the probes' scalars (dl_arch.experiments.probes)
FINISHED = ("done", "diverged")  # statuses a rerun skips
DIVERGED = (FloatingPointError, LossDiverged)  # a NaN or exploding loss: a result of the grid
_NAME_RE = re.compile(r"^[A-Za-z0-9_.=+-]+$")


# ----------------------------------------------------------------------------- loading

# The fields of an experiment file (its `get_experiment` result), with their defaults.
EXPERIMENT_FIELDS: Fields = {
    "title": Field("", "the report's title ('' = the experiment's file name)"),
    "base": Field(None, "the config every trial starts from: a ConfigDict or "
                        "'configs/x.py:opts' (None: every trial names its `config`)", kind=ANY),
    "trials": Field((), "[{name, overrides?, config?, params?, depends_on?}], at least one"),
    "seeds": Field((0,), "the seeds every trial is repeated with (config.seed)",
                   each=Field(0, "a seed")),
    "metrics": Field((), "the report's columns, 'metric:max|min|none'",
                     each=Field("", "a metric")),
    "derived": Field((), "metrics computed from each run's files ({name, kind, metric, ...})"),
    "plots": Field((), "the report's figures ({name, kind, x?, y?, group?, where?, ...})"),
    "probes": Field((), "post-run analyses by name (dl_arch.experiments.probes)",
                    each=Field("", "a probe name")),
    "trainer": Field(DEFAULT_TRAINER, "module:function that trains one run (config, workdir)"),
}
_SET_BY_LOADER = ("name", "spec", "description")  # added by load_experiment
TRIAL_KEYS = ("name", "overrides", "config", "params", "depends_on")


def resolve_path(path: str) -> str:
    """A file path as given, or relative to the repository root when not found as given."""
    if os.path.exists(path):
        return os.path.abspath(path)
    candidate = os.path.join(REPO_ROOT, path)
    if os.path.exists(candidate):
        return candidate
    raise ConfigError(f"file '{path}' not found (relative to {os.getcwd()} or {REPO_ROOT})")


def load_config(spec: str, flag: str = "--config") -> ml_collections.ConfigDict:
    """`configs/x.py[:opts]` (found from the working directory or the repository root) ->
    what its `get_config(opts)` returns, not yet resolved."""
    path, arg = split_spec(spec)
    located = resolve_path(path)
    return load_config_file(located if arg is None else f"{located}:{arg}", flag)


def as_list(value: Any, cast: Callable[[Any], Any] = lambda v: v) -> list[Any]:
    """An experiment option as a list: a tuple, one value, or 'a/b/c' (commas split options)."""
    if isinstance(value, (list, tuple)):
        items = list(value)
    elif isinstance(value, str):
        items = [v for v in value.split("/") if v]
    else:
        items = [value]
    return [cast(v) for v in items]


def _name_of(path: str) -> str:
    return os.path.splitext(os.path.basename(path))[0]


def load_experiment(spec: str) -> ml_collections.ConfigDict:
    """Loads and validates `experiments/x.py[:opts]`; adds `name`, `spec` and `description`."""
    path, arg = split_spec(spec)
    module = load_module(resolve_path(path), "--experiment")
    if not hasattr(module, "get_experiment"):
        raise ConfigError(f"--experiment: '{path}' has no get_experiment(arg) function")
    exp = module.get_experiment(arg)
    if not isinstance(exp, ml_collections.ConfigDict):
        exp = ml_collections.ConfigDict(exp)
    exp.name = _name_of(path)
    exp.spec = spec
    exp.description = (module.__doc__ or "").strip()
    validate_experiment(exp)
    return exp


def validate_experiment(exp: ml_collections.ConfigDict) -> None:
    """Fills the experiment's declared defaults and fails early, in one line naming the
    field, on an unknown field or a malformed grid, plot or probe list."""
    name = exp.name if "name" in exp else "?"
    where = f"experiment '{name}'"
    for key in exp:
        if key not in EXPERIMENT_FIELDS and key not in _SET_BY_LOADER:
            raise ConfigError(f"{where}: field '{key}' is unknown"
                              f"{suggest(key, list(EXPERIMENT_FIELDS))}; known: "
                              f"{', '.join(EXPERIMENT_FIELDS)}")
    for key, field in EXPERIMENT_FIELDS.items():
        if key not in exp:
            exp[key] = field.default
            continue
        try:
            field.check(exp[key], key)
        except ConfigError as e:
            raise ConfigError(f"{where}: {str(e).removeprefix('config.')}") from None
    if not exp.title:
        exp.title = name
    if not exp.trials:
        raise ConfigError(f"{where}: `trials` is empty; add at least one trial")
    if not exp.seeds:
        raise ConfigError(f"{where}: `seeds` is empty; use e.g. [0]")
    plot_keys = {"metric": ("name", "x", "y"), "bar": ("name", "y"), "curves": ("name", "y"),
                 "decision_boundary": ("name",), "layer_grad_norms": ("name",),
                 "grad_through_time": ("name",)}
    for i, plot in enumerate(exp.plots):
        kind = plot.get("kind", "metric")
        if kind not in plot_keys:
            raise ConfigError(f"{where}: plots[{i}].kind '{kind}' is unknown; use one of "
                              f"{', '.join(plot_keys)}")
        missing = [k for k in plot_keys[kind] if k not in plot]
        if missing or not _NAME_RE.match(str(plot.get("name", ""))):
            raise ConfigError(f"{where}: plots[{i}] ({kind}) needs "
                              f"{', '.join(plot_keys[kind])} and a file-safe name; missing "
                              f"{missing or ['a valid name']}")
    if exp.probes:
        from dl_arch.experiments.probes import PROBES

        unknown = [p for p in exp.probes if p not in PROBES]
        if unknown:
            raise ConfigError(f"{where}: probes {unknown} are unknown; known: "
                              f"{', '.join(PROBES)}")
    seen = set()
    for i, t in enumerate(exp.trials):
        trial = t.get("name", "")
        if not trial or not _NAME_RE.match(trial):
            raise ConfigError(f"{where}: trials[{i}].name '{trial}' must be non-empty and use "
                              "only letters, digits and _.=+-")
        if trial in seen:
            raise ConfigError(f"{where}: trial name '{trial}' appears twice")
        seen.add(trial)
        unknown = set(t) - set(TRIAL_KEYS)
        if unknown:
            raise ConfigError(f"{where}: trials[{i}] has unknown keys {sorted(unknown)}; "
                              f"allowed: {', '.join(TRIAL_KEYS)}")
        for dep in t.get("depends_on", ()) or ():
            if dep not in seen:
                raise ConfigError(f"{where}: trial '{trial}' depends_on '{dep}', which is not "
                                  "an earlier trial; list it before")
        if exp.base is None and not t.get("config"):
            raise ConfigError(f"{where}: trial '{trial}' has no `config` and the experiment "
                              "has no `base`; set one of them")


# ----------------------------------------------------------------------------- the grid


@dataclasses.dataclass(frozen=True)
class Run:
    """One (trial, seed) pair of an experiment and the directory it trains in."""

    index: int
    trial: str
    seed: int
    overrides: dict[str, Any]
    params: dict[str, Any]
    config_spec: str | None  # the trial's own config file, or None for the experiment base
    workdir: str
    depends_on: tuple[str, ...] = ()
    needs_probes: bool = False  # finished only once the experiment's probes have run

    def identity(self) -> dict[str, Any]:
        """What must match for an existing run dir to count as this run (JSON-ready).

        The sweep directory is written as `{workdir}`, so a moved sweep still resumes.
        """
        sweep = os.path.abspath(os.path.dirname(os.path.dirname(self.workdir)))
        text = json.dumps({
            "trial": self.trial,
            "seed": self.seed,
            "overrides": self.overrides,
            "config": self.config_spec,
        }, default=str)
        return json.loads(text.replace(json.dumps(sweep)[1:-1], "{workdir}"))


def _substitute(value: Any, workdir: str, seed: int) -> Any:
    if isinstance(value, str) and ("{workdir}" in value or "{seed}" in value):
        return value.replace("{workdir}", os.path.abspath(workdir)).replace("{seed}", str(seed))
    return value


def expand_runs(exp: ml_collections.ConfigDict, workdir: str) -> list[Run]:
    """Trials x seeds, in order: run `i * len(seeds) + j`."""
    runs = []
    for t in exp.trials:
        for seed in exp.seeds:
            seed = int(seed)
            overrides = {k: _substitute(v, workdir, seed)
                         for k, v in dict(t.get("overrides", {}) or {}).items()}
            runs.append(Run(
                index=len(runs),
                trial=t["name"],
                seed=seed,
                overrides=overrides,
                params=dict(t.get("params", {}) or {}),
                config_spec=t.get("config"),
                workdir=os.path.join(workdir, t["name"], f"seed_{seed}"),
                depends_on=tuple(t.get("depends_on", ()) or ()),
                needs_probes=bool(exp.get("probes")),
            ))
    return runs


def dependencies_done(run: Run, runs: list[Run]) -> bool:
    """True when every run of every trial `run` depends on has finished."""
    return all(run_status(r) == "done" for r in runs if r.trial in run.depends_on)


def build_run_config(exp: ml_collections.ConfigDict, run: Run) -> ml_collections.ConfigDict:
    """The resolved, locked config of one run: base or trial config, its overrides, its seed.

    Resolution is the one `launch.py --config` uses: a whole section or a name given as an
    override (`{"model": {...}}`, `"dataset.name"`) applies first, then the fields.
    """
    spec = run.config_spec or (exp.base if isinstance(exp.base, str) else None)
    where = f"experiment '{exp.name}', trial '{run.trial}'"
    if spec:
        raw, source = load_config(spec, flag=f"{where}: config"), spec
    else:
        raw, source = exp.base, f"{where}: base"
    overrides = list(run.overrides.items()) + [("seed", run.seed)]
    try:
        return resolve_config(raw, overrides, source=source,
                              override_source=f"in the overrides of {where}")
    except ConfigError as e:
        message = str(e)
        raise ConfigError(message if message.startswith(where) else f"{where}: {message}"
                          ) from None


# ----------------------------------------------------------------------------- run state


def read_json(path: str) -> Any:
    """The JSON content of `path`, or None when it is missing or unreadable."""
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def run_status(run: Run) -> str:
    """'done', 'diverged' (NaN loss: a result, not rerun), 'failed', 'partial' or 'new'."""
    summary = read_json(os.path.join(run.workdir, SUMMARY_FILE))
    probed = not run.needs_probes or os.path.exists(os.path.join(run.workdir, PROBE_FILE))
    if summary and summary.get("completed", False) and probed:
        return "done"
    error_path = os.path.join(run.workdir, ERROR_FILE)
    if os.path.exists(error_path):
        with open(error_path) as f:
            text = f.read()
        return "diverged" if any(e.__name__ in text for e in DIVERGED) else "failed"
    if os.path.isdir(run.workdir) and os.listdir(run.workdir):
        return "partial"
    return "new"


def check_identity(run: Run) -> None:
    """Refuses to resume a run dir that holds a different trial (a changed grid)."""
    recorded = read_json(os.path.join(run.workdir, TRIAL_FILE))
    if recorded is not None and recorded != run.identity():
        raise ConfigError(
            f"{run.workdir} holds a different run ({recorded}) than the grid now asks for "
            f"({run.identity()}); use a new --workdir or delete that directory"
        )


class Preempted(Exception):
    """The sweep got SIGTERM: runs saved checkpoints; the same command resumes them."""


def _raise_preempted(signum: int, frame: Any) -> None:
    raise Preempted(f"signal {signum}")


def _import_trainer(dotted: str) -> Callable[[ml_collections.ConfigDict, str], dict]:
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
        metrics = _import_trainer(exp.trainer)(config, run.workdir) or {}
        if metrics.get("preempted"):
            raise Preempted(f"{run.workdir} stopped at step {metrics.get('step')} (SIGTERM)")
        if exp.probes and main:
            from dl_arch.experiments import probes

            probes.run_probes(list(exp.probes), config, run.workdir)
    except Preempted:
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
    summary = read_json(os.path.join(run.workdir, SUMMARY_FILE)) or {}
    from dl_arch.experiments.report import flatten

    flat = flatten(summary)
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
        except (KeyboardInterrupt, Preempted):
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


def select_runs(runs: list[Run], trial: int | str | None) -> list[Run]:
    """All runs (trial None or -1), run number K, or every seed of the trial named K."""
    if trial is None or trial == "" or trial == -1 or trial == "-1":
        return runs
    if isinstance(trial, int) or str(trial).isdigit():
        k = int(trial)
        if not 0 <= k < len(runs):
            raise ConfigError(
                f"--trial={k} is out of range: this experiment has runs 0..{len(runs) - 1} "
                "(trials x seeds); e.g. a SLURM array --array=0-" + str(len(runs) - 1)
            )
        return [runs[k]]
    chosen = [r for r in runs if r.trial == trial]
    if not chosen:
        names = ", ".join(dict.fromkeys(r.trial for r in runs))
        raise ConfigError(f"--trial='{trial}' names no trial; known: {names}")
    return chosen


def run_experiment(path_with_options: str, workdir: str, parallel: int = 1,
                   trial: int | str | None = None, report_only: bool = False) -> str:
    """Runs an experiment's grid into `workdir` and writes its report; returns report.md's path.

    Finished runs are skipped and interrupted ones resumed; with `trial` only that run is
    trained and no report is written (run again with `report_only` once all have finished).
    """
    from dl_arch.experiments import report

    if not workdir:
        raise ConfigError("--workdir is empty; give the directory the sweep writes to")
    if parallel < 1:
        raise ConfigError(f"--parallel={parallel}; use 1 (sequential) or more processes")
    exp = load_experiment(path_with_options)
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
        log(f"{len(chosen) - len(todo)} of the {len(chosen)} selected runs already finished")
        if single and todo and not dependencies_done(todo[0], runs):
            raise ConfigError(
                f"--trial={trial}: {todo[0].trial} depends on {', '.join(todo[0].depends_on)}, "
                "whose runs have not all finished; run those first (SLURM: a second array "
                "with --dependency=afterok)"
            )
        previous = signal.signal(signal.SIGTERM, _raise_preempted) if parallel > 1 else None
        try:
            if parallel > 1 and len(todo) > 1:
                failed = _run_parallel(exp, workdir, todo, runs, parallel, log)
            else:
                failed = _run_sequential(exp, todo, runs, log)
        except Preempted as e:
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
    path = report.write_report(exp, runs, workdir, command=command)
    print(report.summary_text(exp, runs), flush=True)
    log(f"report: {path}")
    if failed:
        raise RuntimeError(
            f"{len(failed)} run(s) failed (see error.txt / stdout.log in each): "
            + ", ".join(r.workdir for r in failed)
        )
    return path
