"""Keyword spotting on command words synthesised offline by eSpeak NG (`spoken_commands`).

Twenty keywords (the ten digits, then yes, no, up, down, left, right, stop, go, on, off), one
per one-second clip, spoken by English eSpeak NG voices with drawn rate, pitch, gain and
noise; the eval split speaks with voices training never hears. Log-mel features (40 bins,
10 ms frames) with SpecAugment; a small CNN (`kws_cnn`) or the same with a GRU on top
(`kws_crnn`); softmax cross-entropy, accuracy and the confusion matrix.

    python launch.py --config=configs/keyword_spotting.py --workdir=runs/kws_cnn
    python launch.py --config=configs/keyword_spotting.py:model=kws_crnn --workdir=runs/kws_crnn
    python launch.py --config=configs/keyword_spotting.py:smoke --workdir=/tmp/kws_smoke
    python launch.py --config=configs/keyword_spotting.py:data=/data/my_words --workdir=runs/mine

`data=FOLDER`: your clips and a `metadata.csv` with columns file,label (see
dl_arch/data/sources/audio_folder.py); the classes are the CSV's labels, 10% is held out.
eSpeak NG is GPL-licensed and optional: pip install 'dl_arch[speech]'.
"""

from __future__ import annotations

import os

import ml_collections

from configs.base import base_config, own_data, parse_options, shrink_for_smoke
from dl_arch.config.errors import ConfigError
from dl_arch.data.sources.spoken_words import KEYWORDS

MODELS = ("kws_cnn", "kws_crnn")


def folder_classes(path: str) -> tuple[str, ...]:
    """The keyword classes of a user's audio folder: the labels of its metadata.csv, sorted."""
    from dl_arch.data.sources.audio_folder import label_names, read_rows

    target, rows = read_rows(os.path.expanduser(path), "path", "metadata.csv", "label")
    return label_names([label for _, _, label in rows])


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    opts = parse_options(arg, model="kws_cnn", steps=1000, lr=3e-3, batch=64, data="")
    if opts.model not in MODELS:
        raise ConfigError(f"config option model='{opts.model}'; use one of {', '.join(MODELS)}")
    classes = folder_classes(opts.data) if opts.data else KEYWORDS
    c = base_config()
    c.task.name = "keyword_spotting"
    c.model = dict(name=f"{opts.model}_tiny" if opts.smoke else opts.model,
                   num_classes=len(classes))
    c.dataset.name = "spoken_commands"
    c.dataset.class_names = classes
    c.dataset.num_train_examples = None  # endless: every utterance is synthesised fresh
    c.dataset.num_eval_examples = 1000
    c.batch_size = opts.batch
    c.num_train_steps = opts.steps
    c.log_every_steps = 50
    c.eval_every_steps = max(opts.steps // 5, 1)
    c.checkpoint_every_steps = max(opts.steps // 5, 1)
    c.optimizer.name = "adamw"
    c.optimizer.learning_rate = opts.lr
    c.optimizer.weight_decay = 1e-4
    c.optimizer.schedule = "warmup_cosine"
    c.optimizer.warmup_steps = max(opts.steps // 20, 1)
    if opts.data:
        own_data(c, opts.data, {"folder": "audio_folder"}, column="label", class_names=classes,
                 num_classes=len(classes))
    if opts.smoke:
        shrink_for_smoke(c, steps=4)
        c.batch_size = 8
        c.eval_batch_size = 8
        c.eval_max_batches = 1
        if not opts.data:
            c.dataset.num_eval_examples = 8
    return c
