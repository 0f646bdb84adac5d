"""A single-layer perceptron on XOR: it cannot beat chance, whatever the training.

    python launch.py --config=configs/perceptron_xor.py --workdir=runs/perceptron_xor
"""

from configs.base import base_config, parse_options, shrink_for_smoke


def get_config(arg: str | None = None):
    opts = parse_options(arg, dataset="xor")
    c = base_config()
    c.model = dict(name="perceptron", num_classes=2)
    c.dataset.name = opts.dataset  # xor | circles | spirals
    c.dataset.noise = 0.03
    c.dataset.num_train_examples = None
    c.dataset.num_eval_examples = 2000
    c.batch_size = 64
    c.num_train_steps = 600
    c.log_every_steps = 50
    c.eval_every_steps = 300
    c.checkpoint_every_steps = 300
    c.steps_per_call = 10  # a tiny model's step costs less than launching it
    c.optimizer.learning_rate = 1e-2
    c.optimizer.schedule = "cosine"
    if opts.smoke:
        shrink_for_smoke(c)
    return c
