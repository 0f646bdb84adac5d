"""GRU on the adding problem, sequence length `T` (same run as `rnn_adding.py`).

    python launch.py --config=configs/gru_adding.py:T=200 --workdir=runs/gru_adding_T200
    python launch.py --config=configs/gru_adding.py:smoke --workdir=/tmp/gru_adding_smoke
"""

from configs.rnn_adding import adding_config


def get_config(arg: str | None = None):
    return adding_config("gru", arg)
