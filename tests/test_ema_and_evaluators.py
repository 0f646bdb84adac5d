"""Loop features beside the task: the parameter average (EMA) and evaluators named in a config."""

from __future__ import annotations

import json
import os

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dl_arch.config.errors import ConfigError
from dl_arch.config.fields import Field
from dl_arch.config.resolve import Text, resolve_config
from dl_arch.evaluators.base import EvalContext, Evaluator, Report
from dl_arch.registry import register_evaluator
from dl_arch.testing import load_config
from dl_arch.train.checkpoints import restore_raw_state
from dl_arch.train.loop import restore_for_inference, train_and_evaluate
from dl_arch.train.trainer import Trainer


@register_evaluator("weight_picture", fields={
    "scale": Field(2.0, "a number the test reads back", low=0.0),
    "every_evals": Field(1, "at every evaluation", low=0),
})
class WeightPicture(Evaluator):
    """A user's evaluator, written in a test file: one scalar and one picture per call."""

    def __call__(self, ctx: EvalContext) -> Report:
        leaves = jax.tree_util.tree_leaves(ctx.variables["params"])
        norm = float(np.sqrt(sum(np.sum(np.square(x)) for x in leaves)))
        picture = np.zeros((4, 6, 3), np.uint8)
        picture[..., 0] = 255
        return Report(scalars={"weight_norm_scaled": self.settings.scale * norm},
                      images={"weight_picture": picture},
                      texts={"weight_notes": f"accuracy {ctx.metrics['accuracy']:.3f}"})


def _mlp_config(**top):
    config = load_config("configs/mlp_xor.py:smoke")
    config.optimizer.decay_steps = 6  # the schedule must not depend on where a run stops
    for key, value in top.items():
        config[key] = value
    return config


@pytest.mark.parametrize("spec,accum", [("configs/mlp_xor.py:smoke", 1),
                                        ("configs/lenet5_shapes.py:smoke", 2)])
def test_ema_equals_its_closed_form(spec, accum):
    """ema_t = d^t p_0 + sum_{i=1..t} (1 - d) d^(t-i) p_i for any model (BatchNorm in LeNet's
    smoke config is not averaged: only params), whatever the micro-batching."""
    config = load_config(spec)
    config.ema_decay = 0.9
    config.grad_accum_steps = accum
    trainer = Trainer(config)
    batch = trainer.first_batch()
    state = trainer.init_state(batch)
    step = trainer.train_step(donate=False)
    params = [state.params]
    for _ in range(5):
        state, _ = step(state, batch)
        params.append(state.params)
    d, t = 0.9, 5
    expected = jax.tree_util.tree_map(
        lambda *ps: d ** t * ps[0] + sum((1 - d) * d ** (t - i) * ps[i] for i in range(1, t + 1)),
        *params)
    chex.assert_trees_all_close(state.ema, expected, rtol=1e-5, atol=1e-6)
    assert not np.allclose(jax.tree_util.tree_leaves(state.ema)[0],
                           jax.tree_util.tree_leaves(state.params)[0])


def test_ema_off_keeps_no_average_and_evaluates_the_live_parameters():
    trainer = Trainer(_mlp_config())
    batch = trainer.first_batch()
    state = trainer.init_state(batch)
    assert state.ema is None
    chex.assert_trees_all_equal(trainer.eval_variables(state)["params"], state.params)


def test_ema_is_checkpointed_restored_on_resume_and_used_by_eval_and_sample(tmp_path):
    base = dict(ema_decay=0.8, num_train_steps=6, checkpoint_every_steps=3, eval_every_steps=3,
                log_every_steps=1)
    whole = tmp_path / "whole"
    train_and_evaluate(_mlp_config(**base), str(whole))
    parts = tmp_path / "parts"
    train_and_evaluate(_mlp_config(**{**base, "num_train_steps": 3}), str(parts))
    train_and_evaluate(_mlp_config(**base), str(parts))
    a, b = restore_raw_state(str(whole)), restore_raw_state(str(parts))
    chex.assert_trees_all_equal(a["ema"], b["ema"])
    chex.assert_trees_all_equal(a["params"], b["params"])
    assert not np.array_equal(jax.tree_util.tree_leaves(a["ema"])[0],
                              jax.tree_util.tree_leaves(a["params"])[0])
    # evaluation and --sample read the average; eval_with_ema=False reads the live weights
    _, variables = restore_for_inference(_mlp_config(**base), str(whole))
    chex.assert_trees_all_equal(variables["params"], a["ema"])
    _, live = restore_for_inference(_mlp_config(**base, eval_with_ema=False), str(whole))
    chex.assert_trees_all_equal(live["params"], a["params"])
    trainer = Trainer(_mlp_config(**base))
    batch = trainer.first_batch()
    batch = {**batch, "_mask": jnp.ones(batch["label"].shape, jnp.float32)}
    state = trainer.init_state(batch).replace(params=a["params"], ema=a["ema"])
    totals = jax.device_get(trainer.eval_step()(state, batch))
    manual = trainer.task.eval_metrics({"params": a["ema"]}, batch)
    np.testing.assert_allclose(totals["accuracy"][0], manual["accuracy"][0], rtol=1e-6)


def test_an_evaluator_written_in_a_test_file_runs_when_named_in_the_config(tmp_path):
    config = _mlp_config(num_train_steps=4, eval_every_steps=2, log_every_steps=2,
                         checkpoint_every_steps=4)
    config.evaluators = ("confusion_matrix", "weight_picture")
    config.weight_picture = {"scale": 3.0}
    summary = train_and_evaluate(config, str(tmp_path))
    rows = [json.loads(line) for line in open(tmp_path / "metrics.jsonl")]
    scored = [r for r in rows if "eval/weight_norm_scaled" in r]
    assert [r["step"] for r in scored] == [2, 4]  # every evaluation (every_evals=1) and the end
    assert summary["eval/weight_norm_scaled"] == pytest.approx(scored[-1]["eval/weight_norm_scaled"])
    state = restore_raw_state(str(tmp_path))
    norm = np.sqrt(sum(np.sum(np.square(x)) for x in jax.tree_util.tree_leaves(state["params"])))
    assert summary["eval/weight_norm_scaled"] == pytest.approx(3.0 * norm, rel=1e-5)
    for name in ("weight_picture.png", "images/weight_picture_000002.png",
                 "images/weight_picture_000004.png", "confusion_matrix.png",
                 "per_class_metrics.json"):
        assert os.path.exists(tmp_path / name), name
    import matplotlib.image

    png = matplotlib.image.imread(str(tmp_path / "weight_picture.png"))
    assert png.shape[:2] == (4, 6) and np.allclose(png[..., 0], 1.0) and np.allclose(png[..., 1], 0)
    notes = open(tmp_path / "weight_notes.txt").read()
    assert notes.count("# step") == 2 and "accuracy" in notes
    saved = json.load(open(tmp_path / "config.json"))
    assert saved["evaluators"] == ["confusion_matrix", "weight_picture"]
    assert saved["weight_picture"] == {"every_evals": 1, "scale": 3.0}


def test_evaluators_resolve_from_the_task_and_reject_unlisted_sections():
    config = resolve_config(_mlp_config())
    assert tuple(config.evaluators) == ("confusion_matrix",)  # the classification task's list
    assert config.confusion_matrix.every_evals == 0
    with pytest.raises(ConfigError, match=r"config.weight_picture .*does not list; add it"):
        bad = _mlp_config()
        bad.weight_picture = {"scale": 1.0}
        resolve_config(bad)
    with pytest.raises(ConfigError, match="unknown evaluator 'confusion_matrx'.*confusion_matrix"):
        resolve_config(_mlp_config(), [("evaluators", Text("confusion_matrx"))])
    with pytest.raises(ConfigError, match=r"config.weight_picture.scale"):
        resolve_config(_mlp_config(), [("evaluators", Text("weight_picture")),
                                       ("weight_picture.scale", Text("-1"))])
    # an override of the list drops the sections it no longer names, with a warning
    listed = _mlp_config()
    listed.evaluators = ("weight_picture",)
    listed.weight_picture = {"scale": 5.0}
    config = resolve_config(listed, [("evaluators", Text("confusion_matrix"))])
    assert "weight_picture" not in config and tuple(config.evaluators) == ("confusion_matrix",)
    assert resolve_config(config).to_dict() == config.to_dict()  # idempotent
    none = resolve_config(_mlp_config(), [("evaluators", Text("()"))])
    assert tuple(none.evaluators) == ()


def test_an_evaluator_that_the_task_cannot_serve_is_a_one_line_error(tmp_path):
    config = load_config("configs/mlp_regression.py:smoke")
    config.evaluators = ("confusion_matrix",)
    config.num_train_steps = 1
    with pytest.raises(ConfigError, match="sums no confusion matrix; drop it"):
        train_and_evaluate(config, str(tmp_path))


def test_steps_per_phase_defaults_to_one_update_per_phase():
    trainer = Trainer(_mlp_config())
    assert trainer.task.steps_per_phase == {"all": 1}
    assert jnp.ndim(trainer.first_batch()["label"]) == 1
