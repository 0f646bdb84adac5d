"""ViT-B/16 (or Ti/S/B, patch 16/32) on TFDS imagenet2012 at 224x224 (prepare it once).
Images are resized/cropped to 224 by `dl_arch/data/augment.py` (Inception crop + flip when
training, resize + central crop in eval), with ViT's [-1, 1] input scaling.

    python launch.py --config=configs/vit_imagenet.py --workdir=runs/vit_b16
    python launch.py --config=configs/vit_imagenet.py:variant=vit_s16 --workdir=runs/vit_s16
    python launch.py --config=configs/vit_imagenet.py:smoke --workdir=/tmp/vit_in_smoke
"""

from configs.base import base_config, parse_options, shrink_for_smoke


def get_config(arg: str | None = None):
    opts = parse_options(arg, variant="vit_b16", steps=90_000, batch=4096)
    c = base_config()
    c.task = dict(name="classification", label_smoothing=0.1, top_k=5)
    c.model = dict(name=opts.variant, num_classes=1000, pool="cls", dropout_rate=0.1,
                   attention_impl="auto", scan=True, remat=False)
    c.dataset.name = "tfds:imagenet2012"
    c.dataset.train_split = "train"
    c.dataset.eval_split = "validation"
    c.dataset.resize_to = 224  # every image leaves the pipeline at 224x224
    c.dataset.crop_fraction = 0.875
    c.dataset.augment = ("random_resized_crop", "flip_lr")  # train only
    c.dataset.normalize_mean = (0.5, 0.5, 0.5)  # [0, 1] -> [-1, 1], as in big_vision
    c.dataset.normalize_std = (0.5, 0.5, 0.5)
    c.batch_size = opts.batch
    c.num_train_steps = opts.steps
    c.log_every_steps = 100
    c.eval_every_steps = 5000
    c.checkpoint_every_steps = 5000
    c.optimizer.name = "adamw"
    c.optimizer.learning_rate = 3e-3
    c.optimizer.b2 = 0.999
    c.optimizer.weight_decay = 0.3
    c.optimizer.schedule = "warmup_cosine"
    c.optimizer.warmup_steps = 10_000
    c.optimizer.clip_norm = 1.0
    if opts.smoke:
        c.model.update(name="vit_nano", hidden=16, num_layers=1, num_heads=2, mlp_dim=32,
                       patch_size=8, scan=False)
        c.dataset.resize_to = 32
        shrink_for_smoke(c, steps=4)
        c.batch_size = 4
    return c
