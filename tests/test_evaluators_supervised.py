"""The supervised tasks' evaluators: feature maps, gradient flow, forecast plot, attention map.

Each is called directly on a smoke config's first batch (with padding in it, which must not
count) and, where its schedule matters, run through the loop."""

from __future__ import annotations

import json
import os

import jax
import jax.numpy as jnp
import matplotlib.image
import numpy as np
import pytest

from dl_arch.config.errors import ConfigError
from dl_arch.evaluators.attention_map import token_labels
from dl_arch.evaluators.base import EvalContext, write_report
from dl_arch.evaluators.layer_pictures import layer_pictures
from dl_arch.tasks.gradient_flow import hidden_gradient_norms
from dl_arch.testing import load_config
from dl_arch.train.loop import train_and_evaluate
from dl_arch.train.trainer import Trainer


def _setup(spec: str, **top):
    """(trainer, host batch, initial variables) of a config, with `top` set on it first."""
    config = load_config(spec)
    for key, value in top.items():
        config[key] = value
    trainer = Trainer(config)
    batch = jax.device_get(trainer.first_batch())
    return trainer, batch, jax.device_get(trainer.init_variables(batch))


def _call(trainer, name: str, batch, variables, real: int, tmp_path, step: int = 3):
    """Runs evaluator `name` on `batch` whose first `real` examples are real."""
    n = len(next(iter(batch.values())))
    mask = (np.arange(n) < real).astype(np.float32)
    ctx = EvalContext(variables=variables, metrics={}, batch={**batch, "_mask": mask}, step=step,
                      final=True, workdir=str(tmp_path), eval_batches=lambda: iter(()))
    evaluator = next(e for e in trainer.evaluators() if e.name == name)
    return evaluator(ctx)


# ----------------------------------------------------------------------------- feature_maps


def test_feature_maps_draw_filters_and_layers_of_the_real_images(tmp_path):
    trainer, batch, variables = _setup("configs/resnet_shapes.py:smoke")
    assert tuple(trainer.config.evaluators) == ("confusion_matrix", "feature_maps")
    report = _call(trainer, "feature_maps", batch, variables, real=3, tmp_path=tmp_path)
    assert set(report.images) == {"feature_maps/filters", "feature_maps/layer1",
                                  "feature_maps/layer2"}
    want = layer_pictures(trainer.task.model, variables, batch["image"][:3], ("layer1", "layer2"))
    for name, grid in want.items():  # num_images=4 but only 3 real: padding is not drawn
        np.testing.assert_array_equal(report.images[f"feature_maps/{name}"], grid)
    # 3 images x 8 channels of 8x8 maps enlarged 4x to 32x32, 2-pixel borders
    assert report.images["feature_maps/layer1"].shape == (3 * 34 + 2, 8 * 34 + 2, 3)
    write_report(report, 3, True, str(tmp_path), None)
    png = matplotlib.image.imread(str(tmp_path / "feature_maps" / "layer1.png"))
    assert png.shape[:2] == (3 * 34 + 2, 8 * 34 + 2)
    assert (tmp_path / "images" / "feature_maps" / "filters_000003.png").exists()


def test_feature_maps_need_a_convolution(tmp_path):
    trainer, batch, variables = _setup("configs/mlp_shapes.py:smoke", evaluators=("feature_maps",))
    assert trainer.config.feature_maps.layers == () and trainer.config.feature_maps.every_evals == 0
    with pytest.raises(ConfigError, match="no 2-D convolution kernel.*drop it from config.evaluators"):
        _call(trainer, "feature_maps", batch, variables, real=2, tmp_path=tmp_path)


# ----------------------------------------------------------------------------- gradient_flow


def test_gradient_flow_measures_the_real_examples(tmp_path):
    trainer, batch, variables = _setup("configs/rnn_adding.py:smoke")
    report = _call(trainer, "gradient_flow", batch, variables, real=5, tmp_path=tmp_path)
    x, y = batch["inputs"][:5], batch["targets"][:5]
    want = hidden_gradient_norms(trainer.task.model, {"params": variables["params"]},
                                 lambda out: jnp.mean((out - y) ** 2), x)
    norms = report.arrays["gradient_flow"]["rnn.layer_0"]
    assert norms.shape == (trainer.config.dataset.T,) and np.all(norms > 0)
    np.testing.assert_allclose(norms, want["rnn/layer_0"], rtol=1e-5)
    score = report.scalars["grad_flow/rnn/layer_0/log10_first_over_last"]
    assert score == pytest.approx(np.log10(norms[0] / norms[-1]), rel=1e-5)
    image = report.images["gradient_flow"]
    assert image.dtype == np.uint8 and image.shape == (400, 700, 3) and image.std() > 0


def test_gradient_flow_runs_at_every_eval_through_the_loop(tmp_path):
    config = load_config("configs/rnn_adding.py:smoke")
    config.num_train_steps = 4
    config.eval_every_steps = config.log_every_steps = 2
    summary = train_and_evaluate(config, str(tmp_path))
    rows = [json.loads(line) for line in open(tmp_path / "metrics.jsonl")]
    key = "eval/grad_flow/rnn/layer_0/log10_first_over_last"
    assert [r["step"] for r in rows if key in r] == [2, 4] and np.isfinite(summary[key])
    for name in ("gradient_flow.png", "images/gradient_flow_000002.png",
                 "images/gradient_flow_000004.png"):
        assert os.path.getsize(tmp_path / name) > 0, name
    saved = np.load(tmp_path / "gradient_flow.npz")
    assert list(saved) == ["rnn.layer_0"] and saved["rnn.layer_0"].shape == (config.dataset.T,)


def test_gradient_flow_needs_a_recurrent_model(tmp_path):
    trainer, batch, variables = _setup("configs/transformer_adding.py:smoke",
                                       evaluators=("gradient_flow",))
    with pytest.raises(ConfigError, match="no recurrent layer.*drop it from config.evaluators"):
        _call(trainer, "gradient_flow", batch, variables, real=2, tmp_path=tmp_path)


# ----------------------------------------------------------------------------- forecast_plot


def test_forecast_plot_draws_one_panel_per_real_series(tmp_path):
    trainer, batch, variables = _setup("configs/lstm_forecast.py:smoke,series=sine")
    assert tuple(trainer.config.evaluators) == ("forecast_plot",)
    assert trainer.config.forecast_plot.every_evals == 0  # the end of the run, as before
    image = _call(trainer, "forecast_plot", batch, variables, real=2, tmp_path=tmp_path
                  ).images["forecast"]
    assert image.dtype == np.uint8 and image.shape == (440, 800, 3) and image.std() > 0
    four = _call(trainer, "forecast_plot", batch, variables, real=8, tmp_path=tmp_path)
    assert four.images["forecast"].shape == (880, 800, 3)  # num_examples=4 panels of 2.2 in


def test_forecast_finalize_metrics_is_pure():
    trainer = Trainer(load_config("configs/lstm_forecast.py:smoke"))
    task = trainer.task
    state = dict(vars(task))
    totals = {"mse": (np.float32(2.0), np.float32(4.0)), "mae": (np.float32(1.0), np.float32(4.0)),
              "naive_mse": (np.float32(4.0), np.float32(4.0)),
              "naive_mae": (np.float32(2.0), np.float32(4.0))}
    first, second = task.finalize_metrics(dict(totals)), task.finalize_metrics(dict(totals))
    assert first == second and first["skill"] == pytest.approx(0.5)
    assert vars(task).keys() == state.keys()


# ----------------------------------------------------------------------------- attention_map


def test_token_labels_use_the_charset_and_stop_at_pad():
    assert token_labels([1, 3, 5, 4, 2, 0, 3], "abc", pad=0, bos=1, eos=2) == \
        ["<s>", "a", "c", "b", "</s>"]
    assert token_labels([3, 9, 2], "", pad=0, bos=1, eos=2) == ["<3>", "<9>", "</s>"]
    assert token_labels([0, 3], "abc", pad=0, bos=1, eos=2) == []


def test_attention_map_draws_the_real_examples_at_every_eval(tmp_path):
    trainer, batch, variables = _setup("configs/seq2seq_dates.py:smoke")
    settings = trainer.config.attention_map
    assert settings.every_evals == 1 and settings.num_examples == 3 and settings.charset
    report = _call(trainer, "attention_map", batch, variables, real=2, tmp_path=tmp_path)
    image = report.images["attention"]
    assert image.dtype == np.uint8 and image.shape == (400, 1000, 3) and image.std() > 0
    three = _call(trainer, "attention_map", batch, variables, real=8, tmp_path=tmp_path)
    assert three.images["attention"].shape == (400, 1500, 3)
    write_report(report, 3, True, str(tmp_path), None)
    assert (tmp_path / "attention.png").exists()
