"""MLP on the procedural `shapes` images (offline): the default single run.

    python launch.py --config=configs/mlp_shapes.py --workdir=runs/mlp_shapes
    python launch.py --config=configs/mlp_shapes.py:smoke --workdir=/tmp/mlp_shapes_smoke

Your own images (`data=` a .npz with arrays `image` (N, H, W[, C]) and `label` (N,), a .npy
of images beside `label.npy`, or hf:<dataset name or folder> with columns `image`, `label`;
other names: --config.dataset.image_key / label_key, or image_column / label_column for hf):

    python launch.py --config=configs/mlp_shapes.py:data=mine.npz,num_classes=10 --workdir=runs/mine
"""

from configs.base import base_config, data_format, own_data, parse_options, shrink_for_smoke


def get_config(arg: str | None = None):
    opts = parse_options(arg, image_size=32, num_classes=4, width=256, depth=2, data="")
    c = base_config()
    c.model = dict(name="mlp", num_classes=opts.num_classes, width=opts.width, depth=opts.depth,
                   activation="relu", dropout=0.0)
    c.dataset.name = "shapes"
    c.dataset.image_size = opts.image_size  # square RGB images
    c.dataset.num_classes = opts.num_classes  # first k of circle, square, triangle, star, ...
    c.dataset.num_objects = 1
    c.dataset.num_train_examples = None  # endless: every batch is fresh
    c.dataset.num_eval_examples = 1000
    c.batch_size = 128
    c.num_train_steps = 1500
    c.log_every_steps = 100
    c.eval_every_steps = 500
    c.checkpoint_every_steps = 500
    c.optimizer.name = "adam"
    c.optimizer.learning_rate = 1e-3
    c.optimizer.schedule = "warmup_cosine"
    c.optimizer.warmup_steps = 100
    if opts.data:  # labels are checked against num_classes (kept from the section above)
        columns = (dict(image_column="image", label_column="label") if data_format(opts.data) == "hf"
                   else dict(image_key="image", label_key="label"))
        own_data(c, opts.data, {"npz": "arrays", "npy": "arrays", "hf": "hf_dataset"}, **columns)
    if opts.smoke:
        shrink_for_smoke(c)
    return c
