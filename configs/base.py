"""Trainer defaults shared by every config, and the `key=value,flag` option parser.

Config files start from `base_config()` and override what differs; `parse_options`
turns the text after the colon in `--config=configs/x.py:smoke,T=200` into a dict.
"""

from __future__ import annotations

import ast

import ml_collections

from dl_arch.config.errors import ConfigError
from dl_arch.config.fields import suggest
from dl_arch.train.optimizers import OPTIMIZER_FIELDS
from dl_arch.train.trainer_fields import TRAINER_FIELDS


def parse_options(arg: str | None, **defaults):
    """Parses 'a=1,b=x,smoke' into {'a': 1, 'b': 'x', 'smoke': True} over `defaults`.

    An unknown key, or a value of another type than its default's, is a one-line error.
    """
    opts = dict(defaults)
    opts.setdefault("smoke", False)
    if not arg:
        return ml_collections.ConfigDict(opts)
    for item in filter(None, (s.strip() for s in arg.split(","))):
        key, sep, raw = item.partition("=")
        key = key.strip()
        if key not in opts:
            raise ConfigError(
                f"unknown config option '{key}'{suggest(key, sorted(opts))} (known options: "
                f"{', '.join(sorted(opts))})"
            )
        default = opts[key]
        if not sep:
            value = True
        else:
            try:
                value = ast.literal_eval(raw.strip())
            except (ValueError, SyntaxError):
                value = raw.strip()
        opts[key] = _typed_option(key, value, default)
    return ml_collections.ConfigDict(opts)


def _typed_option(key: str, value, default):
    """`value` checked against the type of the option's default (ints may stand for floats)."""
    if default is None or isinstance(default, str):
        return value if default is None else str(value)
    if isinstance(default, bool):
        if isinstance(value, bool):
            return value
    elif isinstance(default, int):
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif isinstance(default, float):
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
    elif isinstance(value, type(default)):
        return value
    raise ConfigError(f"config option {key}={value!r} must be a {type(default).__name__} "
                      f"like its default {default!r}")


def base_config() -> ml_collections.ConfigDict:
    """The declared trainer and optimiser defaults; a config file overrides what differs.

    The task, model and dataset sections start with only their names: resolution fills in
    the fields the chosen ones declare (see `launch.py --print_config`).
    """
    c = ml_collections.ConfigDict({k: f.default for k, f in TRAINER_FIELDS.items()})
    c.task = ml_collections.ConfigDict({"name": "classification"})
    c.model = ml_collections.ConfigDict({"name": "mlp"})
    c.dataset = ml_collections.ConfigDict({"name": "xor"})
    c.optimizer = ml_collections.ConfigDict({k: f.default for k, f in OPTIMIZER_FIELDS.items()})
    c.phase_optimizers = ml_collections.ConfigDict()  # per-phase overrides (GAN)
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
