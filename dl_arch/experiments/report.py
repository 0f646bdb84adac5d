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
  `grad_through_time`) are drawn by `dl_arch.experiments.probes`. `where` keeps rows whose
  fields equal the given values (a list means any of them); `panels` makes one subplot per
  value of that field. Files are `<experiment>_<name>.png`.
"""

from __future__ import annotations

import csv
import datetime
import math
import os
import platform
import statistics
from collections.abc import Iterable
from typing import Any

import ml_collections

from dl_arch.config.errors import ConfigError
from dl_arch.experiments.runner import (
    ERROR_FILE,
    PROBE_FILE,
    SUMMARY_FILE,
    Run,
    read_json,
    run_status,
)

COST_COLUMNS = ("num_params", "flops_per_step", "steps_per_sec", "wall_time_s",
                "peak_memory_bytes")
_MAX_WORDS = ("accuracy", "acc", "per_sec", "psnr", "bleu", "map", "iou", "f1", "auc", "ssim")
_MIN_WORDS = ("loss", "error", "perplexity", "ppl", "time", "params", "flops", "memory", "bytes",
              "steps_to", "nll", "fid", "mse", "bpd")


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


def goal_of(metric: str) -> str:
    """'max' or 'min': which direction is better for a metric, judged from its name."""
    name = metric.lower().rsplit("/", 1)[-1]
    if any(w in name for w in _MAX_WORDS):
        return "max"
    if any(w in name for w in _MIN_WORDS):
        return "min"
    return "max"


def read_jsonl(path: str) -> list[dict[str, Any]]:
    """Every JSON object of a `metrics.jsonl` (a torn last line from a kill is dropped)."""
    import json

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
        log = read_jsonl(os.path.join(run.workdir, "metrics.jsonl"))
        if summary.get("completed"):
            # end-of-run scalars written after the summary's evaluation (e.g. a Fréchet
            # distance from host_report) exist only in metrics.jsonl: take their last value
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


def _numbers(values: Iterable[Any]) -> list[float]:
    out = []
    for v in values:
        if isinstance(v, bool) or v is None or v == "":
            continue
        try:
            x = float(v)
        except (TypeError, ValueError):
            continue
        if not math.isnan(x):
            out.append(x)
    return out


def mean_std(values: Iterable[Any]) -> tuple[float, float, int] | None:
    """(mean, sample std, n) of the numeric values; std is 0 for a single value."""
    xs = _numbers(values)
    if not xs:
        return None
    return statistics.fmean(xs), (statistics.stdev(xs) if len(xs) > 1 else 0.0), len(xs)


def fmt(x: float) -> str:
    """Short human format: 4 significant digits, thousands for big integers."""
    if x == 0:
        return "0"
    if abs(x) >= 1e6 or abs(x) < 1e-3:
        return f"{x:.3g}"
    if float(x).is_integer() and abs(x) >= 1000:
        return f"{int(x):,}"
    return f"{x:.4g}"


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


# ----------------------------------------------------------------------------- plots


def select(rows: list[dict[str, Any]], where: dict[str, Any] | None) -> list[dict[str, Any]]:
    """Rows whose fields equal `where`'s values (a list value means any of them)."""
    if not where:
        return rows
    out = []
    for r in rows:
        ok = True
        for k, v in where.items():
            allowed = v if isinstance(v, (list, tuple)) else [v]
            if r.get(k) not in allowed:
                ok = False
        if ok:
            out.append(r)
    return out


def _values_in_order(rows: list[dict[str, Any]], key: str | None) -> list[Any]:
    if key is None:
        return [None]
    return list(dict.fromkeys(r.get(key) for r in rows))


def _axes_grid(n: int):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cols = min(n, 4)
    nrows = math.ceil(n / cols)
    fig, axes = plt.subplots(nrows, cols, figsize=(4.2 * cols, 3.4 * nrows), squeeze=False)
    for ax in axes.flat[n:]:
        ax.set_visible(False)
    return fig, list(axes.flat[:n])


def draw_plot(spec: dict[str, Any], rows: list[dict[str, Any]], exp: ml_collections.ConfigDict,
              path: str) -> bool:
    """Draws one plot spec to `path`; False (and no file) when it has no data yet."""
    kind = spec.get("kind", "metric")
    rows = [r for r in select(rows, spec.get("where")) if r["status"] == "done"]
    if not rows:
        return False
    if kind in ("metric", "bar", "curves"):
        panels = _values_in_order(rows, spec.get("panels"))
        fig, axes = _axes_grid(len(panels))
        drawn = False
        for ax, p in zip(axes, panels, strict=True):
            sub = rows if p is None else [r for r in rows if r.get(spec["panels"]) == p]
            drawn |= {"metric": _plot_metric, "bar": _plot_bar, "curves": _plot_curves}[kind](
                ax, spec, sub)
            if p is not None:
                ax.set_title(f"{spec['panels']}={p}", fontsize=9)
        if not drawn:
            import matplotlib.pyplot as plt

            plt.close(fig)
            return False
        fig.suptitle(spec.get("title", spec["name"]), fontsize=10)
        fig.tight_layout()
        fig.savefig(path, dpi=110)
        import matplotlib.pyplot as plt

        plt.close(fig)
        return True
    from dl_arch.experiments import probes

    return probes.draw_probe_plot(kind, spec, rows, path)


def _style(ax, spec: dict[str, Any], xlabel: str, ylabel: str) -> None:
    # set_xscale again would reset ticks already placed on the grid's own values
    if spec.get("logx") and ax.get_xscale() != "log":
        ax.set_xscale("log")
    if spec.get("logy") and ax.get_yscale() != "log":
        ax.set_yscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.grid(True, alpha=0.3, which="both")


def _series(rows, group):
    for g in _values_in_order(rows, group):
        yield g, (rows if g is None else [r for r in rows if r.get(group) == g])


def _plot_metric(ax, spec: dict[str, Any], rows: list[dict[str, Any]]) -> bool:
    x_key, y_key, group = spec["x"], spec["y"], spec.get("group")
    xs_all = _values_in_order(rows, x_key)
    numeric = all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in xs_all)
    drawn = False
    for g, sub in _series(rows, group):
        points = []
        # one point per trial (a numeric x from a metric column differs per seed: average it)
        for t in dict.fromkeys(r["trial"] for r in sub):
            tr = [r for r in sub if r["trial"] == t]
            y = mean_std(r.get(y_key) for r in tr)
            x = mean_std(r.get(x_key) for r in tr) if numeric else (tr[0].get(x_key), 0, 1)
            if y is None or x is None:
                continue
            points.append((x[0], y[0], y[1]))
        if not points:
            continue
        if numeric:
            points.sort()
            xs = [p[0] for p in points]
        else:
            xs = [xs_all.index(p[0]) for p in points]
        ax.errorbar(xs, [p[1] for p in points], yerr=[p[2] for p in points], marker="o",
                    capsize=3, label=None if g is None else str(g),
                    linestyle="-" if spec.get("lines", True) else "none")
        drawn = True
    if numeric and drawn and spec.get("ref_slopes"):
        _reference_slopes(ax, rows, x_key, y_key, spec["ref_slopes"])
    if not numeric:
        ax.set_xticks(range(len(xs_all)), [str(x) for x in xs_all], rotation=30, fontsize=8)
    elif spec.get("logx") and x_key not in COST_COLUMNS and len(xs_all) <= 12:
        ticks = sorted(float(x) for x in xs_all)  # label the grid's own values, not decades
        ax.set_xscale("log")
        ax.set_xticks(ticks, [fmt(t) for t in ticks], fontsize=8)
        ax.minorticks_off()
    if group and drawn:
        ax.legend(fontsize=8)
    _style(ax, spec, spec.get("xlabel", x_key), spec.get("ylabel", y_key))
    return drawn


def _reference_slopes(ax, rows: list[dict[str, Any]], x_key: str, y_key: str,
                      slopes: list[float]) -> None:
    """Dashed y = c x^k guides through the smallest-x point with the largest y."""
    pts = [(float(r[x_key]), float(r[y_key])) for r in rows
           if _numbers([r.get(x_key)]) and _numbers([r.get(y_key)]) and float(r[y_key]) > 0]
    if not pts:
        return
    x0 = min(p[0] for p in pts)
    y0 = max(p[1] for p in pts if p[0] == x0)
    x1 = max(p[0] for p in pts)
    for k in slopes:
        ax.plot([x0, x1], [y0, y0 * (x1 / x0) ** k], linestyle="--", color="grey",
                linewidth=0.8, alpha=0.7)
        ax.annotate(f"∝ {x_key}^{k:g}", (x1, y0 * (x1 / x0) ** k), fontsize=7, color="grey")


def _plot_bar(ax, spec: dict[str, Any], rows: list[dict[str, Any]]) -> bool:
    y_key = spec["y"]
    trials = list(dict.fromkeys(r["trial"] for r in rows))
    stats = [mean_std(r.get(y_key) for r in rows if r["trial"] == t) for t in trials]
    keep = [(t, s) for t, s in zip(trials, stats, strict=True) if s is not None]
    if not keep:
        return False
    ax.bar(range(len(keep)), [s[0] for _, s in keep], yerr=[s[1] for _, s in keep], capsize=3)
    ax.set_xticks(range(len(keep)), [t for t, _ in keep], rotation=30, ha="right", fontsize=8)
    _style(ax, spec, "", spec.get("ylabel", y_key))
    return True


def mean_curve(run_dirs: list[str], key: str) -> tuple[list[float], list[float]]:
    """The mean over runs of `key` against the step, on the steps every run logged."""
    per_run = []
    for d in run_dirs:
        log = read_jsonl(os.path.join(d, "metrics.jsonl"))
        per_run.append({r["step"]: r[key] for r in log
                        if "step" in r and isinstance(r.get(key), (int, float))})
    if not per_run or not all(per_run):
        return [], []
    steps = sorted(set.intersection(*(set(p) for p in per_run)))
    return steps, [statistics.fmean(p[s] for p in per_run) for s in steps]


def _plot_curves(ax, spec: dict[str, Any], rows: list[dict[str, Any]]) -> bool:
    y_key = spec["y"]
    label_key = spec.get("group")
    drawn = False
    for t in dict.fromkeys(r["trial"] for r in rows):
        tr = [r for r in rows if r["trial"] == t]
        steps, ys = mean_curve([r["workdir"] for r in tr], y_key)
        if not steps:
            continue
        label = t if label_key is None else f"{tr[0].get(label_key)}"
        ax.plot(steps, ys, label=label, linewidth=1.2)
        drawn = True
    if drawn:
        ax.legend(fontsize=7)
    _style(ax, spec, "step", spec.get("ylabel", y_key))
    return drawn
