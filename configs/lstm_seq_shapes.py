"""Sequential (pixel-by-pixel) image classification with an LSTM: `shapes` offline or MNIST.

    python launch.py --config=configs/lstm_seq_shapes.py --workdir=runs/seq_shapes
    python launch.py --config=configs/lstm_seq_shapes.py:dataset=mnist --workdir=runs/seq_mnist
    python launch.py --config=configs/lstm_seq_shapes.py:dataset=mnist,permute --workdir=runs/pmnist
    python launch.py --config=configs/lstm_seq_shapes.py:smoke --workdir=/tmp/seq_shapes_smoke

Each image (H, W, C) is read as H*W steps of C features (`permute`: in a fixed random
order), so the class must be remembered across hundreds of steps. Offline default: 8x8
`shapes` (64 steps, 4 classes); results at 8x8 and 16x16: docs/results/tuning_notes.md.
"""

from configs.base import base_config, parse_options, shrink_for_smoke


def get_config(arg: str | None = None):
    opts = parse_options(arg, dataset="shapes", cell="lstm", hidden=128, image_size=8,
                         permute=False, steps=2000, lr=3e-3)
    if opts.dataset not in ("shapes", "mnist"):
        raise ValueError(f"config option dataset='{opts.dataset}'; use shapes | mnist")
    c = base_config()
    c.task = dict(
        name="sequence_classification",
        pixel_sequence=True,  # (H, W, C) image -> (H*W, C) sequence
        pixel_permute=opts.permute,  # fixed random pixel order (permuted MNIST)
        permute_seed=0,
    )
    c.evaluators = ("gradient_flow",)  # gradient_flow.png: ||dL/dh_t|| over the pixels
    c.model = dict(name=f"{opts.cell}_classifier", num_outputs=4 if opts.dataset == "shapes"
                   else 10, hidden_size=opts.hidden, pool="last")
    if opts.dataset == "shapes":
        c.dataset.name = "shapes"
        c.dataset.image_size = opts.image_size  # sequence length = image_size ** 2
        c.dataset.num_classes = 4
        c.dataset.num_objects = 1
        c.dataset.channels = 1
        c.dataset.num_train_examples = None
        c.dataset.num_eval_examples = 1000
    else:
        c.dataset.name = "tfds:mnist"  # 28x28: 784 steps
        c.dataset.train_split = "train"
        c.dataset.eval_split = "test"
    c.batch_size = 64
    c.num_train_steps = opts.steps
    c.log_every_steps = 100
    c.eval_every_steps = 1000
    c.checkpoint_every_steps = 1000
    c.optimizer.name = "adam"
    c.optimizer.learning_rate = opts.lr
    c.optimizer.clip_norm = 1.0
    if opts.smoke:
        c.model.hidden_size = 16
        if opts.dataset == "shapes":
            c.dataset.image_size = 8
            c.dataset.num_eval_examples = 64
        shrink_for_smoke(c)
    return c
