"""MLP regression of y = sin(3x) + x/2 (offline): the regression task (MSE loss, MAE metric).

    python launch.py --config=configs/mlp_regression.py --workdir=runs/mlp_regression

Your own table (`data=` a .npz with arrays `inputs` (N, features) and `targets` (N,) or
(N, outputs), a .npy of features beside `targets.npy`, or hf:<name, folder or
csv/json/parquet file> whose column `targets` is the target and every other column a
feature; other names: --config.dataset.inputs_key / targets_key, or inputs_columns /
targets_columns for hf; `outputs` = the number of target values per example):

    python launch.py --config=configs/mlp_regression.py:data=mine.npz --workdir=runs/mine
"""

from configs.base import base_config, data_format, own_data, parse_options, shrink_for_smoke


def get_config(arg: str | None = None):
    opts = parse_options(arg, width=64, depth=2, activation="tanh", outputs=1, data="")
    c = base_config()
    c.task.name = "regression"
    c.model = dict(name="mlp", num_classes=opts.outputs, width=opts.width, depth=opts.depth,
                   activation=opts.activation)  # num_classes = output dimension
    c.dataset.name = "function1d"
    c.dataset.noise = 0.0  # std of the Gaussian noise on the targets
    c.dataset.num_train_examples = None
    c.dataset.num_eval_examples = 1000
    c.batch_size = 64
    c.num_train_steps = 1000
    c.eval_every_steps = 500
    c.checkpoint_every_steps = 500
    c.steps_per_call = 10  # a tiny model's step costs less than launching it
    c.optimizer.learning_rate = 1e-2
    c.optimizer.schedule = "cosine"
    if opts.data:
        columns = (dict(inputs_columns=("*",), targets_columns=("targets",))
                   if data_format(opts.data) == "hf" else dict(inputs_key="inputs", targets_key="targets"))
        own_data(c, opts.data, {"npz": "arrays", "npy": "arrays", "hf": "hf_dataset"}, **columns)
    if opts.smoke:
        shrink_for_smoke(c)
    return c
