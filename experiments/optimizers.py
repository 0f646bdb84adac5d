"""Study 5, optimisers: SGD, SGD+momentum, Adam and AdamW over a learning-rate range on one task.

Grid: optimiser {sgd, momentum 0.9, adam, adamw (weight decay 0.05)} x learning rate
{1e-3, 1e-2, 1e-1, 1} x 1 seed, training the 2x256 ReLU MLP of configs/mlp_shapes.py
on 16x16 `shapes` images (4 classes, fresh batches of 128), warmup-cosine schedule,
`steps` steps. A run whose loss becomes NaN is reported as diverged. Report: final
accuracy vs learning rate per optimiser (the sensitivity curve) and training-loss curves.

    python launch.py --experiment=experiments/optimizers.py --workdir=runs/optimizers --parallel=2
    python launch.py --experiment=experiments/optimizers.py:smoke --workdir=/tmp/opt

Default size: 16 runs, 6 minutes with --parallel=2 on an idle 2-core CPU; report in
docs/results/optimizers.
Options: smoke, seeds (count), steps, lrs ('a/b/c', e.g. `:lrs=1e-3/1e-2`), image_size.
"""

import ml_collections

from configs.base import parse_options
from dl_arch.experiments.study import as_list


def get_experiment(arg: str | None = None) -> ml_collections.ConfigDict:
    """The grid: optimisers x learning rates x seeds."""
    opts = parse_options(arg, seeds=1, steps=600, lrs="1e-3/1e-2/1e-1/1",
                         image_size=16)
    optimizers = ["sgd", "momentum", "adam", "adamw"]
    lrs, seeds = as_list(opts.lrs, float), list(range(opts.seeds))
    config = f"configs/mlp_shapes.py:image_size={opts.image_size}"
    if opts.smoke:
        optimizers, lrs, seeds, config = ["sgd", "adam"], [1e-2], [0], config + ",smoke"
    trials = []
    for opt in optimizers:
        for lr in lrs:
            overrides = {"optimizer.name": opt, "optimizer.learning_rate": lr,
                         "optimizer.weight_decay": 0.05 if opt == "adamw" else 0.0}
            if not opts.smoke:
                overrides.update({"num_train_steps": opts.steps, "eval_every_steps": opts.steps,
                                  "checkpoint_every_steps": opts.steps, "log_every_steps": 20,
                                  "optimizer.warmup_steps": opts.steps // 20})
            trials.append({"name": f"{opt}-lr{lr:g}", "config": config, "overrides": overrides,
                           "params": {"optimizer": opt, "learning_rate": lr}})
    e = ml_collections.ConfigDict()
    e.title = "Optimisers over a learning-rate range (MLP on shapes 16x16)"
    e.trials = trials
    e.seeds = seeds
    e.metrics = ["eval/accuracy:max", "eval/loss:min", "wall_time_s:min"]
    e.derived = [{"name": "best_train_loss", "kind": "best", "metric": "train/loss"}]
    e.plots = [
        {"name": "accuracy_vs_lr", "kind": "metric", "x": "learning_rate", "y": "eval/accuracy",
         "group": "optimizer", "logx": True, "title": "Final eval accuracy vs learning rate"},
        {"name": "loss_curves", "kind": "curves", "y": "train/loss", "panels": "optimizer",
         "group": "learning_rate", "logy": True, "title": "Training loss (mean over seeds)"},
    ]
    return e
