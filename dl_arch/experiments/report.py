"""The report of an experiment: `results.csv`, `report.md` and PNG plots, from the run dirs.

Everything is read back from files the loop wrote (`summary.json`, `metrics.jsonl`) and the
probes' outputs, so a report can be rebuilt at any time (`--report_only`), also from runs
finished on other machines.

Experiment fields read here:
- `metrics`: the table's metric columns, `'eval/accuracy'` or `'eval/accuracy:max'`
  (`:min`/`:max` says which direction is best, `:none` marks no best; guessed from the
  name if absent). A trial param `headline` (a metric name) adds the column
  `headline_value`, for tables of trials that report different metrics. Default:
  every `eval/*` metric, then parameters, FLOPs/step, steps/s, wall time and peak memory.
- `derived`: extra per-run metrics from `metrics.jsonl`: `{name, kind: 'first_step',
  metric, threshold, above: True}` (the first logged step where `metric` crosses
  `threshold`; empty if never: "steps to solve"), `{name, kind: 'best'|'last', metric}`,
  or `{name, kind: 'scale', metric, factor, power?}` (a column to a power, times a number
  or another column: images/s = steps/s x batch size; ms/step = 1000 x (steps/s)^-1).
- `plots`: a list of `{kind, name, y, x?, group?, panels?, where?, logx?, logy?, title?}`:
  `metric` (y vs a trial field or another column, one line per `group`, mean ± std over
  seeds; `ref_slopes: [1, 2]` adds dashed guides y ~ x^k on log-log axes), `bar` (y per
  trial), `curves` (y from `metrics.jsonl` against the step, one line per trial, mean
  over seeds); probe kinds (`decision_boundary`, `layer_grad_norms`,
  `grad_through_time`) are drawn from the probes' arrays. `where` keeps rows whose
  fields equal the given values (a list means any of them); `panels` makes one subplot per
  value of that field. Files are `<experiment>_<name>.png`, drawn by
  `dl_arch.experiments.plots`.
"""

from __future__ import annotations

import csv
import datetime
import math
import os
import platform
from collections.abc import Iterable
from typing import Any

import ml_collections

from dl_arch.config.errors import ConfigError
from dl_arch.experiments.plots import draw_plot
from dl_arch.experiments.runs import (
    COST_COLUMNS,
    ERROR_FILE,
    METRICS_FILE,
    PROBE_FILE,
    SUMMARY_FILE,
    Run,
    flatten,
    read_json,
    read_jsonl,
    run_status,
)
from dl_arch.experiments.stats import fmt, mean_std

_MAX_WORDS = ("accuracy", "acc", "per_sec", "psnr", "bleu", "map", "iou", "f1", "auc", "ssim")
_MIN_WORDS = ("loss", "error", "perplexity", "ppl", "time", "params", "flops", "memory", "bytes",
              "steps_to", "nll", "fid", "mse", "bpd")


def goal_of(metric: str) -> str:
    """'max' or 'min': which direction is better for a metric, judged from its name."""
    name = metric.lower().rsplit("/", 1)[-1]
    if any(w in name for w in _MAX_WORDS):
        return "max"
    if any(w in name for w in _MIN_WORDS):
        return "min"
    return "max"


def _derived_value(spec: dict[str, Any], log: list[dict[str, Any]]) -> Any:
    metric = spec["metric"]
    points = [(r["step"], r[metric]) for r in log if metric in r and "step" in r
              and isinstance(r[metric], (int, float))]
    kind = spec.get("kind", "first_step")
    if not points:
        return None
    if kind == "first_step":
        above = spec.get("above", True)
        for step, v in sorted(points):
            if (v >= spec["threshold"]) if above else (v <= spec["threshold"]):
                return step
        return None
    if kind == "best":
        values = [v for _, v in points]
        return max(values) if goal_of(metric) == "max" else min(values)
    if kind == "last":
        return sorted(points)[-1][1]
    raise ConfigError(f"derived '{spec.get('name')}': unknown kind '{kind}'; use "
                      "first_step, best, last or scale")


def field_names(runs: Iterable[Run]) -> list[str]:
    """The trial fields (override keys, then params keys) in order of first appearance."""
    names: dict[str, None] = {}
    for r in runs:
        for k in r.params:
            names.setdefault(k, None)
        for k in r.overrides:
            if not isinstance(r.overrides[k], dict):
                names.setdefault(k, None)
    return list(names)


def collect_rows(exp: ml_collections.ConfigDict, runs: list[Run]) -> list[dict[str, Any]]:
    """One dict per run: trial, seed, status, fields, summary metrics, derived, probes."""
    fields = field_names(runs)
    rows = []
    for run in runs:
        row: dict[str, Any] = {"trial": run.trial, "seed": run.seed, "status": run_status(run),
                               "workdir": run.workdir}
        for f in fields:
            row[f] = run.params.get(f, run.overrides.get(f))
        summary = read_json(os.path.join(run.workdir, SUMMARY_FILE)) or {}
        row.update({k: v for k, v in flatten(summary).items() if k != "completed"})
        log = read_jsonl(os.path.join(run.workdir, METRICS_FILE))
        if summary.get("completed"):
            # eval scalars missing from the summary (runs made before evaluators reported
            # into it) are read from metrics.jsonl: take their last value
            for entry in log:
                for k, v in entry.items():
                    if k.startswith("eval/") and k not in summary:
                        row[k] = v
        if exp.derived:
            for spec in exp.derived:
                spec = dict(spec)
                if spec.get("kind") == "scale":  # e.g. images/s = steps/s x batch size
                    v, factor = row.get(spec["metric"]), spec.get("factor", 1.0)
                    factor = row.get(factor) if isinstance(factor, str) else factor
                    ok = isinstance(v, (int, float)) and v != 0 and factor is not None
                    row[spec["name"]] = v ** spec.get("power", 1) * factor if ok else None
                else:
                    row[spec["name"]] = _derived_value(spec, log)
        probe_scalars = read_json(os.path.join(run.workdir, PROBE_FILE)) or {}
        row.update(flatten(probe_scalars))
        if isinstance(row.get("headline"), str):  # trials that report different metrics
            row["headline_value"] = row.get(row["headline"])
        rows.append(row)
    return rows


def write_csv(rows: list[dict[str, Any]], path: str) -> None:
    """All columns of all rows (missing values empty); run dirs relative to the sweep's."""
    columns: dict[str, None] = {}
    for r in rows:
        for k in r:
            columns.setdefault(k, None)
    sweep = os.path.dirname(os.path.abspath(path))
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(columns))
        w.writeheader()
        for r in rows:
            out = {k: ("" if r.get(k) is None else r.get(k)) for k in columns}
            out["workdir"] = os.path.relpath(os.path.abspath(r["workdir"]), sweep)
            w.writerow(out)


def metric_columns(exp: ml_collections.ConfigDict, rows: list[dict[str, Any]]
                   ) -> list[tuple[str, str]]:
    """(column, goal) pairs of the table: the experiment's `metrics` or the defaults."""
    if exp.metrics:
        out = []
        for m in exp.metrics:
            key, _, goal = str(m).partition(":")
            out.append((key, goal or goal_of(key)))
        return out
    present: dict[str, None] = {}
    for r in rows:
        for k in r:
            if k.startswith("eval/"):
                present.setdefault(k, None)
    derived = [d["name"] for d in exp.derived]
    cols = sorted(present) + derived
    cols += [c for c in COST_COLUMNS if any(r.get(c) is not None for r in rows)]
    return [(c, goal_of(c)) for c in cols]


def aggregate(rows: list[dict[str, Any]], trials: list[str], columns: list[str]
              ) -> dict[str, dict[str, tuple[float, float, int] | None]]:
    """trial -> column -> (mean, std, n) over that trial's completed seeds."""
    out = {}
    for t in trials:
        done = [r for r in rows if r["trial"] == t and r["status"] == "done"]
        out[t] = {c: mean_std(r.get(c) for r in done) for c in columns}
    return out


def machine_info() -> str:
    """One line: OS, CPU, core count, JAX backend and devices."""
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    try:
        import jax

        devices = jax.devices()
        dev = (f"jax {jax.__version__} {jax.default_backend()} x{len(devices)} "
               f"({devices[0].device_kind})")
    except Exception as e:  # the report must still be written without a working backend
        dev = f"jax unavailable ({e})"
    return f"{platform.system()} {platform.release()}, {cpu}, {os.cpu_count()} cores, {dev}"


def markdown_table(exp: ml_collections.ConfigDict, rows: list[dict[str, Any]],
                   runs: list[Run]) -> str:
    """Mean ± std over seeds per trial; the best mean of each metric in bold."""
    trials = list(dict.fromkeys(r.trial for r in runs))
    # the trials' declared `params` label them; without any, the overrides that vary
    declared = list(dict.fromkeys(k for r in runs for k in r.params))
    fields = declared or [f for f in field_names(runs)
                          if len(trials) == 1 or len({str(r.get(f)) for r in rows}) > 1]
    cols = metric_columns(exp, rows)
    agg = aggregate(rows, trials, [c for c, _ in cols])
    best: dict[str, float] = {}
    for c, goal in cols:
        means = [agg[t][c][0] for t in trials if agg[t][c] is not None]
        if len(means) > 1 and goal in ("max", "min"):
            best[c] = max(means) if goal == "max" else min(means)
    arrows = {"max": " ↑", "min": " ↓"}
    header = ["trial"] + fields + [f"{c}{arrows.get(g, '')}" for c, g in cols] + ["runs"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    n_seeds = len(exp.seeds)
    for t in trials:
        first = next(r for r in rows if r["trial"] == t)
        cells = [t] + ["" if first.get(f) is None else str(first.get(f)).replace("|", "\\|")
                       for f in fields]
        diverged = sum(1 for r in rows if r["trial"] == t and r["status"] == "diverged")
        for c, _ in cols:
            v = agg[t][c]
            if v is None:
                cells.append("diverged" if diverged else "–")
                continue
            text = fmt(v[0]) + (f" ± {v[1]:.2g}" if v[2] > 1 and v[1] > 0 else "")
            if c in best and math.isclose(v[0], best[c], rel_tol=1e-12, abs_tol=0.0):
                text = f"**{text}**"
            cells.append(text)
        done = sum(1 for r in rows if r["trial"] == t and r["status"] == "done")
        cells.append(f"{done}/{n_seeds}" + (f" ({diverged} diverged)" if diverged else ""))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def summary_text(exp: ml_collections.ConfigDict, runs: list[Run]) -> str:
    """The comparison table for the terminal (the same table as report.md's)."""
    rows = collect_rows(exp, runs)
    return f"\n{exp.title}\n\n" + markdown_table(exp, rows, runs).replace("**", "") + "\n"


def best_lines(exp: ml_collections.ConfigDict, rows: list[dict[str, Any]],
               runs: list[Run]) -> list[str]:
    """'- eval/accuracy (max): trial (mean ± std)' for every metric with a direction."""
    trials = list(dict.fromkeys(r.trial for r in runs))
    cols = [(c, g) for c, g in metric_columns(exp, rows) if g in ("max", "min")]
    agg = aggregate(rows, trials, [c for c, _ in cols])
    out = []
    for c, goal in cols:
        scored = [(agg[t][c], t) for t in trials if agg[t][c] is not None]
        if len(scored) < 2:
            continue
        (m, s, n), t = (max if goal == "max" else min)(scored, key=lambda x: x[0][0])
        out.append(f"- {c} ({goal}): **{t}** {fmt(m)}" + (f" ± {s:.2g}" if n > 1 and s else ""))
    return out


def write_report(exp: ml_collections.ConfigDict, runs: list[Run], workdir: str,
                 command: str | None = None) -> str:
    """Writes results.csv, the plots and report.md into `workdir`; returns report.md's path."""
    rows = collect_rows(exp, runs)
    write_csv(rows, os.path.join(workdir, "results.csv"))
    plot_files = []
    for spec in exp.plots:
        spec = dict(spec)
        path = os.path.join(workdir, f"{exp.name}_{spec['name']}.png")
        if draw_plot(spec, rows, exp, path):
            plot_files.append((spec, os.path.basename(path)))
    n_done = sum(r["status"] == "done" for r in rows)
    n_diverged = sum(r["status"] == "diverged" for r in rows)
    failed = [r for r in rows if r["status"] == "failed"]
    command = command or f"python launch.py --experiment={exp.spec} --workdir={workdir}"
    parts = [
        f"# {exp.title}",
        "",
        exp.description,
        "",
        f"- Command: `{command}`",
        f"- Machine: {machine_info()}",
        f"- Written: {datetime.datetime.now(datetime.UTC).strftime('%Y-%m-%d %H:%M UTC')}",
        f"- Runs: {n_done}/{len(rows)} completed ({len(exp.trials)} trials x seeds "
        f"{list(exp.seeds)})" + (f"; {n_diverged} diverged (NaN loss)" if n_diverged else "")
        + (f"; {len(failed)} failed" if failed else ""),
        "",
        "## Results (mean ± std over seeds; best per metric in bold)",
        "",
        markdown_table(exp, rows, runs),
        "",
    ]
    best = best_lines(exp, rows, runs)
    if best:
        parts += ["Best per metric:", ""] + best + [""]
    if failed:
        parts += ["Failed runs (see their error.txt):", ""]
        parts += [f"- `{r['workdir']}`: {_first_error_line(r['workdir'])}" for r in failed]
        parts += [""]
    if plot_files:
        parts += ["## Plots", ""]
        for spec, name in plot_files:
            title = spec.get("title", spec["name"])
            parts += [f"### {title}", "", f"![{spec['name']}]({name})", ""]
    parts += ["Per-run values: `results.csv`; curves: `<trial>/seed_<s>/metrics.jsonl`.", ""]
    path = os.path.join(workdir, "report.md")
    with open(path, "w") as f:
        f.write("\n".join(parts))
    return path


def _first_error_line(run_dir: str) -> str:
    try:
        with open(os.path.join(run_dir, ERROR_FILE)) as f:
            lines = [s.strip() for s in f if s.strip()]
        return lines[-1] if lines else ""
    except OSError:
        return ""

