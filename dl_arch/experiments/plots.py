"""The figures of an experiment's report, drawn from its rows and the runs' files.

`draw_plot` draws one entry of the experiment's `plots` (see `dl_arch.experiments.report`
for the fields): `metric`, `bar` and `curves` from the table's rows and `metrics.jsonl`;
`decision_boundary`, `layer_grad_norms` and `grad_through_time` from the arrays the probes
saved (`<run>/probe_<name>.npz`, `dl_arch.experiments.probes`).
"""

from __future__ import annotations

import math
import os
import statistics
from typing import Any

import ml_collections
import numpy as np

from dl_arch.config.errors import ConfigError
from dl_arch.evaluators.figures import pyplot
from dl_arch.experiments.runs import COST_COLUMNS, METRICS_FILE, read_jsonl
from dl_arch.experiments.stats import fmt, mean_std, numbers


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
    plt = pyplot()

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
            pyplot().close(fig)
            return False
        fig.suptitle(spec.get("title", spec["name"]), fontsize=10)
        fig.tight_layout()
        fig.savefig(path, dpi=110)
        pyplot().close(fig)
        return True
    return _draw_probe_plot(kind, spec, rows, path)


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
           if numbers([r.get(x_key)]) and numbers([r.get(y_key)]) and float(r[y_key]) > 0]
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
        log = read_jsonl(os.path.join(d, METRICS_FILE))
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


# ----------------------------------------------------------------------------- probe plots


def _mean_arrays(run_dirs: list[str], probe: str, key: str) -> np.ndarray | None:
    arrays = []
    for d in run_dirs:
        try:
            with np.load(os.path.join(d, f"probe_{probe}.npz")) as z:
                arrays.append(np.asarray(z[key], np.float64))
        except (OSError, KeyError):
            continue
    if not arrays or len({a.shape for a in arrays}) != 1:
        return None
    return np.mean(arrays, axis=0)


def _trials(rows: list[dict[str, Any]]) -> list[str]:
    return list(dict.fromkeys(r["trial"] for r in rows))


def draw_decision_boundary(ax: Any, z: Any, point_size: float = 4) -> None:
    """A 2-D classifier's p(class 1) over the plane (the `decision_boundary` probe's arrays),
    its 0.5 line and the held-out points, on one matplotlib axis."""
    axis = z["axis"]
    ax.contourf(axis, axis, z["prob"], levels=np.linspace(0, 1, 11), cmap="RdBu_r", alpha=0.8)
    ax.contour(axis, axis, z["prob"], levels=[0.5], colors="k", linewidths=0.8)
    ax.scatter(z["points"][:, 0], z["points"][:, 1], c=z["labels"], cmap="RdBu_r", s=point_size,
               edgecolors="none")
    ax.set_aspect("equal")


def _plot_decision_boundary(spec: dict[str, Any], rows: list[dict[str, Any]], path: str) -> bool:
    plt = pyplot()

    panel_key, col_key = spec.get("panels"), spec.get("columns")
    panel_values = list(dict.fromkeys(r.get(panel_key) for r in rows)) if panel_key else [None]
    col_values = (list(dict.fromkeys(r.get(col_key) for r in rows)) if col_key
                  else _trials(rows))
    fig, axes = plt.subplots(len(panel_values), len(col_values),
                             figsize=(2.4 * len(col_values), 2.4 * len(panel_values)),
                             squeeze=False)
    drawn = False
    for i, pv in enumerate(panel_values):
        for j, cv in enumerate(col_values):
            ax = axes[i][j]
            ax.set_xticks([])
            ax.set_yticks([])
            match = [r for r in rows if (panel_key is None or r.get(panel_key) == pv)
                     and (r.get(col_key) == cv if col_key else r["trial"] == cv)]
            if not match:
                ax.set_visible(False)
                continue
            r = match[0]  # the first seed's picture
            try:
                z = np.load(os.path.join(r["workdir"], "probe_decision_boundary.npz"))
            except OSError:
                ax.set_visible(False)
                continue
            draw_decision_boundary(ax, z)
            acc = r.get(spec.get("metric", "eval/accuracy"))
            title = f"{cv}" + (f"\nacc={acc:.3f}" if isinstance(acc, (int, float)) else "")
            ax.set_title(title, fontsize=7)
            if j == 0 and pv is not None:
                ax.set_ylabel(str(pv), fontsize=9)
            drawn = True
    return _save_figure(fig, spec, path, drawn)


def _plot_stage_curves(spec: dict[str, Any], rows: list[dict[str, Any]], path: str,
                       probe: str, xlabel: str, ylabel: str) -> bool:
    plt = pyplot()

    stages = spec.get("stages", ["init", "final"])
    group = spec.get("group")
    panel_key = spec.get("panels")
    panel_values = list(dict.fromkeys(r.get(panel_key) for r in rows)) if panel_key else [None]
    fig, axes = plt.subplots(len(panel_values), len(stages),
                             figsize=(4.4 * len(stages), 3.3 * len(panel_values)), squeeze=False)
    drawn = False
    for i, pv in enumerate(panel_values):
        sub = [r for r in rows if panel_key is None or r.get(panel_key) == pv]
        for j, stage in enumerate(stages):
            ax = axes[i][j]
            for t in _trials(sub):
                tr = [r for r in sub if r["trial"] == t]
                y = _mean_arrays([r["workdir"] for r in tr], probe, stage)
                if y is None:
                    continue
                label = t if group is None else str(tr[0].get(group))
                ax.plot(np.arange(1, len(y) + 1), np.maximum(y, 1e-30), label=label,
                        linewidth=1.2, marker="." if len(y) <= 30 else None)
                drawn = True
            ax.set_yscale("log")
            ax.set_xlabel(xlabel)
            ax.set_ylabel(ylabel)
            ax.grid(True, alpha=0.3, which="both")
            ax.set_title(stage + ("" if pv is None else f", {panel_key}={pv}"), fontsize=9)
            ax.legend(fontsize=7)
    return _save_figure(fig, spec, path, drawn)


def _draw_probe_plot(kind: str, spec: dict[str, Any], rows: list[dict[str, Any]],
                    path: str) -> bool:
    """Draws a plot of probe outputs; False (no file) when no run has them yet."""
    if kind == "decision_boundary":
        return _plot_decision_boundary(spec, rows, path)
    if kind == "layer_grad_norms":
        return _plot_stage_curves(spec, rows, path, "layer_grad_norms",
                                  "layer (1 = input side; last = head)", "||dL/dW||")
    if kind == "grad_through_time":
        return _plot_stage_curves(spec, rows, path, "grad_through_time", "time step t",
                                  "mean ||dL/dh_t||")
    raise ConfigError(f"plot '{spec.get('name')}': unknown kind '{kind}'; use metric, bar, "
                     "curves, decision_boundary, layer_grad_norms or grad_through_time")


def _save_figure(fig: Any, spec: dict[str, Any], path: str, drawn: bool) -> bool:
    """Titles and saves a probe figure when anything was drawn on it; closes it either way."""
    plt = pyplot()

    if drawn:
        fig.suptitle(spec.get("title", spec["name"]), fontsize=10)
        fig.tight_layout()
        fig.savefig(path, dpi=110)
    plt.close(fig)
    return drawn
