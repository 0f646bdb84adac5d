"""Character-level LSTM on TFDS tiny_shakespeare (char-rnn, 2 x 512; prepare the dataset once).

    python launch.py --config=configs/lstm_tiny_shakespeare.py --workdir=runs/shakespeare
    python launch.py --config=configs/lstm_tiny_shakespeare.py --workdir=runs/shakespeare \
        --sample --config.sample.prompt="ROMEO:" --config.sample.top_k=10
    python launch.py --config=configs/lstm_tiny_shakespeare.py:smoke --workdir=/tmp/ts_smoke

`lm1b=True` trains on the text of TFDS lm1b instead (its first `max_bytes` bytes).
"""

import ml_collections

from configs.base import base_config, parse_options, shrink_for_smoke


def get_config(arg: str | None = None):
    opts = parse_options(arg, hidden=512, layers=2, seq_len=128, steps=5000, lm1b=False)
    c = base_config()
    c.task = dict(name="language_model", carry_state=True)  # truncated BPTT
    c.evaluators = ("text_samples",)  # samples.txt at the end of the run
    c.text_samples = ml_collections.ConfigDict(dict(length=300, temperature=0.8, top_k=0))
    c.model = dict(name="lstm_lm", vocab_size=256, embed_dim=512, hidden_size=opts.hidden,
                   num_layers=opts.layers, dropout=0.2)
    c.dataset.name = "text"
    c.dataset.tfds_name = "lm1b" if opts.lm1b else "tiny_shakespeare"
    c.dataset.tfds_feature = "text"  # the string feature joined into one byte stream
    c.dataset.train_split = "train"
    c.dataset.eval_split = "validation" if not opts.lm1b else "test"
    c.dataset.max_bytes = 50_000_000 if opts.lm1b else 0  # lm1b: cap the stream in memory
    c.dataset.seq_len = opts.seq_len
    c.batch_size = 64
    c.dataset.shuffle = False  # TBPTT: windows in stream order
    c.dataset.stream_batch_size = c.batch_size
    c.num_train_steps = opts.steps
    c.log_every_steps = 100
    c.eval_every_steps = 1000
    c.checkpoint_every_steps = 1000
    c.optimizer.name = "adam"
    c.optimizer.learning_rate = 2e-3
    c.optimizer.schedule = "warmup_cosine"
    c.optimizer.warmup_steps = 200
    c.optimizer.clip_norm = 5.0
    c.sample = dict(prompt="ROMEO:", length=500, temperature=0.8, top_k=0, num_samples=1, seed=0)
    if opts.smoke:
        c.model.hidden_size = c.model.embed_dim = 32
        c.model.num_layers = 1
        c.dataset.seq_len = 16
        c.text_samples.length = 20
        shrink_for_smoke(c)
        c.batch_size = 4
        c.dataset.stream_batch_size = c.batch_size
    return c
