"""Byte-level BERT sentiment classifier on TFDS imdb_reviews (prepare the dataset once).

    python launch.py --config=configs/bert_imdb.py --workdir=runs/bert_imdb
    python launch.py --config=configs/bert_imdb.py:init_from=runs/bert_pretrain_imdb ...
    python launch.py --config=configs/bert_imdb.py:smoke --workdir=/tmp/bert_imdb_smoke
    python launch.py --config=configs/bert_imdb.py:data=reviews.csv,classes=2 --workdir=runs/mine

Reviews are the first `max_len` bytes (byte vocabulary, 0 = padding); the classifier reads
the pooled first position. `init_from` loads an earlier run's encoder (e.g. a byte-level
MLM run of the same shape). `data=` trains on your CSV / TSV / JSONL of (text, label)
instead, tokenised the same way (the `text_table` source; 10% held out for eval).
"""

from configs.base import base_config, own_data, parse_options, shrink_for_smoke

TABLES = {"csv": "text_table", "tsv": "text_table", "jsonl": "text_table"}


def get_config(arg: str | None = None):
    opts = parse_options(arg, max_len=512, steps=6000, init_from="", data="", classes=2)
    c = base_config()
    c.task = dict(name="classification", input_key="inputs", label_smoothing=0.0, top_k=5)
    c.model = dict(name="bert_mini", vocab_size=256, max_len=opts.max_len, head="classify",
                   num_classes=opts.classes, dropout_rate=0.1, attention_impl="auto")
    c.dataset.name = "text_classification"
    c.dataset.tfds_name = "imdb_reviews"
    c.dataset.text_feature = "text"
    c.dataset.label_feature = "label"
    c.dataset.max_len = opts.max_len  # bytes kept per review
    c.dataset.train_split = "train"
    c.dataset.eval_split = "test"
    c.init_from = opts.init_from
    c.batch_size = 32
    c.num_train_steps = opts.steps
    c.log_every_steps = 100
    c.eval_every_steps = 2000
    c.checkpoint_every_steps = 2000
    c.optimizer.name = "adamw"
    c.optimizer.learning_rate = 2e-4
    c.optimizer.weight_decay = 0.01
    c.optimizer.schedule = "warmup_cosine"
    c.optimizer.warmup_steps = 300
    c.optimizer.clip_norm = 1.0
    if opts.data:
        own_data(c, opts.data, TABLES, tokenizer="bytes", num_classes=opts.classes)
    if opts.smoke:
        c.model.update(name="bert_tiny", num_layers=1, hidden=16, mlp_dim=32, max_len=32)
        c.dataset.max_len = 32
        shrink_for_smoke(c, steps=4)
        c.batch_size = 4
    return c
