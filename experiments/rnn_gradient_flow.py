"""Study 7, gradient flow through time: dL/dh_t against t for a simple RNN, an LSTM and a GRU.

Claim tested: backpropagation through a simple RNN multiplies the gradient by the
recurrent Jacobian at every step, so the loss at the end of a long sequence barely
reaches its early hidden states (vanishing gradients), while the LSTM's additive cell
state and the GRU's update gate carry it across. Each model (one layer of `hidden`
units) trains on the adding problem at length `T` (configs/{rnn,lstm,gru}_adding.py,
Adam 1e-3, clipping at 1, batch 64, `steps` steps); the `grad_through_time` probe measures
the batch mean of ||dL/dh_t|| for every t on one training batch, at initialisation and
after training, through the models' zero hidden-state perturbations.

    python launch.py --experiment=experiments/rnn_gradient_flow.py --workdir=runs/gradflow
    python launch.py --experiment=experiments/rnn_gradient_flow.py:smoke --workdir=/tmp/gradflow

Default size: 6 runs; 7 minutes measured with --parallel=2 on a 2-core CPU shared with
other jobs (load average ~23; docs/results/rnn_gradient_flow).
Options: smoke, seeds (count), steps, T, hidden.
"""

import ml_collections

from configs.base import parse_options


def get_experiment(arg: str | None = None) -> ml_collections.ConfigDict:
    """The grid: cell x seeds, one sequence length."""
    opts = parse_options(arg, seeds=2, steps=1500, T=100, hidden=64)
    seeds, steps, T = list(range(opts.seeds)), opts.steps, opts.T
    smoke = ",smoke" if opts.smoke else ""
    if opts.smoke:
        seeds, steps, T = [0], 10, 10
    trials = []
    for cell in ("rnn", "lstm", "gru"):
        trials.append({
            "name": cell,
            "config": f"configs/{cell}_adding.py:T={T},hidden={opts.hidden}{smoke}",
            "overrides": {"num_train_steps": steps, "eval_every_steps": max(1, steps // 5),
                          "checkpoint_every_steps": steps, "log_every_steps": max(1, steps // 30),
                          "dataset.T": T, "evaluators": (),
                          "dataset.num_eval_examples": 64 if opts.smoke else 512},
            "params": {"model": cell, "T": T},
        })
    e = ml_collections.ConfigDict()
    e.title = f"Gradient flow through time on the adding problem (T={T})"
    e.trials = trials
    e.seeds = seeds
    e.probes = ["grad_through_time"]
    e.metrics = ["eval/solved:max", "eval/mse:min", "grad_h1_over_hT_init:max",
                 "grad_h1_over_hT_final:max", "num_params:min", "steps_per_sec:max"]
    e.plots = [
        {"name": "dL_dh_t", "kind": "grad_through_time", "group": "model",
         "title": "mean ||dL/dh_t|| over t (loss at the last step), mean over seeds"},
        {"name": "mse_curves", "kind": "curves", "y": "train/loss", "group": "model",
         "logy": True, "title": "Training MSE (mean over seeds; predicting 1.0 gives 0.167)"},
    ]
    return e
