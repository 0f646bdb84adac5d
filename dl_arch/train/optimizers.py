"""optax optimisers and learning-rate schedules chosen by name from `config.optimizer`."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import jax
import optax

from dl_arch.train.paths import regex_mask

SCHEDULES = ("constant", "step", "cosine", "warmup_cosine")
OPTIMIZERS = ("sgd", "momentum", "nesterov", "adam", "adamw", "rmsprop")


def build_schedule(opt: Any, num_train_steps: int) -> optax.Schedule:
    """The learning rate as a function of the step."""
    lr = float(opt.learning_rate)
    decay_steps = int(opt.get("decay_steps", 0) or num_train_steps)
    warmup = int(opt.get("warmup_steps", 0))
    name = opt.get("schedule", "constant")
    if name == "constant":
        sched = optax.constant_schedule(lr)
        if warmup:
            sched = optax.join_schedules(
                [optax.linear_schedule(0.0, lr, warmup), sched], [warmup])
        return sched
    if name == "step":
        bounds = {int(f * decay_steps): float(opt.get("step_factor", 0.1))
                  for f in opt.get("step_boundaries", ()) or (0.5, 0.75)}
        return optax.piecewise_constant_schedule(lr, bounds)
    if name == "cosine":
        return optax.cosine_decay_schedule(lr, max(decay_steps, 1))
    if name == "warmup_cosine":
        return optax.warmup_cosine_decay_schedule(0.0, lr, warmup, max(decay_steps, warmup + 1))
    raise ValueError(
        f"unknown schedule '{name}' in config.optimizer.schedule; known: {', '.join(SCHEDULES)}"
    )


def _decay_mask(params: Any) -> Any:
    """Weight decay on matrices and kernels only, not on biases or norm scales."""
    return jax.tree_util.tree_map(lambda p: getattr(p, "ndim", 0) > 1, params)


def build_optimizer(opt: Any, num_train_steps: int, freeze: Sequence[str] = ()
                    ) -> tuple[optax.GradientTransformation, optax.Schedule]:
    """(transformation, schedule): clipping, the named optimiser, weight decay, freezing."""
    name = opt.get("name", "adam")
    sched = build_schedule(opt, num_train_steps)
    wd = float(opt.get("weight_decay", 0.0))
    momentum = float(opt.get("momentum", 0.9))
    if name == "sgd":
        tx = optax.sgd(sched)
    elif name == "momentum":
        tx = optax.sgd(sched, momentum=momentum)
    elif name == "nesterov":
        tx = optax.sgd(sched, momentum=momentum, nesterov=True)
    elif name == "adam":
        tx = optax.adam(sched, b1=opt.get("b1", 0.9), b2=opt.get("b2", 0.999), eps=opt.get("eps", 1e-8))
    elif name == "adamw":
        tx = optax.adamw(sched, b1=opt.get("b1", 0.9), b2=opt.get("b2", 0.999),
                         eps=opt.get("eps", 1e-8), weight_decay=wd, mask=_decay_mask)
    elif name == "rmsprop":
        tx = optax.rmsprop(sched, decay=opt.get("b2", 0.9), eps=opt.get("eps", 1e-8),
                           momentum=momentum if opt.get("rmsprop_momentum", False) else None)
    else:
        raise ValueError(
            f"unknown optimizer '{name}' in config.optimizer.name; known: {', '.join(OPTIMIZERS)}"
        )
    parts = []
    clip = float(opt.get("clip_norm", 0.0))
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
