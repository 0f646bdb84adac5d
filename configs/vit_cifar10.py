"""Small-image Vision Transformer (patch 4 on 32x32) on TFDS cifar10 (prepare it once).

    python launch.py --config=configs/vit_cifar10.py --workdir=runs/vit_cifar10
    python launch.py --config=configs/vit_cifar10.py:smoke --workdir=/tmp/vit_c10_smoke
"""

from configs.base import base_config, parse_options, shrink_for_smoke


def get_config(arg: str | None = None):
    opts = parse_options(arg, variant="vit_small32", steps=30_000, pool="gap")
    c = base_config()
    c.task = dict(name="classification", label_smoothing=0.1, top_k=5)
    c.model = dict(name=opts.variant, num_classes=10, pool=opts.pool, dropout_rate=0.1,
                   attention_impl="auto")
    c.dataset.name = "tfds:cifar10"
    c.dataset.train_split = "train"
    c.dataset.eval_split = "test"
    c.dataset.augment = ("random_crop", "flip_lr")  # train only
    c.dataset.crop_padding = 4
    c.dataset.normalize_mean = (0.4914, 0.4822, 0.4465)  # CIFAR-10 channel statistics
    c.dataset.normalize_std = (0.2470, 0.2435, 0.2616)
    c.dataset.class_names = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog",
                             "horse", "ship", "truck")
    c.batch_size = 256
    c.num_train_steps = opts.steps
    c.log_every_steps = 100
    c.eval_every_steps = 2000
    c.checkpoint_every_steps = 2000
    c.optimizer.name = "adamw"
    c.optimizer.learning_rate = 1e-3
    c.optimizer.weight_decay = 0.05
    c.optimizer.schedule = "warmup_cosine"
    c.optimizer.warmup_steps = 1000
    c.optimizer.clip_norm = 1.0
    if opts.smoke:
        c.model.update(name="vit_nano", hidden=16, num_layers=1, num_heads=2, mlp_dim=32)
        shrink_for_smoke(c, steps=4)
        c.batch_size = 4
    return c
