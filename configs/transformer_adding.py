"""A Transformer encoder on the adding problem: the attention counterpart of `rnn_adding.py`.

    python launch.py --config=configs/transformer_adding.py:T=200 --workdir=runs/tf_adding_T200
    python launch.py --config=configs/transformer_adding.py:smoke --workdir=/tmp/tf_adding_smoke

Same data, objective, metrics and optimiser as the recurrent cells' configs (`hidden` sets
the model width here); a 2-layer pre-LN encoder reads the (value, marker) pairs with
sinusoidal positions and a summary token, and regresses the sum from it.
"""

from configs.rnn_adding import adding_config


def get_config(arg: str | None = None):
    return adding_config("transformer", arg)
