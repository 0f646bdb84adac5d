"""The fields the training loop itself reads (the config's top level), declared once."""

from __future__ import annotations

from dl_arch.config.errors import ConfigError
from dl_arch.config.fields import Field, Fields

_POS = dict(low=1)

TRAINER_FIELDS: Fields = {
    "seed": Field(0, "seeds parameter init, dropout and data order"),
    "batch_size": Field(128, "global batch, split over every device of every host", **_POS),
    "grad_accum_steps": Field(1, "micro-batches per optimiser step (batch_size must divide)",
                              **_POS),
    "num_train_steps": Field(1000, "optimiser steps of the whole run (0: evaluate only)",
                             low=0),
    "steps_per_call": Field(1, "optimiser steps compiled into one call (a scan over that "
                               "many batches; chunks end at logging, eval and checkpoint "
                               "steps): >1 spares small models the host's cost per step",
                            **_POS),
    "log_every_steps": Field(50, "train metrics to metrics.jsonl / TensorBoard every N steps",
                             **_POS),
    "eval_every_steps": Field(500, "evaluate the eval split every N steps (and at the end)",
                              **_POS),
    "eval_batch_size": Field(0, "global eval batch (0: same as batch_size)", low=0),
    "eval_max_batches": Field(0, "evaluate only the first N eval batches (0: the whole split)",
                              low=0),
    "checkpoint_every_steps": Field(500, "save a checkpoint every N steps (and at the end and "
                                         "on SIGTERM)", **_POS),
    "max_checkpoints_to_keep": Field(3, "newest checkpoints kept in <workdir>/checkpoints",
                                     **_POS),
    "dtype": Field("auto", "compute dtype: auto = bfloat16 on GPU/TPU, float32 on CPU",
                   choices=("auto", "float32", "bfloat16", "float16")),
    "param_dtype": Field("float32", "parameter dtype",
                         choices=("float32", "bfloat16", "float16")),
    "progress": Field("auto", "progress display: a bar on a terminal, log lines elsewhere",
                      choices=("auto", "bar", "log", "none")),
    "evaluators": Field(None, "evaluators run at evaluations and at the end, each with its "
                              "section config.<name> (None: the task's own list)", kind=tuple,
                        each=Field("", "a registered evaluator name", kind=str)),
    "ema_decay": Field(0.0, "keep an exponential moving average of the parameters with this "
                            "decay (0: off, e.g. 0.999)", low=0.0, high=1.0, high_open=True),
    "eval_with_ema": Field(True, "when ema_decay > 0: eval metrics, evaluators and --sample "
                                 "use the averaged parameters"),
    "divergence_factor": Field(1e4, "stop when the loss exceeds this multiple of its value at "
                                    "the first step (0: only NaN/Inf stop a run)", low=0.0),
    "init_from": Field("", "workdir, checkpoint dir or hf:<folder> to load matching "
                           "parameters from ('' = train from scratch)"),
    "freeze": Field((), "regexes over parameter paths that get no update",
                    each=Field("", "a regex")),
}


def check_trainer(config) -> None:
    """Relations between trainer fields that no single field's range can say."""
    if config.batch_size % config.grad_accum_steps:
        raise ConfigError(f"config.batch_size={config.batch_size} must divide by "
                          f"config.grad_accum_steps={config.grad_accum_steps}")
    import re

    for i, pattern in enumerate(config.freeze):
        try:
            re.compile(pattern)
        except re.error as e:
            raise ConfigError(f"config.freeze[{i}]={pattern!r} is not a valid regex ({e}); "
                              f"escape special characters like '[' with a backslash") from None
