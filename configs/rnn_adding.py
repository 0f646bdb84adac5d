"""Simple RNN on the adding problem (Hochreiter & Schmidhuber 1997), sequence length `T`.

    python launch.py --config=configs/rnn_adding.py:T=50 --workdir=runs/rnn_adding_T50
    python launch.py --config=configs/rnn_adding.py:smoke --workdir=/tmp/rnn_adding_smoke

Regression of the sum of the two marked values; predicting the mean (1.0) gives MSE 0.167,
"solved" is MSE < 0.01. `lstm_adding.py` / `gru_adding.py` are the same run with another cell.
"""

from configs.base import base_config, parse_options, shrink_for_smoke


def adding_config(cell: str, arg: str | None):
    """The adding-problem config shared by the three cells and the Transformer encoder."""
    opts = parse_options(arg, T=100, hidden=128, steps=3000, lr=2e-3, batch=64)
    c = base_config()
    c.task = dict(
        name="sequence_regression",  # MSE on the sum
        solved_tolerance=0.04,  # eval/solved: fraction of sums predicted within +-0.04
    )
    c.evaluators = ("gradient_flow",)  # plot mean ||dL/dh_t|| over t at every eval
    c.model = dict(
        name=f"{cell}_classifier",
        num_outputs=1,  # the predicted sum
        hidden_size=opts.hidden,
        num_layers=1,
        pool="last",  # read the final hidden state
    )
    c.dataset.name = "adding"
    c.dataset.T = opts.T  # sequence length: the distance the memory must span
    c.dataset.num_train_examples = None  # endless: fresh sequences every batch
    c.dataset.num_eval_examples = 1000
    c.batch_size = opts.batch
    c.num_train_steps = opts.steps
    c.log_every_steps = 100
    c.eval_every_steps = 1000
    c.checkpoint_every_steps = 1000
    c.optimizer.name = "adam"
    c.optimizer.learning_rate = opts.lr
    c.optimizer.clip_norm = 1.0  # exploding gradients of long BPTT chains
    if opts.smoke:
        c.dataset.T = min(opts.T, 20)
        c.model.hidden_size = 16
        c.dataset.num_eval_examples = 64
        shrink_for_smoke(c)
    if cell == "transformer":
        _use_transformer(c, opts)
    return c


def _use_transformer(c, opts) -> None:
    """A 2-layer pre-LN encoder of width `hidden` reading the (value, marker) pairs with a
    summary token, at half the cells' learning rate with warmup (attention is less stable)."""
    width = c.model.hidden_size
    c.model = dict(name="transformer_classifier", num_outputs=1, emb_dim=width,
                   num_layers=1 if opts.smoke else 2, num_heads=2 if opts.smoke else 4,
                   mlp_dim=2 * width, pool="cls")
    c.evaluators = ()  # dL/dh_t (gradient_flow) is a recurrent-state diagnostic
    c.optimizer.learning_rate = opts.lr / 2
    c.optimizer.schedule = "warmup_cosine"
    c.optimizer.warmup_steps = max(opts.steps // 20, 1)


def get_config(arg: str | None = None):
    return adding_config("rnn", arg)
