"""A Transformer encoder on the adding problem: the attention counterpart of `rnn_adding.py`.

    python launch.py --config=configs/transformer_adding.py:T=200 --workdir=runs/tf_adding_T200
    python launch.py --config=configs/transformer_adding.py:smoke --workdir=/tmp/tf_adding_smoke

Same data, objective, metrics and optimiser as the recurrent cells' configs (`hidden` sets
the model width here); a 2-layer pre-LN encoder reads the (value, marker) pairs with
sinusoidal positions and a summary token, and regresses the sum from it.
"""

from configs.base import parse_options
from configs.rnn_adding import adding_config


def get_config(arg: str | None = None):
    c = adding_config("lstm", arg)
    opts = parse_options(arg, T=100, hidden=128, steps=3000, lr=2e-3, batch=64)
    width = 16 if opts.smoke else opts.hidden
    c.model = dict(name="transformer_classifier", num_outputs=1, emb_dim=width,
                   num_layers=1 if opts.smoke else 2, num_heads=2 if opts.smoke else 4,
                   mlp_dim=2 * width, pool="cls")
    c.task.gradient_flow = False  # dL/dh_t is a recurrent-state diagnostic
    c.optimizer.learning_rate = opts.lr / 2  # attention trains less stably at the cells' 2e-3
    c.optimizer.schedule = "warmup_cosine"
    c.optimizer.warmup_steps = max(opts.steps // 20, 1)
    return c
