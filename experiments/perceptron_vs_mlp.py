"""Study 1, linear separability: a perceptron vs one-hidden-layer MLPs of growing width.

Claim tested: an MLP learns what a single-layer perceptron cannot. XOR, two concentric
circles and two spirals are not linearly separable, so the perceptron (one affine map,
a straight decision boundary) should stay near chance while a hidden layer of enough
ReLU units should solve all three. Grid: dataset {xor, circles, spirals} x model
{perceptron, MLP with 1 hidden layer of 2, 8, 32, 128 units} x 2 seeds; Adam, lr 1e-2,
batch 64, `steps` steps on fresh points (configs/mlp_xor.py, configs/perceptron_xor.py).
Report: accuracy per model and dataset, and every decision boundary.

    python launch.py --experiment=experiments/perceptron_vs_mlp.py --workdir=runs/pvm --parallel=2
    python launch.py --experiment=experiments/perceptron_vs_mlp.py:smoke --workdir=/tmp/pvm

Default size: 30 runs; 10.5 minutes measured with --parallel=2 on a 2-core CPU shared with
other jobs (load average ~25; docs/results/perceptron_vs_mlp).
Options: smoke, seeds (count), steps, widths ('a/b/c', e.g.
`:widths=4/64`), depth (hidden layers of the MLPs).
"""

import ml_collections

from configs.base import parse_options
from dl_arch.experiments.study import as_list


def get_experiment(arg: str | None = None) -> ml_collections.ConfigDict:
    """The grid: datasets x (perceptron, MLP widths) x seeds."""
    opts = parse_options(arg, seeds=2, steps=1000, widths="2/8/32/128", depth=1)
    datasets = ["xor", "circles", "spirals"]
    widths = as_list(opts.widths, int)
    seeds = list(range(opts.seeds))
    suffix = ",smoke" if opts.smoke else ""
    if opts.smoke:
        datasets, widths, seeds = ["xor"], [32], [0]
    n = 60 if opts.smoke else opts.steps
    steps = {"num_train_steps": n, "eval_every_steps": n, "checkpoint_every_steps": n}
    trials = []
    for d in datasets:
        trials.append({
            "name": f"{d}-perceptron",
            "config": f"configs/perceptron_xor.py:dataset={d}{suffix}",
            "overrides": dict(steps),
            "params": {"dataset": d, "model": "perceptron", "hidden_units": 0},
        })
        for w in widths:
            trials.append({
                "name": f"{d}-mlp{w}",
                "config": f"configs/mlp_xor.py:dataset={d},width={w},depth={opts.depth}{suffix}",
                "overrides": dict(steps),
                "params": {"dataset": d, "model": f"mlp-{w}", "hidden_units": w},
            })
    e = ml_collections.ConfigDict()
    e.title = "Perceptron vs MLP on non-linearly-separable points"
    e.trials = trials
    e.seeds = seeds
    e.metrics = ["eval/accuracy:max", "eval/loss:min", "num_params:min"]
    e.probes = ["decision_boundary"]
    e.plots = [
        {"name": "accuracy", "kind": "metric", "x": "model", "y": "eval/accuracy",
         "group": "dataset", "title": "Eval accuracy (mean ± std over seeds)"},
        {"name": "decision_boundaries", "kind": "decision_boundary", "panels": "dataset",
         "columns": "model", "title": "Decision boundaries (p(class 1), seed 0)"},
    ]
    return e
