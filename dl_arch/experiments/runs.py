"""The runs of an experiment: its grid of (trial, seed) pairs and the files each run leaves.

Run `r = trials[i] x seeds[j]` is number `i * len(seeds) + j` and lives in
`<workdir>/<trial>/seed_<s>/`. What a run dir holds says where the run stands: the loop's
`summary.json` (`completed`), the probes' `probes.json`, the runner's `error.txt` and
`trial.json`. The runner, the report and the probes all read runs through this module,
which imports nothing of theirs.
"""

from __future__ import annotations

import dataclasses
import json
import os
from typing import Any

import ml_collections

from dl_arch.config.errors import ConfigError, LossDiverged

TRIAL_FILE = "trial.json"  # written by the runner: which trial/seed/overrides a run dir holds
SUMMARY_FILE = "summary.json"  # written by the loop at the end of a completed run
METRICS_FILE = "metrics.jsonl"  # written by the loop: one JSON object per logged step
ERROR_FILE = "error.txt"  # the traceback of the last failed attempt
PROBE_FILE = "probes.json"  # the probes' scalars (dl_arch.experiments.probes)
FINISHED = ("done", "diverged")  # statuses a rerun skips
DIVERGED = (FloatingPointError, LossDiverged)  # a NaN or exploding loss: a result of the grid
# the cost figures the loop writes into summary.json (report columns, never grid values)
COST_COLUMNS = ("num_params", "flops_per_step", "steps_per_sec", "wall_time_s",
                "peak_memory_bytes")


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


# ----------------------------------------------------------------------------- the grid


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


def dependencies_done(run: Run, runs: list[Run]) -> bool:
    """True when every run of every trial `run` depends on has finished."""
    return all(run_status(r) == "done" for r in runs if r.trial in run.depends_on)


# ----------------------------------------------------------------------------- run files


def read_json(path: str) -> Any:
    """The JSON content of `path`, or None when it is missing or unreadable."""
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def read_jsonl(path: str) -> list[dict[str, Any]]:
    """Every JSON object of a `metrics.jsonl` (a torn last line from a kill is dropped)."""
    rows = []
    try:
        with open(path) as f:
            for line in f:
                line = line.strip()
                if not line:
                    continue
                try:
                    rows.append(json.loads(line))
                except ValueError:
                    continue
    except OSError:
        return []
    return rows


def flatten(tree: Any, prefix: str = "") -> dict[str, Any]:
    """{'a': {'b': 1}} -> {'a/b': 1}; keeps scalars (numbers, strings, bools, None) only."""
    if isinstance(tree, dict):
        out: dict[str, Any] = {}
        for k, v in tree.items():
            out.update(flatten(v, f"{prefix}{k}/"))
        return out
    if isinstance(tree, (int, float, str, bool)) or tree is None:
        return {prefix.rstrip("/"): tree}
    return {}


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
