"""MLP on XOR: one hidden layer is enough for a problem no line can separate.

    python launch.py --config=configs/mlp_xor.py --workdir=runs/mlp_xor
    python launch.py --config=configs/mlp_xor.py:dataset=spirals,width=128 --workdir=runs/mlp_spirals
"""

from configs.base import base_config, parse_options, shrink_for_smoke


def get_config(arg: str | None = None):
    opts = parse_options(arg, dataset="xor", width=32, depth=2, activation="relu")
    c = base_config()
    c.model = dict(name="mlp", num_classes=2, width=opts.width, depth=opts.depth,
                   activation=opts.activation)
    c.dataset.name = opts.dataset  # xor | circles | spirals
    c.dataset.noise = 0.03  # std of the Gaussian jitter added to each point
    c.dataset.num_train_examples = None  # endless stream of fresh points
    c.dataset.num_eval_examples = 2000
    c.batch_size = 64
    c.num_train_steps = 600
    c.log_every_steps = 50
    c.eval_every_steps = 300
    c.checkpoint_every_steps = 300
    c.optimizer.name = "adam"
    c.optimizer.learning_rate = 1e-2
    c.optimizer.schedule = "cosine"
    if opts.smoke:
        shrink_for_smoke(c)
    return c
