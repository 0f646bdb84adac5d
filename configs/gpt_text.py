"""Byte-level GPT on local text (offline: this Python installation's standard library).

    python launch.py --config=configs/gpt_text.py --workdir=runs/gpt_text
    python launch.py --config=configs/gpt_text.py --workdir=runs/gpt_text --sample \
        --config.sample.prompt="def " --config.sample.top_p=0.9
    python launch.py --config=configs/gpt_text.py:smoke --workdir=/tmp/gpt_smoke

The same `text` source and loss as the RNN language models (`lstm_text.py`), so their
bits per character compare directly; generation uses the KV cache (`causal_lm`).
`path=...` or `data=...` trains on your own text instead (a file or a glob of files, any
extension: their bytes; one file's last 5% is the eval split, several files are split by a
hash of their names):

    python launch.py --config=configs/gpt_text.py:data=~/notes.txt --workdir=runs/notes
"""

import os

import ml_collections

from configs.base import base_config, data_format, own_data, parse_options, shrink_for_smoke


def get_config(arg: str | None = None):
    opts = parse_options(arg, model="gpt_micro", seq_len=128, steps=3000, path="",
                         position="learned", data="")
    c = base_config()
    c.task = dict(name="causal_lm")
    c.evaluators = ("text_samples",)  # samples.txt at the end of the run
    c.text_samples = ml_collections.ConfigDict(dict(length=100, temperature=0.8, top_p=0.95))
    c.model = dict(name=opts.model, vocab_size=256, max_len=256, dropout_rate=0.1,
                   position=opts.position,  # learned | rope
                   attention_impl="auto", scan=False, remat=False)
    c.dataset.name = "text"
    c.dataset.path = opts.path  # '' = the standard library's .py files
    c.dataset.split_by = "auto"  # one file: its tail is eval; several: whole files by hash
    c.dataset.eval_fraction = 0.05
    c.dataset.max_bytes = 20_000_000
    c.dataset.seq_len = opts.seq_len
    c.batch_size = 32
    c.num_train_steps = opts.steps
    c.eval_max_batches = 50
    c.log_every_steps = 100
    c.eval_every_steps = 1000
    c.checkpoint_every_steps = 1000
    c.optimizer.name = "adamw"
    c.optimizer.learning_rate = 1e-3
    c.optimizer.weight_decay = 0.1
    c.optimizer.b2 = 0.99
    c.optimizer.schedule = "warmup_cosine"
    c.optimizer.warmup_steps = 200
    c.optimizer.clip_norm = 1.0
    c.sample = dict(prompt="def ", length=200, temperature=0.8, top_k=0, top_p=0.95,
                    num_samples=1, seed=0)
    if opts.smoke:
        c.model.name = "gpt_nano"
        c.model.num_layers = 1
        c.model.max_len = 64
        c.dataset.seq_len = 32
        c.dataset.max_bytes = 200_000
        c.text_samples.length = 16
        c.sample.length = 16
        shrink_for_smoke(c)
        c.batch_size = 8
    if opts.data:  # any file (or glob) is text: the same `text` source on its bytes
        path = os.path.expanduser(opts.data)
        own_data(c, path, {data_format(path): "text"})
    return c
