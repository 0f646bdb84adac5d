"""Byte-level bidirectional GRU sentiment classifier on TFDS imdb_reviews (prepare it once).

    python launch.py --config=configs/gru_imdb.py --workdir=runs/gru_imdb
    python launch.py --config=configs/gru_imdb.py:smoke --workdir=/tmp/gru_imdb_smoke
    python launch.py --config=configs/gru_imdb.py:data=reviews.csv,classes=2 --workdir=runs/mine

Reviews are cut to their first `max_len` bytes; `lengths` keeps padding out of the result.
The offline counterpart is `lstm_long_range.py:cell=gru`. `data=` trains on your CSV / TSV /
JSONL of (text, label) instead (the `text_table` source: columns `text` and `label`, change
them with --config.dataset.text_column / label_column; 10% held out for eval).
"""

from configs.base import base_config, own_data, parse_options, shrink_for_smoke

TABLES = {"csv": "text_table", "tsv": "text_table", "jsonl": "text_table"}


def get_config(arg: str | None = None):
    opts = parse_options(arg, cell="gru", hidden=128, max_len=1024, steps=4000, data="",
                         classes=2)
    c = base_config()
    c.task = dict(name="sequence_classification")
    c.model = dict(
        name=f"{opts.cell}_classifier",
        num_outputs=opts.classes,  # classes (IMDB: negative / positive)
        vocab_size=256,  # bytes
        embed_dim=64,
        hidden_size=opts.hidden,
        bidirectional=True,
        pool="mean",  # mean over each review's real steps, both directions
        dropout=0.2,
    )
    c.dataset.name = "text_classification"
    c.dataset.tfds_name = "imdb_reviews"
    c.dataset.text_feature = "text"
    c.dataset.label_feature = "label"
    c.dataset.max_len = opts.max_len  # bytes kept per review
    c.dataset.train_split = "train"
    c.dataset.eval_split = "test"
    c.batch_size = 64
    c.num_train_steps = opts.steps
    c.log_every_steps = 100
    c.eval_every_steps = 1000
    c.checkpoint_every_steps = 1000
    c.optimizer.name = "adamw"
    c.optimizer.learning_rate = 2e-3
    c.optimizer.weight_decay = 1e-4
    c.optimizer.schedule = "warmup_cosine"
    c.optimizer.warmup_steps = 200
    c.optimizer.clip_norm = 1.0
    if opts.data:
        own_data(c, opts.data, TABLES, tokenizer="bytes", num_classes=opts.classes)
    if opts.smoke:
        c.model.hidden_size = 16
        c.model.embed_dim = 8
        c.dataset.max_len = 32
        shrink_for_smoke(c)
        c.batch_size = 4
    return c
