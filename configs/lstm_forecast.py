"""LSTM multi-step forecasting of procedural series, against the naive last-value forecast.

    python launch.py --config=configs/lstm_forecast.py:series=mackey_glass --workdir=runs/mg
    python launch.py --config=configs/lstm_forecast.py:series=sine --workdir=runs/sine
    python launch.py --config=configs/lstm_forecast.py:smoke --workdir=/tmp/forecast_smoke
    python launch.py --config=configs/lstm_forecast.py:data=load.csv --workdir=runs/load \
        --config.dataset.columns=load

eval/skill = 1 - mse / naive_mse; forecast.png plots context, truth, forecast and naive.
`data=` forecasts the numeric columns of your CSV instead (the `series_csv` source: a
header row, one row per time step; the last 20% of the rows are the eval split, split by
time; every column standardised by the train part's mean and std).
"""

from configs.base import base_config, own_data, parse_options, shrink_for_smoke

SERIES = {"sine": "sine_series", "mackey_glass": "mackey_glass"}


def get_config(arg: str | None = None):
    opts = parse_options(arg, series="mackey_glass", cell="lstm", context=64, horizon=16,
                         hidden=64, steps=3000, data="")
    if opts.series not in SERIES:
        raise ValueError(f"config option series='{opts.series}'; use one of {sorted(SERIES)}")
    c = base_config()
    c.task = dict(name="forecasting")
    c.model = dict(
        name=f"{opts.cell}_forecaster",
        horizon=opts.horizon,  # steps predicted at once from the final state
        hidden_size=opts.hidden,
        num_layers=1,
        residual=True,  # predict the change from the last value (starts at naive)
    )
    c.dataset.name = SERIES[opts.series]
    c.dataset.context = opts.context  # observed steps
    c.dataset.horizon = opts.horizon  # steps to forecast
    if opts.series == "sine":
        c.dataset.noise = 0.05  # observation noise
        c.dataset.num_components = 3  # sines per series
    else:
        c.dataset.series_length = 10000  # 80% train / 20% eval, in time order
    c.dataset.num_train_examples = None
    c.dataset.num_eval_examples = 1000
    c.batch_size = 64
    c.num_train_steps = opts.steps
    c.log_every_steps = 100
    c.eval_every_steps = 1000
    c.checkpoint_every_steps = 1000
    c.optimizer.name = "adam"
    c.optimizer.learning_rate = 3e-3
    c.optimizer.schedule = "cosine"
    c.optimizer.clip_norm = 1.0
    if opts.smoke:
        c.dataset.context = 16
        c.dataset.horizon = c.model.horizon = 4
        if opts.series == "mackey_glass":
            c.dataset.series_length = 2000
        c.model.hidden_size = 16
        c.dataset.num_eval_examples = 64
        shrink_for_smoke(c)
    if opts.data:  # keeps context and horizon; the procedural series' fields go
        own_data(c, opts.data, {"csv": "series_csv"})
    return c
