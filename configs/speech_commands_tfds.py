"""Keyword spotting on TFDS Speech Commands (Warden 2018): 10 words, silence and unknown.

The offline counterpart is `keyword_spotting.py` (the same models and front end on words
synthesised by eSpeak NG). Prepare the dataset once (`pip install 'dl_arch[tfds]'`, it
needs TensorFlow to download and build), then:

    python launch.py --config=configs/speech_commands_tfds.py --workdir=runs/speech_commands
    python launch.py --config=configs/speech_commands_tfds.py:model=kws_crnn --workdir=runs/sc_crnn
    python launch.py --config=configs/speech_commands_tfds.py:smoke --workdir=/tmp/sc_smoke
"""

from __future__ import annotations

import ml_collections

from configs.base import base_config, parse_options, shrink_for_smoke
from configs.keyword_spotting import MODELS
from dl_arch.config.errors import ConfigError
from dl_arch.data.sources.speech_tfds import SPEECH_COMMANDS_CLASSES


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    opts = parse_options(arg, model="kws_cnn", steps=20000, lr=3e-3, batch=128)
    if opts.model not in MODELS:
        raise ConfigError(f"config option model='{opts.model}'; use one of {', '.join(MODELS)}")
    c = base_config()
    c.task.name = "keyword_spotting"
    c.model = dict(name=f"{opts.model}_tiny" if opts.smoke else opts.model,
                   num_classes=len(SPEECH_COMMANDS_CLASSES))
    c.dataset.name = "speech_commands"
    c.dataset.class_names = SPEECH_COMMANDS_CLASSES  # yes ... off, silence, unknown
    c.dataset.train_split = "train"
    c.dataset.eval_split = "validation"
    c.batch_size = opts.batch
    c.num_train_steps = opts.steps
    c.log_every_steps = 100
    c.eval_every_steps = max(opts.steps // 10, 1)
    c.checkpoint_every_steps = max(opts.steps // 10, 1)
    c.optimizer.name = "adamw"
    c.optimizer.learning_rate = opts.lr
    c.optimizer.weight_decay = 1e-4
    c.optimizer.schedule = "warmup_cosine"
    c.optimizer.warmup_steps = max(opts.steps // 40, 1)
    if opts.smoke:
        shrink_for_smoke(c, steps=4)
        c.batch_size = 8
        c.eval_batch_size = 8
        c.eval_max_batches = 1
    return c
