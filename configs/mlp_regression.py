"""MLP regression of y = sin(3x) + x/2 (offline): the regression task (MSE loss, MAE metric).

    python launch.py --config=configs/mlp_regression.py --workdir=runs/mlp_regression
"""

from configs.base import base_config, parse_options, shrink_for_smoke


def get_config(arg: str | None = None):
    opts = parse_options(arg, width=64, depth=2, activation="tanh")
    c = base_config()
    c.task.name = "regression"
    c.model = dict(name="mlp", num_classes=1, width=opts.width, depth=opts.depth,
                   activation=opts.activation)  # num_classes = output dimension
    c.dataset.name = "function1d"
    c.dataset.noise = 0.0  # std of the Gaussian noise on the targets
    c.dataset.num_train_examples = None
    c.dataset.num_eval_examples = 1000
    c.batch_size = 64
    c.num_train_steps = 1000
    c.eval_every_steps = 500
    c.checkpoint_every_steps = 500
    c.optimizer.learning_rate = 1e-2
    c.optimizer.schedule = "cosine"
    if opts.smoke:
        shrink_for_smoke(c)
    return c
