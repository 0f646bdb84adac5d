"""Offline sequence classification whose evidence is ~`T` tokens apart (variable lengths).

    python launch.py --config=configs/lstm_long_range.py --workdir=runs/lstm_long_range
    python launch.py --config=configs/lstm_long_range.py:cell=rnn --workdir=runs/rnn_long_range
    python launch.py --config=configs/lstm_long_range.py:smoke --workdir=/tmp/lr_smoke

Label = whether the key token near the start equals the key near the end (chance: 50%).
"""

from configs.base import base_config, parse_options, shrink_for_smoke


def get_config(arg: str | None = None):
    opts = parse_options(arg, T=40, cell="lstm", hidden=64, steps=2000, lr=2e-3)
    c = base_config()
    c.task = dict(name="sequence_classification")
    c.evaluators = ("gradient_flow",)  # gradient_flow.png: ||dL/dh_t|| over t
    c.model = dict(
        name=f"{opts.cell}_classifier",
        num_outputs=2,
        vocab_size=16,  # pad 0, keys 1-2, filler 3-15
        embed_dim=16,
        hidden_size=opts.hidden,
        pool="last",  # final state at each sequence's own length
    )
    c.dataset.name = "long_range_classification"
    c.dataset.T = opts.T  # maximum length; sequences are padded to it
    c.dataset.min_length = opts.T // 2
    c.dataset.vocab_size = 16
    c.dataset.num_train_examples = None
    c.dataset.num_eval_examples = 1000
    c.batch_size = 64
    c.num_train_steps = opts.steps
    c.log_every_steps = 100
    c.eval_every_steps = 1000
    c.checkpoint_every_steps = 1000
    c.optimizer.name = "adam"
    c.optimizer.learning_rate = opts.lr
    c.optimizer.clip_norm = 1.0
    if opts.smoke:
        c.dataset.T = min(opts.T, 20)
        c.dataset.min_length = 10
        c.model.hidden_size = 16
        c.dataset.num_eval_examples = 64
        shrink_for_smoke(c)
    return c
