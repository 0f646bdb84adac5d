"""MLP on XOR: one hidden layer is enough for a problem no line can separate.

    python launch.py --config=configs/mlp_xor.py --workdir=runs/mlp_xor
    python launch.py --config=configs/mlp_xor.py:dataset=spirals,width=128 --workdir=runs/mlp_spirals

Your own table (`data=` a .npz with arrays `inputs` (N, features) and `label` (N,), a .npy
of features beside `label.npy`, or hf:<name, folder or csv/json/parquet file> whose column
`label` is the class and every other column a feature; other names:
--config.dataset.inputs_key / label_key, or inputs_columns / label_column for hf):

    python launch.py --config=configs/mlp_xor.py:data=hf:table.csv,num_classes=3 --workdir=runs/mine
"""

from configs.base import base_config, data_format, own_data, parse_options, shrink_for_smoke


def get_config(arg: str | None = None):
    opts = parse_options(arg, dataset="xor", width=32, depth=2, activation="relu", num_classes=2,
                         data="")
    c = base_config()
    c.model = dict(name="mlp", num_classes=opts.num_classes, width=opts.width, depth=opts.depth,
                   activation=opts.activation)
    c.dataset.name = opts.dataset  # xor | circles | spirals
    c.dataset.noise = 0.03  # std of the Gaussian jitter added to each point
    c.dataset.num_train_examples = None  # endless stream of fresh points
    c.dataset.num_eval_examples = 2000
    c.batch_size = 64
    c.num_train_steps = 600
    c.log_every_steps = 50
    c.eval_every_steps = 300
    c.checkpoint_every_steps = 300
    c.steps_per_call = 10  # a 2-32-32-2 MLP's step costs less than launching it
    c.optimizer.name = "adam"
    c.optimizer.learning_rate = 1e-2
    c.optimizer.schedule = "cosine"
    if opts.data:
        columns = (dict(inputs_columns=("*",), label_column="label") if data_format(opts.data) == "hf"
                   else dict(inputs_key="inputs", label_key="label"))
        own_data(c, opts.data, {"npz": "arrays", "npy": "arrays", "hf": "hf_dataset"},
                 num_classes=opts.num_classes, **columns)
    if opts.smoke:
        shrink_for_smoke(c)
    return c
