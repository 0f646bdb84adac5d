"""Byte-level LSTM language model on local text, offline: truncated BPTT, sampling.

    python launch.py --config=configs/lstm_text.py --workdir=runs/lstm_text
    python launch.py --config=configs/lstm_text.py --workdir=runs/lstm_text --sample \
        --config.sample.prompt="def " --config.sample.temperature=0.7 --config.sample.top_k=20
    python launch.py --config=configs/lstm_text.py:path=~/notes/*.md --workdir=runs/notes
    python launch.py --config=configs/lstm_text.py:data=~/book.txt --workdir=runs/book
    python launch.py --config=configs/lstm_text.py:smoke --workdir=/tmp/lstm_text_smoke

Default corpus: this Python installation's standard-library `.py` files (present wherever
the package runs); files go to train or eval by a hash of their path. `data=` (like
`path=`) trains on your own text: a file or glob, any extension, read as bytes; one file's
last 5% is the eval split. With `tbptt` (default) row b of each batch continues row b of
the previous one and the LSTM state is carried over.
"""

import os

import ml_collections

from configs.base import base_config, data_format, own_data, parse_options, shrink_for_smoke


def get_config(arg: str | None = None):
    opts = parse_options(arg, path="", cell="lstm", hidden=512, layers=1, seq_len=128,
                         tbptt=True, steps=3000, data="")
    c = base_config()
    c.task = dict(
        name="language_model",
        carry_state=opts.tbptt,  # truncated BPTT: carry the state across batches
    )
    c.evaluators = ("text_samples",)  # samples.txt at the end of the run
    c.text_samples = ml_collections.ConfigDict(dict(
        length=300,  # bytes sampled, continuing the first 32 bytes of an eval window
        temperature=0.8, top_k=0, seed=0))
    c.model = dict(
        name=f"{opts.cell}_lm",
        vocab_size=256,  # bytes
        embed_dim=64,
        hidden_size=opts.hidden,
        num_layers=opts.layers,
        dropout=0.0,
    )
    c.dataset.name = "text"
    c.dataset.path = os.path.expanduser(opts.path)  # file or glob; '' = stdlib .py files
    c.dataset.split_by = "auto"  # auto: one file by position, several by hash | hash | position
    c.dataset.eval_fraction = 0.05
    c.dataset.seq_len = opts.seq_len  # BPTT window
    c.dataset.max_bytes = 0  # 0 = all text
    c.batch_size = 32
    c.dataset.shuffle = not opts.tbptt  # TBPTT needs windows in stream order
    c.dataset.stream_batch_size = c.batch_size if opts.tbptt else 0
    c.num_train_steps = opts.steps
    c.log_every_steps = 100
    c.eval_every_steps = 1000
    c.eval_max_batches = 50  # 50 x 32 windows of held-out files
    c.checkpoint_every_steps = 1000
    c.optimizer.name = "adam"
    c.optimizer.learning_rate = 2e-3
    c.optimizer.schedule = "warmup_cosine"
    c.optimizer.warmup_steps = 100
    c.optimizer.clip_norm = 1.0
    c.sample = dict(prompt="def ", length=400, temperature=0.8, top_k=0, num_samples=1, seed=0)
    if opts.smoke:
        c.model.hidden_size = 32
        c.model.embed_dim = 16
        c.dataset.seq_len = 32
        c.dataset.max_bytes = 200_000
        c.text_samples.length = 20
        shrink_for_smoke(c)
        c.dataset.stream_batch_size = c.batch_size if opts.tbptt else 0
    if opts.data:  # any file (or glob) is text: the same `text` source on its bytes
        path = os.path.expanduser(opts.data)
        own_data(c, path, {data_format(path): "text"})
    return c
