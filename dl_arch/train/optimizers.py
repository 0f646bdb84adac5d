"""optax optimisers and learning-rate schedules chosen by name from `config.optimizer`."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import jax
import optax

from dl_arch.config.errors import ConfigError
from dl_arch.config.fields import Field, Fields, filled
from dl_arch.train.paths import regex_mask

SCHEDULES = ("constant", "step", "cosine", "warmup_cosine")
OPTIMIZERS = ("sgd", "momentum", "nesterov", "adam", "adamw", "rmsprop")
_PROB = dict(low=0.0, high=1.0, high_open=True)

OPTIMIZER_FIELDS: Fields = {
    "name": Field("adam", "the optimiser", choices=OPTIMIZERS),
    "learning_rate": Field(1e-3, "peak learning rate", low=0.0, low_open=True),
    "schedule": Field("constant", "learning-rate schedule", choices=SCHEDULES),
    "warmup_steps": Field(0, "linear warm-up steps from 0 to the peak rate", low=0),
    "decay_steps": Field(0, "steps of the decay (0: num_train_steps)", low=0),
    "step_boundaries": Field((), "schedule=step: fractions of decay_steps where the rate drops "
                                 "(empty: 0.5, 0.75)", each=Field(0.5, "a fraction", low=0.0,
                                                                    high=1.0)),
    "step_factor": Field(0.1, "schedule=step: factor applied at each boundary", low=0.0,
                         low_open=True),
    "weight_decay": Field(0.0, "decoupled weight decay on matrices and kernels", low=0.0),
    "clip_norm": Field(0.0, "global-norm gradient clipping (0: off)", low=0.0),
    "momentum": Field(0.9, "momentum of sgd-momentum, nesterov and rmsprop", **_PROB),
    "rmsprop_momentum": Field(False, "rmsprop: use `momentum`"),
    "b1": Field(0.9, "Adam's first-moment decay", **_PROB),
    "b2": Field(0.999, "Adam's second-moment decay (rmsprop: its decay)", **_PROB),
    "eps": Field(1e-8, "Adam/rmsprop epsilon", low=0.0, low_open=True),
}


def build_schedule(opt: Any, num_train_steps: int) -> optax.Schedule:
    """The learning rate as a function of the step."""
    opt = filled(opt, OPTIMIZER_FIELDS)
    lr = float(opt.learning_rate)
    decay_steps = int(opt.decay_steps or num_train_steps)
    warmup = int(opt.warmup_steps)
    name = opt.schedule
    if name == "constant":
        sched = optax.constant_schedule(lr)
        if warmup:
            sched = optax.join_schedules(
                [optax.linear_schedule(0.0, lr, warmup), sched], [warmup])
        return sched
    if name == "step":
        bounds = {int(f * decay_steps): float(opt.step_factor)
                  for f in opt.step_boundaries or (0.5, 0.75)}
        return optax.piecewise_constant_schedule(lr, bounds)
    if name == "cosine":
        return optax.cosine_decay_schedule(lr, max(decay_steps, 1))
    if name == "warmup_cosine":
        return optax.warmup_cosine_decay_schedule(0.0, lr, warmup, max(decay_steps, warmup + 1))
    raise ConfigError(
        f"unknown schedule '{name}' in config.optimizer.schedule; known: {', '.join(SCHEDULES)}"
    )


def _decay_mask(params: Any) -> Any:
    """Weight decay on matrices and kernels only, not on biases or norm scales."""
    return jax.tree_util.tree_map(lambda p: getattr(p, "ndim", 0) > 1, params)


def build_optimizer(opt: Any, num_train_steps: int, freeze: Sequence[str] = ()
                    ) -> tuple[optax.GradientTransformation, optax.Schedule]:
    """(transformation, schedule): clipping, the named optimiser, weight decay, freezing."""
    opt = filled(opt, OPTIMIZER_FIELDS)
    name = opt.name
    sched = build_schedule(opt, num_train_steps)
    wd = float(opt.weight_decay)
    momentum = float(opt.momentum)
    if name == "sgd":
        tx = optax.sgd(sched)
    elif name == "momentum":
        tx = optax.sgd(sched, momentum=momentum)
    elif name == "nesterov":
        tx = optax.sgd(sched, momentum=momentum, nesterov=True)
    elif name == "adam":
        tx = optax.adam(sched, b1=opt.b1, b2=opt.b2, eps=opt.eps)
    elif name == "adamw":
        tx = optax.adamw(sched, b1=opt.b1, b2=opt.b2,
                         eps=opt.eps, weight_decay=wd, mask=_decay_mask)
    elif name == "rmsprop":
        tx = optax.rmsprop(sched, decay=opt.b2, eps=opt.eps,
                           momentum=momentum if opt.rmsprop_momentum else None)
    else:
        raise ConfigError(
            f"unknown optimizer '{name}' in config.optimizer.name; known: {', '.join(OPTIMIZERS)}"
        )
    parts = []
    clip = float(opt.clip_norm)
    if clip > 0:
        parts.append(optax.clip_by_global_norm(clip))
    if wd and name != "adamw":  # L2-style decoupled decay for the other optimisers
        parts.append(optax.add_decayed_weights(wd, mask=_decay_mask))
    tx = optax.chain(*parts, tx) if parts else tx
    if freeze:
        labels = lambda params: jax.tree_util.tree_map(
            lambda frozen: "frozen" if frozen else "train", regex_mask(params, freeze))
        tx = optax.multi_transform({"train": tx, "frozen": optax.set_to_zero()}, labels)
    return tx, sched
