"""LSTM on the copy-memory task (Arjovsky et al. 2016): recall 10 symbols after `T` blanks.

    python launch.py --config=configs/lstm_copy.py:T=50 --workdir=runs/lstm_copy_T50
    python launch.py --config=configs/lstm_copy.py:smoke --workdir=/tmp/lstm_copy_smoke

The memoryless baseline (blanks, then uniform guesses) has cross-entropy
10 ln 8 / (T + 20) and recall accuracy 1/8; eval/accuracy is measured on the 10 recall steps.
Results and the learning-rate choice: docs/results/tuning_notes.md.
"""

from configs.base import base_config, parse_options, shrink_for_smoke


def get_config(arg: str | None = None):
    opts = parse_options(arg, T=50, cell="lstm", hidden=128, steps=5000, lr=3e-3)
    c = base_config()
    # per-step targets: cross-entropy at every step
    c.task = dict(name="sequence_classification")
    c.model = dict(
        name=f"{opts.cell}_classifier",
        num_outputs=10,  # blank, 8 symbols, delimiter
        vocab_size=10,  # token inputs, embedded
        embed_dim=16,
        hidden_size=opts.hidden,
        pool="per_step",  # one prediction per time step
    )
    c.dataset.name = "copy_memory"
    c.dataset.T = opts.T  # blank steps between the symbols and the delimiter
    c.dataset.num_symbols = 8
    c.dataset.copy_len = 10
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
        c.dataset.T = min(opts.T, 10)
        c.model.hidden_size = 16
        c.dataset.num_eval_examples = 64
        shrink_for_smoke(c)
    return c
