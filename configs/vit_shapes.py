"""Vision Transformer on the procedural `shapes` images (offline, 32x32, patch 4).

    python launch.py --config=configs/vit_shapes.py --workdir=runs/vit_shapes
    python launch.py --config=configs/vit_shapes.py:pool=cls --workdir=runs/vit_shapes_cls
    python launch.py --config=configs/vit_shapes.py:smoke --workdir=/tmp/vit_smoke
    python launch.py --config=configs/vit_shapes.py:data=/data/my_images --workdir=runs/vit_mine

`data=PATH`: your images instead of `shapes` (a folder with one sub-folder per class, an
.npz of `image` and `label` arrays, or hf:<dataset>), fitted to 32x32 RGB; the model gets
as many classes as the data has (see configs/cnn_shapes.py: own_images).
"""

from configs.base import base_config, own_images, parse_options, shrink_for_smoke
from dl_arch.data.image_files import data_classes


def get_config(arg: str | None = None):
    opts = parse_options(arg, variant="vit_small32", pool="gap", layers=4, hidden=128,
                         steps=2000, num_classes=4, data="")
    classes = data_classes(opts.data)  # the model's outputs follow the user's classes
    num_classes = len(classes) if classes else opts.num_classes
    c = base_config()
    c.task = dict(name="classification", label_smoothing=0.0, top_k=2)
    c.model = dict(name=opts.variant, num_classes=num_classes, patch_size=4,
                   hidden=opts.hidden, num_layers=opts.layers, num_heads=4,
                   mlp_dim=2 * opts.hidden, pool=opts.pool,  # gap | cls
                   dropout_rate=0.0, attention_impl="auto")
    c.dataset.name = "shapes"
    c.dataset.image_size = 32
    c.dataset.num_classes = opts.num_classes
    c.dataset.num_objects = 1
    c.dataset.num_train_examples = None
    c.dataset.num_eval_examples = 1000
    c.batch_size = 128
    c.num_train_steps = opts.steps
    c.log_every_steps = 100
    c.eval_every_steps = 500
    c.checkpoint_every_steps = 500
    c.optimizer.name = "adamw"
    c.optimizer.learning_rate = 1e-3
    c.optimizer.weight_decay = 0.05
    c.optimizer.schedule = "warmup_cosine"
    c.optimizer.warmup_steps = 200
    c.optimizer.clip_norm = 1.0
    if opts.smoke:
        c.model.update(hidden=32, num_layers=1, num_heads=2, mlp_dim=64)
        c.dataset.num_eval_examples = 64
        shrink_for_smoke(c)
        c.batch_size = 16
    if opts.data:
        own_images(c, opts.data, classes, image_size=32, channels=3, num_classes=num_classes)
    return c
