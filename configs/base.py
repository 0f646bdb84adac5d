"""Trainer defaults shared by every config, and the `key=value,flag` option parser.

Config files start from `base_config()` and override what differs; `parse_options`
turns the text after the colon in `--config=configs/x.py:smoke,T=200` into a dict.
"""

from __future__ import annotations

import ast

import ml_collections


def parse_options(arg: str | None, **defaults):
    """Parses 'a=1,b=x,smoke' into {'a': 1, 'b': 'x', 'smoke': True} over `defaults`.

    Unknown keys are an error that lists the known ones.
    """
    opts = dict(defaults)
    opts.setdefault("smoke", False)
    if not arg:
        return ml_collections.ConfigDict(opts)
    for item in filter(None, (s.strip() for s in arg.split(","))):
        key, sep, raw = item.partition("=")
        key = key.strip()
        if key not in opts:
            raise ValueError(
                f"unknown config option '{key}'; known options: {', '.join(sorted(opts))}"
            )
        if not sep:
            value = True
        else:
            try:
                value = ast.literal_eval(raw.strip())
            except (ValueError, SyntaxError):
                value = raw.strip()
        opts[key] = value
    return ml_collections.ConfigDict(opts)


def base_config() -> ml_collections.ConfigDict:
    """The fields every run reads; a config file overrides what differs."""
    c = ml_collections.ConfigDict()
    c.seed = 0  # seeds parameter init, dropout and data order
    c.batch_size = 128  # global batch, split over every device of every host
    c.grad_accum_steps = 1  # micro-batches per optimiser step (batch_size must divide)
    c.num_train_steps = 1000
    c.log_every_steps = 50  # train metrics to metrics.jsonl / TensorBoard
    c.eval_every_steps = 500  # full eval split; also at the end of the run
    c.eval_batch_size = 0  # 0: same as batch_size
    c.eval_max_batches = 0  # 0: the whole eval split
    c.checkpoint_every_steps = 500  # orbax checkpoint (also at the end and on SIGTERM)
    c.max_checkpoints_to_keep = 3
    c.dtype = "auto"  # compute dtype: auto = bfloat16 on GPU/TPU, float32 on CPU
    c.param_dtype = "float32"
    c.progress = "auto"  # auto | bar | log | none
    c.report_on_eval = True  # run task.host_report (pictures) at eval time too

    c.task = ml_collections.ConfigDict({"name": "classification"})
    c.model = ml_collections.ConfigDict({"name": "mlp"})
    c.dataset = ml_collections.ConfigDict(
        {
            "name": "xor",
            "train_split": "train",
            "eval_split": "test",
            "data_dir": "",  # TFDS data_dir ('' = TFDS default)
            "num_workers": 0,  # grain worker processes (0 = in the main process)
            "shuffle": True,
        }
    )

    c.optimizer = ml_collections.ConfigDict(
        {
            "name": "adam",  # sgd | momentum | nesterov | adam | adamw | rmsprop
            "learning_rate": 1e-3,
            "schedule": "constant",  # constant | step | cosine | warmup_cosine
            "warmup_steps": 0,
            "decay_steps": 0,  # 0 = num_train_steps
            "step_boundaries": (),  # schedule=step: fractions of decay_steps
            "step_factor": 0.1,
            "weight_decay": 0.0,
            "clip_norm": 0.0,  # global-norm clipping; 0 = off
            "momentum": 0.9,
            "b1": 0.9,
            "b2": 0.999,
            "eps": 1e-8,
        }
    )
    c.phase_optimizers = ml_collections.ConfigDict()  # per-phase overrides (GAN)

    c.init_from = ""  # workdir or checkpoint dir to load matching parameters from
    c.freeze = ()  # regexes over parameter paths that get no update
    c.sample = ml_collections.ConfigDict()  # options for `launch.py --sample`
    return c


def shrink_for_smoke(c: ml_collections.ConfigDict, steps: int = 20) -> ml_collections.ConfigDict:
    """Shrinks trainer settings so a config runs in seconds on a CPU."""
    c.num_train_steps = steps
    c.log_every_steps = max(1, steps // 4)
    c.eval_every_steps = steps
    c.checkpoint_every_steps = steps
    c.eval_max_batches = 2
    c.batch_size = min(c.batch_size, 32)
    return c
