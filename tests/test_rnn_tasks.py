"""Recurrent-family tasks through the shared loop: smoke configs end to end, overfitting one
batch, truncated BPTT state carry, sampling, gradient flow and gradient clipping."""

from __future__ import annotations

import json
import os

import chex
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest
import tensorflow_datasets as tfds

from dl_arch.tasks.generation import next_token
from dl_arch.tasks.gradient_flow import hidden_gradient_norms
from dl_arch.testing import first_batch, load_config, overfit_one_batch
from dl_arch.train.loop import build_task, train_and_evaluate

OFFLINE = {
    "configs/lstm_adding.py:smoke": ("eval/mse", "gradient_flow.png"),
    "configs/lstm_copy.py:smoke": ("eval/accuracy", None),
    "configs/lstm_forecast.py:smoke,series=sine": ("eval/skill", "forecast.png"),
    "configs/seq2seq_dates.py:smoke": ("eval/exact_match_beam", "attention.png"),
    "configs/lstm_text.py:smoke": ("eval/bits_per_char", "samples.txt"),
    "configs/lstm_seq_shapes.py:smoke": ("eval/accuracy", "gradient_flow.png"),
}


@pytest.mark.parametrize("spec", sorted(OFFLINE))
def test_offline_smoke_configs_end_to_end(spec, tmp_path):
    metric, artifact = OFFLINE[spec]
    summary = train_and_evaluate(load_config(spec), str(tmp_path))
    assert summary["completed"] and np.isfinite(summary[metric]), summary
    if artifact:
        assert os.path.getsize(tmp_path / artifact) > 0


@pytest.mark.parametrize("spec", ["configs/lstm_tiny_shakespeare.py:smoke",
                                  "configs/gru_imdb.py:smoke"])
def test_tfds_smoke_configs_on_mock_data(spec, tmp_path):
    with tfds.testing.mock_data(num_examples=24):
        summary = train_and_evaluate(load_config(spec), str(tmp_path))
    assert summary["completed"] and np.isfinite(summary["eval/loss"])


def test_every_config_variant_builds():
    for spec in ["configs/rnn_adding.py:T=300", "configs/gru_adding.py", "configs/lstm_text.py",
                 "configs/lstm_text.py:tbptt=False,cell=gru", "configs/lstm_tiny_shakespeare.py",
                 "configs/lstm_tiny_shakespeare.py:lm1b", "configs/gru_imdb.py",
                 "configs/lstm_forecast.py", "configs/lstm_seq_shapes.py:dataset=mnist,permute",
                 "configs/seq2seq_dates.py:cell=lstm", "configs/lstm_copy.py:T=200"]:
        c = load_config(spec)
        build_task(c)
    assert load_config("configs/rnn_adding.py:T=300").dataset.T == 300
    with pytest.raises(ValueError, match="series"):
        load_config("configs/lstm_forecast.py:series=stocks")


@pytest.mark.parametrize("spec,key,goal", [
    ("configs/lstm_adding.py:smoke", "loss", 0.02),
    ("configs/lstm_text.py:smoke", "loss", 1.0),
    ("configs/seq2seq_dates.py:smoke,hidden=32", "loss", 0.5),
])
def test_overfit_one_batch(spec, key, goal):
    config = load_config(spec)
    config.optimizer.learning_rate = 1e-2
    config.optimizer.schedule = "constant"
    config.batch_size = 8
    if "stream_batch_size" in config.dataset:
        config.dataset.stream_batch_size = 8
    if config.task.name == "language_model":  # 8 x 16 bytes to memorise
        config.model.hidden_size = 128
        config.dataset.seq_len = 16
    history, _ = overfit_one_batch(config, steps=150)
    assert history[-1][key] < goal < history[0][key], (history[0][key], history[-1][key])


def test_truncated_bptt_carries_state_across_batches():
    """Two consecutive TBPTT batches == one model pass over the concatenated text."""
    config = load_config("configs/lstm_text.py:smoke")
    task = build_task(config)
    b = config.batch_size
    src_cfg = task.config.dataset  # resolved: every declared field present
    from dl_arch.data.pipeline import make_source

    source = make_source(src_cfg, src_cfg.train_split, config.seed)
    batches = [{k: jnp.stack([source[s * b + r][k] for r in range(b)]) for k in ("inputs",
                "targets", "reset")} for s in range(2)]
    assert np.all(np.asarray(batches[0]["reset"]) == 1) and np.all(
        np.asarray(batches[1]["reset"]) == 0)
    np.testing.assert_array_equal(batches[0]["targets"][:, -1], batches[1]["inputs"][:, 0])
    variables = jax.jit(task.init_variables)(jax.random.key(0), batches[0])
    params, mutable = variables.pop("params"), variables
    _, (_, mutable) = task.loss("all", params, mutable, batches[0], jax.random.key(1))
    loss2, _ = task.loss("all", params, mutable, batches[1], jax.random.key(2))
    both = jnp.concatenate([batches[0]["inputs"], batches[1]["inputs"]], axis=1)
    logits = task.model.apply({"params": params}, both)[:, config.dataset.seq_len:]
    ref = task.per_example(logits, batches[1])["loss"].mean()
    np.testing.assert_allclose(float(loss2), float(ref), rtol=1e-5)
    # The reset flag restarts a row from the zero state.
    reset = dict(batches[1], reset=jnp.ones_like(batches[1]["reset"]))
    loss_reset, _ = task.loss("all", params, mutable, reset, jax.random.key(2))
    fresh = task.per_example(task.model.apply({"params": params}, batches[1]["inputs"]),
                             batches[1])["loss"].mean()
    np.testing.assert_allclose(float(loss_reset), float(fresh), rtol=1e-5)


def test_carry_state_needs_ordered_stream():
    config = load_config("configs/lstm_text.py:smoke")
    config.dataset.shuffle = True
    with pytest.raises(ValueError, match="shuffle"):
        build_task(config)


def test_sampling_state_and_buffer_paths_agree(capsys):
    config = load_config("configs/lstm_text.py:smoke")
    task = build_task(config)
    params = jax.jit(task.init_variables)(jax.random.key(0), {"inputs": jnp.zeros((2, 8), jnp.int32)})[
        "params"]
    prompt = jnp.array([[100, 101, 102], [32, 33, 34]], jnp.int32)
    a = task.generate(params, prompt, 6, jax.random.key(0), 0.0, 0, True)
    b = task.generate(params, prompt, 6, jax.random.key(0), 0.0, 0, False)
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    a = task.generate(params, prompt, 6, jax.random.key(3), 1.0, 5, True)
    b = task.generate(params, prompt, 6, jax.random.key(3), 1.0, 5, False)
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    sample_config = ml_collections.ConfigDict(
        {**task.config.sample.to_dict(), "prompt": "def ", "length": 5, "top_k": 3})
    texts = task.sample({"params": params}, sample_config, "")
    assert texts[0].startswith("def ") and "sample 0" in capsys.readouterr().out


def test_top_k_sampling_support():
    logits = jnp.log(jnp.array([[0.1, 0.4, 0.2, 0.3]]))
    draws = jax.vmap(lambda k: next_token(k, logits, 1.0, 2))(
        jax.random.split(jax.random.key(0), 400))
    assert set(np.asarray(draws).ravel().tolist()) == {1, 3}
    np.testing.assert_array_equal(np.asarray(next_token(jax.random.key(0), logits, 0.0, 0)),
                                  [1])


@pytest.mark.parametrize("cell", ["rnn", "lstm"])
def test_gradient_flow_matches_finite_differences(cell):
    """dL/dh_t from the perturbation gradient == finite differences of the loss in h_t."""
    config = load_config(f"configs/{cell}_adding.py:smoke")
    task = build_task(config)
    batch = first_batch(config, task)
    variables = jax.jit(task.init_variables)(jax.random.key(0), batch)
    x, y = batch["inputs"], batch["targets"]
    loss_of = lambda out: jnp.mean((out - y) ** 2)
    norms = hidden_gradient_norms(task.model, variables, loss_of, x)
    (name, g_T), = norms.items()
    assert name == "rnn/layer_0" and g_T.shape == (x.shape[1],)
    _, pert = task.model.apply(variables, x, mutable=["perturbations"])
    grads = jax.grad(lambda p: loss_of(task.model.apply({**variables, "perturbations": p}, x)))(
        pert["perturbations"])
    g_TBH = grads["rnn"]["layer_0"]["hidden"]
    np.testing.assert_allclose(g_T, np.linalg.norm(g_TBH, axis=-1).mean(1), rtol=1e-5)
    direction = jax.random.normal(jax.random.key(1), g_TBH.shape)
    for t in (0, x.shape[1] // 2, x.shape[1] - 1):
        v = jnp.zeros_like(g_TBH).at[t].set(direction[t])
        eps = 3e-2  # float32 loss: a larger step keeps rounding below the O(eps^2) error

        def loss_at(e, v=v):
            p = {"rnn": {"layer_0": {"hidden": e * v}}}
            return float(loss_of(task.model.apply({**variables, "perturbations": p}, x)))

        fd = (loss_at(eps) - loss_at(-eps)) / (2 * eps)
        np.testing.assert_allclose(fd, float(jnp.sum(g_TBH * v)), rtol=1e-2, atol=2e-5)


def test_gradient_clipping_bounds_the_update():
    config = load_config("configs/rnn_adding.py:smoke")
    config.optimizer.name = "sgd"
    config.optimizer.learning_rate = 1.0
    config.optimizer.clip_norm = 1e-3
    history, _ = overfit_one_batch(config, steps=2)
    for m in history:
        assert m["grad_norm"] > 1e-3 and m["update_norm"] <= 1e-3 * (1 + 1e-4), m


def test_forecast_task_starts_at_the_naive_baseline():
    config = load_config("configs/lstm_forecast.py:smoke")
    task = build_task(config)
    batch = first_batch(config, task)
    variables = jax.jit(task.init_variables)(jax.random.key(0), batch)
    totals = task.eval_metrics(variables, {**batch, "_mask": jnp.ones(config.batch_size)})
    out = task.finalize_metrics({k: (np.asarray(s), np.asarray(c)) for k, (s, c) in
                                 totals.items()})
    chex.assert_trees_all_close(out["mse"], out["naive_mse"], rtol=1e-6)
    assert abs(out["skill"]) < 1e-5


def test_metrics_file_has_language_model_metrics(tmp_path):
    config = load_config("configs/lstm_text.py:smoke,tbptt=False")
    config.num_train_steps = 4
    config.log_every_steps = 2
    config.evaluators = ()  # no samples: not what is tested
    del config.text_samples
    train_and_evaluate(config, str(tmp_path))
    rows = [json.loads(line) for line in open(tmp_path / "metrics.jsonl")]
    final = [r for r in rows if "eval/perplexity" in r][-1]
    np.testing.assert_allclose(final["eval/perplexity"], np.exp(final["eval/loss"]), rtol=1e-5)
    np.testing.assert_allclose(final["eval/bits_per_char"], final["eval/loss"] / np.log(2),
                               rtol=1e-5)
    assert any("train/perplexity" in r for r in rows)
