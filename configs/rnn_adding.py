"""Simple RNN on the adding problem (Hochreiter & Schmidhuber 1997), sequence length `T`.

    python launch.py --config=configs/rnn_adding.py:T=50 --workdir=runs/rnn_adding_T50
    python launch.py --config=configs/rnn_adding.py:smoke --workdir=/tmp/rnn_adding_smoke

Regression of the sum of the two marked values; predicting the mean (1.0) gives MSE 0.167,
"solved" is MSE < 0.01. `lstm_adding.py` / `gru_adding.py` are the same run with another cell.
"""

from configs.base import base_config, parse_options, shrink_for_smoke


def adding_config(cell: str, arg: str | None):
    """The adding-problem config shared by the three cells."""
    opts = parse_options(arg, T=100, hidden=128, steps=3000, lr=2e-3, batch=64)
    c = base_config()
    c.task = dict(
        name="sequence_classification",
        objective="regression",  # MSE on the sum
        solved_tolerance=0.04,  # eval/solved: fraction of sums predicted within +-0.04
        gradient_flow=True,  # plot mean ||dL/dh_t|| over t at every eval (gradient_flow.png)
    )
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
    return c


def get_config(arg: str | None = None):
    return adding_config("rnn", arg)
