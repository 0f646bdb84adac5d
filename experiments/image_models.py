"""Study 4, image models: MLP vs LeNet-5 vs ResNet-18 vs MobileNetV2 vs ViT on the same images.

Claims tested: CNNs suit images better than dense networks (their inductive bias: local,
shared filters), and Transformers want more data. Every model trains on the same offline
`shapes` images (32x32 RGB, 4 classes, one shape on a plain background; eval on 1000
fixed images) with the same recipe (Adam, warmup-cosine, batch 64, `steps` steps), for
each training-set size in `sizes` (the data-efficiency curve: a small set is seen many
times). The CPU-sized default shrinks the two big networks but keeps their architecture:
ResNet-18 at width 16 (published: 64), MobileNetV2 at width multiplier 0.35 and ViT at
hidden 64, 4 layers, 4 heads, patch 4 (`full` restores ResNet-18 and MobileNetV2 at their
published widths: GPU-sized). `dataset=cifar10` switches to `tfds:cifar10` (10 classes).
Report: accuracy vs training-set size per model, parameters, FLOPs/step, images/s.

    python launch.py --experiment=experiments/image_models.py --workdir=runs/image_models
    python launch.py --experiment=experiments/image_models.py:smoke --workdir=/tmp/img

Default size: 15 runs, 40 minutes with --parallel=2 on a 2-core CPU (MobileNetV2's CIFAR
stem is 30 of them); report in docs/results/image_models.
Options: smoke, seeds (count), steps, sizes ('a/b/c' training-set sizes), full, dataset.
"""

import ml_collections

from configs.base import parse_options
from dl_arch.experiments.study import as_list


def models(num_classes: int, full: bool) -> dict[str, dict]:
    """Model configs by trial label (CPU-sized unless `full`)."""
    return {
        "mlp": {"name": "mlp", "num_classes": num_classes, "width": 256, "depth": 2},
        "lenet5": {"name": "lenet5", "num_classes": num_classes, "stem": "imagenet"},
        "resnet18": {"name": "resnet18", "num_classes": num_classes, "stem": "small",
                     **({} if full else {"width": 16})},
        "mobilenet_v2": {"name": "mobilenet_v2", "num_classes": num_classes, "stem": "small",
                         **({} if full else {"width_multiplier": 0.35})},
        "vit": {"name": "vit_ti16", "num_classes": num_classes, "patch_size": 4,
                **({} if full else {"hidden": 64, "num_layers": 4, "num_heads": 4,
                                     "mlp_dim": 128})},
    }


def get_experiment(arg: str | None = None) -> ml_collections.ConfigDict:
    """The grid: models x training-set sizes x seeds."""
    opts = parse_options(arg, seeds=1, steps=400, sizes="250/1000/4000", full=False,
                         dataset="shapes")
    sizes, seeds = as_list(opts.sizes, int), list(range(opts.seeds))
    if opts.dataset not in ("shapes", "cifar10"):
        raise ValueError(f"option dataset='{opts.dataset}'; use shapes or cifar10")
    num_classes = 10 if opts.dataset == "cifar10" else 4
    table = models(num_classes, opts.full)
    steps, batch = opts.steps, 64
    if opts.smoke:
        table = {k: table[k] for k in ("mlp", "lenet5")}
        sizes, seeds, steps, batch = [64], [0], 10, 16
    trials = []
    for size in sizes:
        for label, model in table.items():
            overrides = {
                "model": model, "batch_size": batch, "num_train_steps": steps,
                "eval_every_steps": steps, "checkpoint_every_steps": steps,
                "log_every_steps": max(1, steps // 20), "eval_batch_size": 250,
                "dataset.num_train_examples": size,
                "optimizer.warmup_steps": max(1, steps // 20),
            }
            if opts.dataset == "cifar10":
                overrides.update({"dataset.name": "tfds:cifar10", "dataset.eval_split": "test"})
            if opts.smoke:
                overrides.update({"eval_max_batches": 1, "eval_batch_size": 16,
                                  "dataset.num_eval_examples": 16})
            trials.append({"name": f"{label}-n{size}", "overrides": overrides,
                           "params": {"model": label, "train_examples": size,
                                      "batch_size": batch}})
    e = ml_collections.ConfigDict()
    e.title = "Image models on the same images: accuracy, cost and data efficiency"
    e.base = "configs/mlp_shapes.py:image_size=32" + (",smoke" if opts.smoke else "")
    e.trials = trials
    e.seeds = seeds
    e.derived = [{"name": "images_per_sec", "kind": "scale", "metric": "steps_per_sec",
                  "factor": "batch_size"}]
    e.metrics = ["eval/accuracy:max", "eval/loss:min", "num_params:min", "flops_per_step:min",
                 "images_per_sec:max", "wall_time_s:min"]
    e.plots = [
        {"name": "data_efficiency", "kind": "metric", "x": "train_examples",
         "y": "eval/accuracy", "group": "model", "logx": True,
         "title": "Eval accuracy vs number of training examples"},
        {"name": "accuracy_vs_params", "kind": "metric", "x": "num_params",
         "y": "eval/accuracy", "group": "model", "logx": True, "lines": False,
         "where": {"train_examples": max(sizes)},
         "title": f"Accuracy vs parameters ({max(sizes)} training examples)"},
        {"name": "throughput", "kind": "bar", "y": "images_per_sec",
         "where": {"train_examples": max(sizes)}, "title": "Training images/s (CPU)"},
    ]
    return e
