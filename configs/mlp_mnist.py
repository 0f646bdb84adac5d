"""MLP on TFDS MNIST (needs the dataset prepared once: pip install 'dl_arch[tfds]').

    python launch.py --config=configs/mlp_mnist.py --workdir=runs/mlp_mnist
"""

from configs.base import base_config, parse_options, shrink_for_smoke


def get_config(arg: str | None = None):
    opts = parse_options(arg, width=512, depth=2)
    c = base_config()
    c.model = dict(name="mlp", num_classes=10, width=opts.width, depth=opts.depth,
                   activation="relu", dropout=0.1)
    c.dataset.name = "tfds:mnist"
    c.dataset.train_split = "train"
    c.dataset.eval_split = "test"
    c.batch_size = 128
    c.num_train_steps = 5000
    c.log_every_steps = 100
    c.eval_every_steps = 1000
    c.checkpoint_every_steps = 1000
    c.optimizer.name = "adamw"
    c.optimizer.learning_rate = 1e-3
    c.optimizer.weight_decay = 1e-4
    c.optimizer.schedule = "warmup_cosine"
    c.optimizer.warmup_steps = 200
    if opts.smoke:
        shrink_for_smoke(c)
    return c
