"""Study 6, transfer learning: pretrain, then fine-tune (frozen or full) vs train from scratch.

Claim tested: transfer learning cuts the labelled data and the time needed. A LeNet-5 is
pretrained on plentiful source data: all 8 `shapes` classes, one shape per image. The
target task is harder and has little labelled data: 4 classes, a second (distractor)
shape in every image, stronger pixel noise; the label is the larger shape. For each
labelled-set size in `sizes`, three trials on the target: `scratch` (random init),
`frozen` (the pretrained convolutions and dense layers are frozen, only a new head trains;
`config.freeze`) and `finetune` (everything trains from the pretrained weights;
`config.init_from`; the 8-class head does not match and starts fresh). Same recipe,
`steps` steps each. Report: target accuracy vs labelled examples, and the accuracy curves
(steps to reach a given accuracy).

    python launch.py --experiment=experiments/transfer_learning.py --workdir=runs/transfer
    python launch.py --experiment=experiments/transfer_learning.py:smoke --workdir=/tmp/tl

Default size: 10 runs, 5 minutes with --parallel=2 on a 2-core CPU; report in
docs/results/transfer_learning.
Pretraining runs first; with --parallel the fine-tuning runs wait for it.
Options: smoke, seeds (count), steps, pretrain_steps, sizes ('a/b/c').
"""

import ml_collections

from configs.base import parse_options
from dl_arch.experiments.study import as_list


def get_experiment(arg: str | None = None) -> ml_collections.ConfigDict:
    """The grid: pretrain, then (scratch, frozen, finetune) x labelled-set sizes."""
    opts = parse_options(arg, seeds=1, steps=300, pretrain_steps=1500, sizes="100/400/1600")
    sizes, seeds, steps, pre_steps, batch = (as_list(opts.sizes, int), list(range(opts.seeds)),
                                             opts.steps, opts.pretrain_steps, 64)
    if opts.smoke:
        sizes, seeds, steps, pre_steps, batch = [32], [0], 10, 10, 16

    def schedule(n: int) -> dict:
        return {"num_train_steps": n, "eval_every_steps": max(1, n // 5),
                "checkpoint_every_steps": n, "log_every_steps": max(1, n // 20),
                "batch_size": batch, "optimizer.warmup_steps": max(1, n // 20),
                "eval_batch_size": 250 if not opts.smoke else 16,
                "eval_max_batches": 0 if not opts.smoke else 1}

    model = {"name": "lenet5", "stem": "imagenet"}
    trials = [{
        "name": "pretrain",
        "overrides": {**schedule(pre_steps), "model": {**model, "num_classes": 8},
                      "dataset.num_classes": 8},
        "params": {"method": "pretrain", "labelled": 0},
    }]
    target = {"model": {**model, "num_classes": 4}, "dataset.num_classes": 4,
              "dataset.num_objects": 2, "dataset.max_objects": 2, "dataset.noise": 0.1}
    init = {"init_from": "{workdir}/pretrain/seed_{seed}"}
    methods = {
        "scratch": {},
        "frozen": {**init, "freeze": ("^(conv|fc)",)},
        "finetune": dict(init),
    }
    for size in sizes:
        for method, extra in methods.items():
            trials.append({
                "name": f"{method}-n{size}",
                "overrides": {**schedule(steps), **target, **extra,
                              "dataset.num_train_examples": size},
                "params": {"method": method, "labelled": size},
                "depends_on": ["pretrain"] if extra else [],
            })
    e = ml_collections.ConfigDict()
    e.title = "Transfer learning: pretrained LeNet-5, frozen or fine-tuned, vs from scratch"
    e.base = "configs/mlp_shapes.py:image_size=32" + (",smoke" if opts.smoke else "")
    e.trials = trials
    e.seeds = seeds
    e.derived = [{"name": "steps_to_80", "kind": "first_step", "metric": "eval/accuracy",
                  "threshold": 0.8}]
    e.metrics = ["eval/accuracy:max", "eval/loss:min", "steps_to_80:min", "wall_time_s:min"]
    e.plots = [
        {"name": "accuracy_vs_labelled", "kind": "metric", "x": "labelled", "y": "eval/accuracy",
         "group": "method", "logx": True, "where": {"method": ["scratch", "frozen", "finetune"]},
         "title": "Target accuracy vs labelled examples"},
        {"name": "eval_curves", "kind": "curves", "y": "eval/accuracy", "panels": "labelled",
         "group": "method", "where": {"method": ["scratch", "frozen", "finetune"]},
         "title": "Target eval accuracy during training"},
    ]
    return e
