"""Study 3, sequence length: simple RNN vs LSTM vs GRU vs Transformer as the memory span T grows.

Claims tested: simple RNNs struggle with long-term dependencies while LSTMs and GRUs hold
them (GRUs with fewer parameters, faster); Transformers capture long-range dependencies
and train in parallel, but their cost grows with the square of the sequence length.
Tasks: the adding problem (regression of the sum of two marked values among T; "solved"
= fraction of sums within 0.04; configs/{rnn,lstm,gru}_adding.py) and copy-memory (recall
10 symbols after T blanks; accuracy on the recall steps; configs/lstm_copy.py). Models:
one-layer rnn/lstm/gru of `hidden` units; the Transformer is a 3-layer causal GPT (emb 48,
3 heads; `gpt_nano` with vocabulary 10) on copy-memory and a 2-layer encoder of width
`hidden` reading the (value, marker) pairs on the adding problem
(configs/transformer_adding.py). Every model trains `steps` steps of batch 64 at
each T in `Ts`. Cost-only trials run 20 steps at the longer `cost_Ts` (default 400 and 800;
`:cost_Ts=400/1600/6400` on a GPU) to measure step time
and XLA-planned memory (`step_cost` probe) where accuracy runs would not fit on a CPU.
Report: accuracy vs T, steps to solve, parameters; step time and memory vs T (log-log).

    python launch.py --experiment=experiments/sequence_length.py --workdir=runs/seqlen --parallel=2
    python launch.py --experiment=experiments/sequence_length.py:smoke --workdir=/tmp/seqlen

Default size: 40 runs, 45 minutes with --parallel=2 on a 2-core CPU; report in
docs/results/sequence_length.
Options: smoke, seeds (count), steps, hidden, Ts and cost_Ts ('a/b/c'), tasks ('copy/adding').
"""

import ml_collections

from configs.base import parse_options
from dl_arch.experiments.study import as_list

CELLS = ("rnn", "lstm", "gru")


def _gpt(T: int) -> dict:
    """The Transformer of the study: a 3-layer causal decoder over the copy-task tokens."""
    return {"name": "gpt_nano", "vocab_size": 10, "max_len": T + 20, "dropout_rate": 0.0}


def get_experiment(arg: str | None = None) -> ml_collections.ConfigDict:
    """The grid: (task, model, T) for accuracy, then (model, long T) for cost."""
    opts = parse_options(arg, seeds=1, steps=1000, hidden=64, Ts="25/50/100/200",
                         cost_Ts="400/800", tasks="copy/adding")
    Ts, cost_Ts = as_list(opts.Ts, int), as_list(opts.cost_Ts, int)
    tasks, seeds, steps = as_list(opts.tasks, str), list(range(opts.seeds)), opts.steps
    smoke = ",smoke" if opts.smoke else ""
    if opts.smoke:
        Ts, cost_Ts, tasks, seeds, steps = [10], [], ["copy"], [0], 10
    for t in tasks:
        if t not in ("copy", "adding"):
            raise ValueError(f"option tasks: '{t}' unknown; use copy and/or adding")

    def schedule(n: int) -> dict:
        return {"num_train_steps": n, "eval_every_steps": max(1, n // 5),
                "checkpoint_every_steps": n, "log_every_steps": max(1, n // 20),
                "dataset.num_eval_examples": 64 if opts.smoke else 512,
                "evaluators": ()}

    trials = []

    def add(task: str, model: str, T: int, n: int, purpose: str) -> None:
        if task == "adding":  # rnn/lstm/gru/transformer_adding.py
            config = f"configs/{model}_adding.py:T={T},hidden={opts.hidden}{smoke}"
            extra = {}
        else:
            cell = "lstm" if model == "transformer" else model
            config = f"configs/lstm_copy.py:T={T},cell={cell},hidden={opts.hidden}{smoke}"
            # the GPT keeps Adam at 1e-3: constant 3e-3 (the cells' rate) without warmup is
            # an unstable start for attention
            extra = ({"model": _gpt(T), "optimizer.learning_rate": 1e-3}
                     if model == "transformer" else {})
        # smoke configs clamp T; the dataset field is set again so the grid's T is the run's T
        trials.append({"name": f"{task}-{model}-T{T}" + ("-cost" if purpose == "cost" else ""),
                       "config": config,
                       "overrides": {**schedule(n), **extra, "dataset.T": T},
                       "params": {"task": task, "model": model, "T": T, "purpose": purpose}})

    for task in tasks:
        for model in CELLS + ("transformer",):
            for T in Ts:
                add(task, model, T, steps, "accuracy")
    for model in CELLS + ("transformer",):
        for T in cost_Ts:
            add("copy", model, T, 20, "cost")
    e = ml_collections.ConfigDict()
    e.title = "Sequence length: RNN vs LSTM vs GRU vs Transformer"
    e.trials = trials
    e.seeds = seeds
    e.probes = ["step_cost"]
    e.derived = [
        {"name": "steps_to_solve_copy", "kind": "first_step", "metric": "eval/accuracy",
         "threshold": 0.99},
        {"name": "steps_to_solve_adding", "kind": "first_step", "metric": "eval/solved",
         "threshold": 0.9},
        {"name": "step_time_ms", "kind": "scale", "metric": "steps_per_sec", "power": -1,
         "factor": 1000.0},
    ]
    e.metrics = ["eval/accuracy:max", "eval/solved:max", "eval/mse:min",
                 "steps_to_solve_copy:min", "steps_to_solve_adding:min", "num_params:min",
                 "step_time_ms:min", "step_memory_bytes:min", "step_flops:min"]
    e.plots = [
        {"name": "copy_accuracy_vs_T", "kind": "metric", "x": "T", "y": "eval/accuracy",
         "group": "model", "logx": True, "where": {"task": "copy", "purpose": "accuracy"},
         "title": "Copy-memory: recall accuracy vs T (chance 1/8)"},
        {"name": "adding_solved_vs_T", "kind": "metric", "x": "T", "y": "eval/solved",
         "group": "model", "logx": True, "where": {"task": "adding", "purpose": "accuracy"},
         "title": "Adding problem: fraction solved (|error| < 0.04) vs T"},
        {"name": "step_time_vs_T", "kind": "metric", "x": "T", "y": "step_time_ms",
         "group": "model", "logx": True, "logy": True, "where": {"task": "copy"},
         "ref_slopes": [1, 2], "title": "Time per training step (ms) vs T, copy task (log-log)"},
        {"name": "memory_vs_T", "kind": "metric", "x": "T", "y": "step_memory_bytes",
         "group": "model", "logx": True, "logy": True, "where": {"task": "copy"},
         "ref_slopes": [1, 2], "title": "XLA-planned memory of one train step vs T (log-log)"},
        {"name": "flops_vs_T", "kind": "metric", "x": "T", "y": "step_flops",
         "group": "model", "logx": True, "logy": True, "where": {"task": "copy"},
         "ref_slopes": [1, 2], "title": "FLOPs of one forward+backward pass vs T (log-log)"},
    ]
    return e
