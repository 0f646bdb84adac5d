"""LeNet-5 on TFDS MNIST (prepare the dataset once: pip install 'dl_arch[tfds]').

    python launch.py --config=configs/lenet5_mnist.py --workdir=runs/lenet5_mnist
    python launch.py --config=configs/lenet5_mnist.py:smoke --workdir=/tmp/lenet5_mnist_smoke

The first convolution is padded by 2 (stem="small"), so 28x28 digits reach the classic
5x5x16 map: 61,706 parameters, as LeCun et al.'s 32x32 layout.
"""

from __future__ import annotations

import ml_collections

from configs.base import base_config, parse_options, shrink_for_smoke


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    opts = parse_options(arg, steps=6000, activation="relu", pooling="max")
    c = base_config()
    c.task = dict(name="image_classification", top_k=5)
    c.model = dict(name="lenet5", num_classes=10, stem="small",
                   activation=opts.activation,  # relu | tanh (1998)
                   pooling=opts.pooling)  # max | avg (1998 subsampling)
    c.dataset.name = "tfds:mnist"
    c.dataset.train_split = "train"
    c.dataset.eval_split = "test"
    c.dataset.augment = ("random_crop",)  # small shifts; no flips for digits
    c.dataset.crop_padding = 2
    c.dataset.normalize_mean = (0.1307,)  # MNIST pixel statistics
    c.dataset.normalize_std = (0.3081,)
    c.batch_size = 128
    c.num_train_steps = opts.steps  # ~13 epochs
    c.log_every_steps = 100
    c.eval_every_steps = 1000
    c.checkpoint_every_steps = 1000
    c.optimizer.name = "adam"
    c.optimizer.learning_rate = 2e-3
    c.optimizer.schedule = "warmup_cosine"
    c.optimizer.warmup_steps = 200
    c.evaluators = ("confusion_matrix", "feature_maps")  # filters + feature maps at the end
    c.feature_maps = ml_collections.ConfigDict({"layers": ("stage1", "stage2"), "num_images": 4})
    if opts.smoke:
        c.model.name = "lenet5_tiny"
        shrink_for_smoke(c, steps=6)
        c.batch_size = 8
        c.eval_batch_size = 8
    return c
