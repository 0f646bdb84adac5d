"""The quick tour's page: one picture per family and a table that says what each figure means.

`experiments/quick_tour.py` names two functions of this module:

- `train_run` (the experiment's `trainer`) trains a run with the shared loop, then adds what
  the page needs beyond the evaluators' pictures: the decision boundary of a 2-D classifier
  (the `decision_boundary` probe), predicted against true sums of an adding-problem model,
  and the baselines a headline is read against (the PSNR of the mean image, the bits per
  character of the text's byte frequencies, the share of sums the best constant solves),
  written to `<run>/tour.json`. It runs inside the run's own process, so `--parallel` runs
  these too.
- `write_page` (the experiment's `page`) writes `<workdir>/report.md`: the table, then each
  family's pictures (copied to `<workdir>/pictures/`, so the page and its folder move
  together) and generated text; it returns the page's path and the table for the terminal.

A trial's `params` say what its row shows: `family`, `run` (model and task), `headline`
(a column of the run's row: an `eval/` metric, a `tour/` baseline, a derived column),
`label` (the headline's short name), `goal` (`max` or `min`), `means` (a template filled
from the row, e.g. `'real-vs-real floor {eval/frechet_real_floor:.1f}'`), `pictures`
(`[file in the run dir, caption, width in pixels (optional)]`; a `.txt` file is shown as
text), `more` (the config that shows the rest) and `order` (the row's place: trials are
listed longest first, so parallel runs end together).
"""

from __future__ import annotations

import json
import os
import shutil
import string
from typing import Any

import ml_collections
import numpy as np

from dl_arch.evaluators.figures import pyplot
from dl_arch.experiments.runs import Run, read_json

TOUR_FILE = "tour.json"  # the baselines train_run adds beside the run's summary.json
BOUNDARY = "decision_boundary.png"  # a 2-D classifier's picture, drawn by train_run
POINT_SETS = ("xor", "circles", "spirals")
_ARROWS = {"max": "↑", "min": "↓"}


# ----------------------------------------------------------------------------- in the run


def train_run(config: ml_collections.ConfigDict, workdir: str) -> dict[str, Any]:
    """Trains one tour run (`dl_arch.train.loop.train_and_evaluate`), then writes its
    page extras; returns the loop's summary."""
    from dl_arch.train.loop import train_and_evaluate

    summary = train_and_evaluate(config, workdir)
    if summary.get("preempted"):
        return summary
    scalars = run_extras(config, workdir, summary)
    with open(os.path.join(workdir, TOUR_FILE), "w") as f:
        json.dump(scalars, f, indent=1)
    return summary


def run_extras(config: ml_collections.ConfigDict, workdir: str, summary: dict[str, Any]
               ) -> dict[str, float]:
    """The pictures and baselines of one finished run that its evaluators do not give."""
    task, dataset = config.task.name, config.dataset.name
    if task == "classification" and dataset in POINT_SETS:
        from dl_arch.experiments.probes import decision_boundary

        decision_boundary(config, workdir)  # probe_decision_boundary.npz
        with np.load(os.path.join(workdir, "probe_decision_boundary.npz")) as z:
            _boundary(z, summary.get("eval/accuracy"), os.path.join(workdir, BOUNDARY))
        return {}
    if task == "sequence_regression":
        return adding_predictions(config, workdir)
    if task == "autoencoding":
        return {"tour/mean_image_psnr": mean_image_psnr(config)}
    if task == "causal_lm" and dataset == "text" and not config.dataset.tfds_name:
        return {"tour/unigram_bits": unigram_bits(config)}
    return {}


def mean_image_psnr(config: ml_collections.ConfigDict, n: int = 512) -> float:
    """PSNR (dB, mean over eval images) of answering every image with the eval mean image:
    the score of an autoencoder that ignores its input."""
    from dl_arch.experiments.probes import probe_batch
    from dl_arch.tasks.autoencoding import psnr

    images = np.asarray(probe_batch(config, config.dataset.eval_split, n)["image"], np.float32)
    mean_image = np.broadcast_to(images.mean(0), images.shape)
    return float(np.mean(psnr(images, mean_image)))  # the headline's own PSNR


def unigram_bits(config: ml_collections.ConfigDict) -> float:
    """Bits per character of the training text under its own byte frequencies: the best a
    model that ignores the context can do."""
    from dl_arch.data.sources.text import local_stream

    d = config.dataset
    stream = local_stream(d.path, d.split_by, d.eval_fraction, True, d.max_bytes)
    p = np.bincount(stream, minlength=256) / len(stream)
    p = p[p > 0]
    return float(-(p * np.log2(p)).sum())


def adding_predictions(config: ml_collections.ConfigDict, workdir: str, n: int = 400
                       ) -> dict[str, float]:
    """predictions.png: the model's sums against the true ones on eval sequences, and the
    share a constant (the mean sum) gets within the tolerance."""
    import jax

    from dl_arch.experiments.probes import make_task, probe_batch, trained_variables

    task = make_task(config)
    batch = probe_batch(config, config.dataset.eval_split, n)
    out = task.model.apply(trained_variables(workdir), batch["inputs"], train=False)
    pred = np.asarray(jax.device_get(out), np.float64).reshape(-1)
    true = np.asarray(batch["targets"], np.float64).reshape(-1)
    tol = float(config.task.solved_tolerance)
    constant = float(np.mean(np.abs(true - true.mean()) < tol))
    _scatter(true, pred, tol, constant, os.path.join(workdir, "predictions.png"))
    return {"tour/constant_solved": constant}


def _boundary(z: Any, accuracy: float | None, path: str) -> None:
    """The classifier's p(class 1) over the plane, its 0.5 line, and held-out points."""
    plt = pyplot()

    from dl_arch.experiments.plots import draw_decision_boundary

    fig, ax = plt.subplots(figsize=(4.0, 4.0))
    draw_decision_boundary(ax, z, point_size=6)
    title = "p(class 1); dots: held-out points"
    if isinstance(accuracy, (int, float)):
        title += f"\nheld-out accuracy {accuracy:.1%}"
    ax.set(title=title, xticks=[], yticks=[])
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def _scatter(true: np.ndarray, pred: np.ndarray, tol: float, constant: float, path: str
             ) -> None:
    plt = pyplot()

    solved = np.abs(pred - true) < tol
    fig, ax = plt.subplots(figsize=(4.2, 4.0))
    lim = (min(true.min(), pred.min()) - 0.1, max(true.max(), pred.max()) + 0.1)
    ax.fill_between(lim, [lim[0] - tol, lim[1] - tol], [lim[0] + tol, lim[1] + tol],
                    color="tab:green", alpha=0.2, label=f"solved: within ±{tol:g}")
    ax.axhline(true.mean(), color="tab:gray", linestyle="--", linewidth=1,
               label=f"best constant (solves {constant:.0%})")
    ax.scatter(true, pred, s=6, c=np.where(solved, "tab:blue", "tab:red"))
    ax.set(xlim=lim, ylim=lim, xlabel="true sum", ylabel="predicted sum",
           title=f"{solved.mean():.0%} of {len(true)} held-out sequences solved")
    ax.set_aspect("equal")
    ax.legend(fontsize=7, loc="upper left")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


# ----------------------------------------------------------------------------- the page


class _Row(dict):
    """A run's row for `str.format_map`: a missing key reads as '?', not an error."""

    def __missing__(self, key: str) -> Any:
        return _Missing()


class _Missing:
    def __format__(self, spec: str) -> str:
        return "?"


def meaning(template: str, row: dict[str, Any]) -> str:
    """The `means` template filled from the row ('?' where a value is missing)."""
    values = _Row({k: v for k, v in row.items() if v is not None and v != ""})
    return string.Formatter().vformat(template, (), values)


def _value(row: dict[str, Any], params: dict[str, Any]) -> str:
    v = row.get(params["headline"])
    if not isinstance(v, (int, float)) or isinstance(v, bool):
        return row["status"]
    arrow = _ARROWS.get(params.get("goal", ""), "")
    text = f"{v:.1f}" if abs(v) >= 10 else f"{v:.3f}" if abs(v) >= 0.1 else f"{v:.3g}"
    return f"{text} {arrow}".strip()


def _cell(text: Any) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def table(rows: list[tuple[dict[str, Any], dict[str, Any]]]) -> str:
    """The Markdown table of the tour: one row per family, the headline with its meaning."""
    header = ["family", "what runs", "headline", "value", "what the value means",
              "params", "steps", "steps/s", "run s"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row, params in rows:
        steps = row.get("steps_per_sec")
        cells = [params["family"], params["run"], params["label"], _value(row, params),
                 meaning(params["means"], row),
                 f"{row['num_params']:,}" if isinstance(row.get("num_params"), int) else "–",
                 _steps(row),
                 f"{steps:.1f}" if isinstance(steps, (int, float)) else "–",
                 f"{row['wall_time_s']:.0f}" if isinstance(row.get("wall_time_s"), (int, float))
                 else "–"]
        lines.append("| " + " | ".join(_cell(c) for c in cells) + " |")
    return "\n".join(lines)


def _steps(row: dict[str, Any]) -> str:
    """Training steps of the run, from its config.json (the tour's override or the config's)."""
    config = read_json(os.path.join(row["workdir"], "config.json")) or {}
    steps = config.get("num_train_steps")
    return f"{steps:,}" if isinstance(steps, int) else "–"


def sample_text(path: str) -> str:
    """The generated text of a `samples.txt`, without its step and settings header lines."""
    with open(path, errors="replace") as f:
        lines = [ln.rstrip("\n") for ln in f]
    return "\n".join(ln for ln in lines
                     if not ln.startswith(("# step", "----- sample"))).strip()


def _first_done(rows: list[dict[str, Any]], trial: str) -> dict[str, Any]:
    mine = [r for r in rows if r["trial"] == trial]
    return next((r for r in mine if r["status"] == "done"), mine[0])


def _section(row: dict[str, Any], params: dict[str, Any], workdir: str) -> list[str]:
    """The page's part for one family: its headline in words, pictures or text, the rest."""
    out = [f"## {params['family']}: {params['run']}", "",
           f"{params['label']} = {_value(row, params)} ({meaning(params['means'], row)})", ""]
    if row["status"] != "done":
        out += [f"This run is {row['status']}; see `{row['workdir']}`.", ""]
    pictures = os.path.join(workdir, "pictures")
    for name, caption, *width in params.get("pictures", ()):
        path = os.path.join(row["workdir"], name)
        if row["status"] != "done" or not os.path.exists(path):
            out += [f"*{caption}: not written (`{name}` is missing in `{row['workdir']}`)*", ""]
        elif name.endswith(".txt"):
            out += [f"{caption}:", "", "```text", sample_text(path), "```", ""]
        else:
            os.makedirs(pictures, exist_ok=True)
            target = f"{row['trial']}-{os.path.basename(name)}"
            shutil.copyfile(path, os.path.join(pictures, target))
            image = (f'<img src="pictures/{target}" width="{width[0]}" alt="{caption}">'
                     if width else f"![{caption}](pictures/{target})")
            out += [image, "", f"*{caption}*", ""]
    if params.get("more"):
        out += [f"More: {params['more']}", ""]
    return out


def write_page(exp: ml_collections.ConfigDict, runs: list[Run], workdir: str, command: str
               ) -> tuple[str, str]:
    """Writes results.csv and the tour's report.md; returns (the page's path, the table)."""
    from dl_arch.experiments.report import collect_rows, machine_info, write_csv

    rows = collect_rows(exp, runs)
    for row in rows:
        row.update(read_json(os.path.join(row["workdir"], TOUR_FILE)) or {})
    write_csv(rows, os.path.join(workdir, "results.csv"))
    params = {r.trial: dict(r.params) for r in runs}
    order = sorted(params, key=lambda t: params[t].get("order", 0))
    shown = [(_first_done(rows, t), params[t]) for t in order]
    done = sum(r["status"] == "done" for r, _ in shown)
    text = table(shown)
    paragraphs = exp.description.split("\n\n")
    intro = [paragraphs[0]] + [p for p in paragraphs if p.startswith("Not in the tour")]
    parts = [f"# {exp.title}", "", "\n\n".join(intro), "",
             f"- Command: `{command}`", f"- Machine: {machine_info()}",
             f"- Runs: {done}/{len(shown)} finished; per-run values in `results.csv`, each "
             f"run's files in `<trial>/seed_<s>/`", "", text, ""]
    for row, p in shown:
        parts += _section(row, p, workdir)
    path = os.path.abspath(os.path.join(workdir, "report.md"))
    with open(path, "w") as f:
        f.write("\n".join(parts))
    return path, f"\n{exp.title}\n\n{text}\n"
