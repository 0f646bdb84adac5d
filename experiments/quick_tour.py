"""The quick tour: one small model of each family, each on an offline task, side by side.

What `python launch.py` with no flags runs. Each family that is installed (its config file
and model are present) contributes one short run; the comparison table printed at the end
gives each run's headline metric (accuracy, loss, mAP, ...), parameters, FLOPs per step,
steps/s and wall time, and the path of the report with its plots.

    python launch.py
    python launch.py --experiment=experiments/quick_tour.py --workdir=runs/tour --parallel=2
    python launch.py --experiment=experiments/quick_tour.py:smoke --workdir=/tmp/tour

Default size: one seed, a few hundred steps per family: 8 runs; 7.6 minutes measured with
--parallel=2 on a 2-core CPU shared with other jobs (load average ~25; docs/results/quick_tour).
Options: smoke, seeds (count), steps (multiplies every family's step count).
"""

import os

import ml_collections

from configs.base import parse_options
from dl_arch.config.files import split_spec
from dl_arch.registry import MODELS

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# family, trial name, config (file:options), model override (None: the config's own),
# headline metric, training steps, other overrides (kept small: this is a tour)
FAMILIES = [
    ("perceptron/MLP", "mlp-spirals", "configs/mlp_xor.py:dataset=spirals,width=64", None,
     "eval/accuracy", 1000, {}),
    ("CNN", "lenet5-shapes", "configs/lenet5_shapes.py:num_classes=4", None, "eval/accuracy",
     300, {}),
    ("RNN", "lstm-adding", "configs/lstm_adding.py:T=50,hidden=64", None, "eval/solved", 600,
     {"evaluators": ()}),
    ("Transformer", "vit-shapes", "configs/vit_shapes.py:hidden=64", None, "eval/accuracy",
     300, {"batch_size": 64}),
    ("Transformer", "gpt-text", "configs/gpt_text.py:model=gpt_nano", None,
     "eval/bits_per_char", 300, {"batch_size": 16}),
    ("autoencoder", "vae-shapes", "configs/vae_shapes.py", None, "eval/loss", 300,
     {"evaluators": ("reconstructions", "prior_samples", "latent_scatter")}),
    ("GAN", "dcgan-shapes", "configs/dcgan_shapes.py", None, "eval/frechet_distance", 300,
     {"frechet.num_samples": 500, "frechet.classifier_steps": 200}),
    ("detection", "ssd-shapes", "configs/detector_shapes.py", None, "eval/mAP50", 150,
     {"batch_size": 16, "eval_max_batches": 4}),
]


def available(config_spec: str, model: dict | None) -> bool:
    """True when the family has landed: its config file exists and its model is registered."""
    path = os.path.join(REPO, split_spec(config_spec)[0])
    return os.path.exists(path) and (model is None or model["name"] in MODELS.names())


def get_experiment(arg: str | None = None) -> ml_collections.ConfigDict:
    """One trial per installed family."""
    opts = parse_options(arg, seeds=1, steps=1.0)
    trials = []
    for family, name, spec, model, headline, steps, extra in FAMILIES:
        if not available(spec, model):
            continue
        path, options = split_spec(spec)
        options = ",".join(filter(None, [options, "smoke" if opts.smoke else ""]))
        overrides = {} if model is None else {"model": model}
        if not opts.smoke:
            overrides.update(extra)
            n = max(10, int(steps * opts.steps))
            overrides.update({"num_train_steps": n, "eval_every_steps": n,
                              "checkpoint_every_steps": n, "log_every_steps": max(1, n // 20)})
        trials.append({"name": name, "config": f"{path}:{options}" if options else path,
                       "overrides": overrides,
                       "params": {"family": family, "headline": headline}})
    e = ml_collections.ConfigDict()
    e.title = "Quick tour: one small model per family"
    e.trials = trials
    e.seeds = list(range(opts.seeds))
    e.metrics = ["headline_value:none", "num_params:none", "flops_per_step:none",
                 "steps_per_sec:none", "wall_time_s:none"]
    e.plots = [{"name": "wall_time", "kind": "bar", "y": "wall_time_s",
                "title": "Wall time per run (s), compile and evaluation included"}]
    return e
