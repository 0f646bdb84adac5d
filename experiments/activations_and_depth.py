"""Study 2, activations and depth: sigmoid/tanh/relu/gelu MLPs from 2 to 20 hidden layers.

Claims tested: non-linear activations matter, and sigmoid/tanh make deep networks hard
to train (vanishing gradients). Grid: activation {sigmoid, tanh, relu, gelu} x depth
{2, 5, 10, 20} hidden layers of width 32 x optimiser (SGD with momentum 0.9 at lr 0.05;
`optimizers=momentum/adam` adds Adam at lr 1e-3) x 1 seed, on two spirals
(configs/mlp_xor.py:dataset=spirals), LeCun-normal initialisation (Flax's default),
global-norm clipping at 1, `steps` steps of batch 64.
The `layer_grad_norms` probe measures ||dL/dW|| of every layer on one batch at
initialisation and after training: the vanishing-gradient plot.

    python launch.py --experiment=experiments/activations_and_depth.py --workdir=runs/aad \\
        --parallel=2
    python launch.py --experiment=experiments/activations_and_depth.py:smoke --workdir=/tmp/aad

Default size: 16 runs; 9 minutes measured with --parallel=2 on a 2-core CPU shared with
other jobs (load average ~25; docs/results/activations_and_depth).
Options: smoke, seeds (count), steps, width, depths and optimizers
('a/b/c' lists, e.g. `:depths=2/10,optimizers=adam`).
"""

import ml_collections

from configs.base import parse_options
from dl_arch.experiments.study import as_list

LEARNING_RATES = {"momentum": 0.05, "sgd": 0.1, "adam": 1e-3, "adamw": 1e-3}


def get_experiment(arg: str | None = None) -> ml_collections.ConfigDict:
    """The grid: activations x depths x optimisers x seeds."""
    opts = parse_options(arg, seeds=1, steps=1000, width=32, depths="2/5/10/20",
                         optimizers="momentum")
    activations = ["sigmoid", "tanh", "relu", "gelu"]
    depths, optimizers = as_list(opts.depths, int), as_list(opts.optimizers, str)
    seeds = list(range(opts.seeds))
    suffix = ""
    if opts.smoke:
        activations, depths, optimizers, seeds, suffix = ["tanh", "relu"], [3], ["adam"], [0], \
            ",smoke"
    trials = []
    for opt in optimizers:
        if opt not in LEARNING_RATES:
            raise ValueError(f"option optimizers: '{opt}' unknown; use {sorted(LEARNING_RATES)}")
        for act in activations:
            for depth in depths:
                overrides = {"optimizer.name": opt, "optimizer.learning_rate": LEARNING_RATES[opt],
                             "optimizer.clip_norm": 1.0}
                if not opts.smoke:
                    overrides.update({"num_train_steps": opts.steps,
                                      "eval_every_steps": opts.steps,
                                      "checkpoint_every_steps": opts.steps,
                                      "log_every_steps": 50})
                trials.append({
                    "name": f"{opt}-{act}-d{depth}",
                    "config": (f"configs/mlp_xor.py:dataset=spirals,width={opts.width},"
                               f"depth={depth},activation={act}{suffix}"),
                    "overrides": overrides,
                    "params": {"optimizer": opt, "activation": act, "depth": depth},
                })
    deepest = max(depths)
    e = ml_collections.ConfigDict()
    e.title = "Activation functions and depth (MLPs on two spirals)"
    e.trials = trials
    e.seeds = seeds
    e.metrics = ["eval/accuracy:max", "eval/loss:min", "grad_first_over_last_init:max",
                 "grad_first_over_last_final:max"]
    e.probes = ["layer_grad_norms"]
    e.plots = [
        {"name": "accuracy_vs_depth", "kind": "metric", "x": "depth", "y": "eval/accuracy",
         "group": "activation", "panels": "optimizer",
         "title": "Final eval accuracy vs depth"},
        {"name": "grad_ratio_vs_depth", "kind": "metric", "x": "depth",
         "y": "grad_first_over_last_init", "group": "activation", "logy": True,
         "where": {"optimizer": optimizers[0]},
         "title": "||dL/dW first layer|| / ||dL/dW last hidden layer|| at initialisation"},
        {"name": f"layer_grads_depth{deepest}", "kind": "layer_grad_norms", "group": "activation",
         "panels": "optimizer", "where": {"depth": deepest},
         "title": f"Per-layer gradient norms, depth {deepest}"},
        {"name": f"train_loss_depth{deepest}", "kind": "curves", "y": "train/loss",
         "group": "activation", "panels": "optimizer", "where": {"depth": deepest},
         "logy": True, "title": f"Training loss, depth {deepest}"},
    ]
    return e
