"""The shared train step: overfitting, accumulation, clipping, freezing, optimisers, jit."""


import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from dl_arch.testing import load_config, overfit_one_batch
from dl_arch.train import step as step_lib
from dl_arch.train.optimizers import OPTIMIZERS, build_optimizer, build_schedule
from dl_arch.train.trainer import Trainer


def _setup(config):
    trainer = Trainer(config)
    batch = trainer.first_batch()
    return trainer.init_state(batch), batch, trainer.step_fn()


@pytest.mark.parametrize("spec", ["configs/mlp_shapes.py:smoke", "configs/mlp_xor.py:smoke"])
def test_mlp_overfits_one_batch(spec):
    config = load_config(spec)
    config.optimizer.schedule = "constant"
    history, _ = overfit_one_batch(config, steps=150)
    assert history[-1]["loss"] < 0.05 * history[0]["loss"], (history[0], history[-1])
    assert history[-1]["accuracy"] == 1.0


def test_perceptron_overfits_a_linearly_separable_batch():
    config = load_config("configs/perceptron_xor.py:smoke")
    config.optimizer.schedule = "constant"
    config.optimizer.learning_rate = 0.1
    trainer = Trainer(config)
    batch = trainer.first_batch()
    x = np.asarray(batch["inputs"])
    # relabel the batch by a line through the origin: a perceptron can fit it exactly
    batch = dict(batch, label=jnp.asarray((x[:, 0] - 0.5 * x[:, 1] > 0).astype(np.int32)))
    state, step = trainer.init_state(batch), trainer.train_step()
    for _ in range(200):
        state, metrics = step(state, batch)
    assert float(metrics["accuracy"]) == 1.0


def test_perceptron_cannot_fit_one_xor_batch():
    config = load_config("configs/perceptron_xor.py:smoke")
    history, _ = overfit_one_batch(config, steps=100)
    # XOR: even one batch cannot be fitted by a line; accuracy stays far from 1
    assert history[-1]["accuracy"] < 0.85


def test_jitted_step_equals_the_eager_step():
    config = load_config("configs/mlp_xor.py:smoke")
    state, batch, step = _setup(config)
    with jax.disable_jit():  # the reference: every op dispatched eagerly, nothing compiled
        ref_state, ref_metrics = step(state, batch)
    out_state, metrics = jax.jit(step)(state, batch)
    chex.assert_trees_all_close(out_state.params, ref_state.params, rtol=1e-5, atol=1e-6)
    chex.assert_trees_all_close(metrics["loss"], ref_metrics["loss"], rtol=1e-5)


def test_grad_accumulation_equals_full_batch():
    config = load_config("configs/mlp_xor.py:smoke")
    config.optimizer.name = "sgd"
    config.optimizer.learning_rate = 0.5
    state, batch, step = _setup(config)
    full, m_full = jax.jit(step)(state, batch)
    config.grad_accum_steps = 4
    _, _, step4 = _setup(config)
    acc, m_acc = jax.jit(step4)(state, batch)
    chex.assert_trees_all_close(acc.params, full.params, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(m_acc["loss"], m_full["loss"], rtol=1e-5)


def test_global_norm_clipping_bounds_the_update():
    config = load_config("configs/mlp_xor.py:smoke")
    config.optimizer.name = "sgd"
    config.optimizer.learning_rate = 1.0
    config.optimizer.clip_norm = 1e-3
    state, batch, step = _setup(config)
    new_state, metrics = jax.jit(step)(state, batch)
    assert metrics["grad_norm"] > 1e-2  # clipping is active
    delta = jax.tree_util.tree_map(lambda a, b: a - b, new_state.params, state.params)
    np.testing.assert_allclose(optax.tree.norm(delta), 1e-3, rtol=1e-4)


def test_logged_norms_equal_numpy_norms_of_gradients_updates_and_parameters():
    config = load_config("configs/mlp_xor.py:smoke")
    config.optimizer.name = "sgd"
    config.optimizer.schedule = "constant"
    config.optimizer.learning_rate = 0.5
    state, batch, step = _setup(config)
    new_state, metrics = jax.jit(step)(state, batch)
    trainer = Trainer(config)
    rng = jax.random.fold_in(jax.random.fold_in(state.rng, state.step), 0)  # the step's
    grads = jax.jit(jax.grad(lambda p: trainer.task.loss("all", p, state.mutable, batch,
                                                         rng)[0]))(state.params)

    def numpy_norm(tree):
        return np.sqrt(sum(np.sum(np.asarray(x, np.float64) ** 2)
                           for x in jax.tree_util.tree_leaves(tree)))

    delta = jax.tree_util.tree_map(lambda a, b: a - b, new_state.params, state.params)
    np.testing.assert_allclose(metrics["grad_norm"], numpy_norm(grads), rtol=1e-5)
    np.testing.assert_allclose(metrics["update_norm"], numpy_norm(delta), rtol=1e-4)
    np.testing.assert_allclose(metrics["update_norm"], 0.5 * metrics["grad_norm"], rtol=1e-5)
    np.testing.assert_allclose(metrics["param_norm"], numpy_norm(new_state.params), rtol=1e-5)
    _, without = jax.jit(lambda s, b: step(s, b, norms=False))(state, batch)
    assert [float(without[k]) for k in ("grad_norm", "update_norm", "param_norm")] == [0.0] * 3


@pytest.mark.parametrize("fused", [True, False])
def test_global_norms_equal_numpy_over_mixed_leaves(fused, monkeypatch):
    """Both paths (one reduction over the stacked trees; one per tree) give each tree's norm."""
    monkeypatch.setattr(step_lib, "FUSED_NORMS_MAX_SIZE", 1 << 20 if fused else 0)
    rng = np.random.default_rng(0)
    tree = {"kernel": rng.normal(size=(300, 40)), "bias": rng.normal(size=(40,)),
            "conv": rng.normal(size=(3, 3, 4, 8)), "scale": np.float32(2.5),
            "half": rng.normal(size=(7, 5)).astype(jnp.bfloat16)}
    trees = [jax.tree_util.tree_map(lambda x, k=k: np.asarray(x, np.float32) * k, tree)
             for k in (1.0, -0.5, 3.0)]
    trees[0]["half"] = tree["half"]
    want = [np.sqrt(sum(np.sum(np.asarray(x, np.float64) ** 2) for x in t.values()))
            for t in trees]
    got = jax.jit(step_lib.global_norms)(*jax.tree_util.tree_map(jnp.asarray, trees))
    chex.assert_shape(got, [()] * 3)
    assert all(g.dtype == jnp.float32 for g in got)
    np.testing.assert_allclose(got, want, rtol=1e-6)
    np.testing.assert_array_equal(step_lib.global_norms({}, {}), [0.0, 0.0])


def test_frozen_parameters_do_not_change():
    config = load_config("configs/mlp_xor.py:smoke")
    config.freeze = ("hidden_0/",)
    state, batch, step = _setup(config)
    new_state, _ = jax.jit(step)(state, batch)
    new_state, _ = jax.jit(step)(new_state, batch)
    chex.assert_trees_all_equal(new_state.params["hidden_0"], state.params["hidden_0"])
    assert not np.allclose(new_state.params["head"]["kernel"], state.params["head"]["kernel"])


@pytest.mark.parametrize("name", OPTIMIZERS)
def test_every_optimizer_reduces_the_loss(name):
    config = load_config("configs/mlp_xor.py:smoke")
    config.optimizer.name = name
    config.optimizer.schedule = "constant"
    config.optimizer.learning_rate = 0.2 if name in ("sgd", "momentum", "nesterov") else 5e-3
    config.optimizer.weight_decay = 1e-4 if name == "adamw" else 0.0
    history, _ = overfit_one_batch(config, steps=40)
    assert history[-1]["loss"] < 0.7 * history[0]["loss"], name


def test_schedules_match_their_formulas():
    import ml_collections as mc

    base = dict(learning_rate=1.0, warmup_steps=10, decay_steps=100, step_boundaries=(0.5,),
                step_factor=0.1)
    cos = build_schedule(mc.ConfigDict(dict(base, schedule="cosine")), 100)
    np.testing.assert_allclose(cos(25), 0.5 * (1 + np.cos(np.pi * 0.25)), rtol=1e-5)
    wc = build_schedule(mc.ConfigDict(dict(base, schedule="warmup_cosine")), 100)
    np.testing.assert_allclose(wc(5), 0.5, rtol=1e-5)
    np.testing.assert_allclose(wc(55), 0.5 * (1 + np.cos(np.pi * 45 / 90)), rtol=1e-5)
    st = build_schedule(mc.ConfigDict(dict(base, schedule="step")), 100)
    assert float(st(49)) == 1.0 and np.isclose(float(st(51)), 0.1)
    const = build_schedule(mc.ConfigDict(dict(base, schedule="constant")), 100)
    np.testing.assert_allclose([const(0), const(5), const(50)], [0.0, 0.5, 1.0], rtol=1e-6)


def test_unknown_optimizer_and_schedule_names_list_known_ones():
    import ml_collections as mc

    with pytest.raises(ValueError, match="config.optimizer.name; known: sgd, momentum"):
        build_optimizer(mc.ConfigDict({"name": "adagrad", "learning_rate": 1.0}), 10)
    with pytest.raises(ValueError, match="config.optimizer.schedule; known"):
        build_schedule(mc.ConfigDict({"schedule": "linear", "learning_rate": 1.0}), 10)


def test_adamw_does_not_decay_biases():
    import ml_collections as mc

    tx, _ = build_optimizer(mc.ConfigDict({"name": "adamw", "learning_rate": 1.0,
                                           "weight_decay": 0.5}), 10)
    params = {"kernel": jnp.ones((2, 2)), "bias": jnp.ones((2,))}
    zeros = jax.tree_util.tree_map(jnp.zeros_like, params)
    updates, _ = tx.update(zeros, tx.init(params), params)
    np.testing.assert_allclose(updates["kernel"], -0.5)
    np.testing.assert_allclose(updates["bias"], 0.0)


def test_trainer_is_the_one_source_of_the_loop_state_and_probe_variables(tmp_path):
    """The loop's initial parameters and first-step metrics equal the Trainer's, and the
    probes draw the run's initial variables from the same Trainer key split."""
    import json

    from dl_arch.experiments.probes import init_variables, make_task
    from dl_arch.train.checkpoints import restore_raw_state
    from dl_arch.train.loop import train_and_evaluate

    config = load_config("configs/mlp_xor.py:smoke")
    config.num_train_steps = config.checkpoint_every_steps = config.log_every_steps = 1
    trainer = Trainer(config)
    batch = trainer.first_batch()
    state = trainer.init_state(batch)
    chex.assert_trees_all_equal(init_variables(make_task(config), config, batch)["params"],
                                jax.device_get(state.params))
    new_state, metrics = trainer.train_step(donate=False)(state, batch)
    train_and_evaluate(config, str(tmp_path))
    chex.assert_trees_all_close(restore_raw_state(str(tmp_path))["params"],
                                jax.device_get(new_state.params), rtol=1e-6)
    logged = json.loads((tmp_path / "metrics.jsonl").read_text().splitlines()[0])
    np.testing.assert_allclose(logged["train/loss"], float(metrics["loss"]), rtol=1e-6)


def test_init_compiled_for_one_run_gives_the_default_compiles_state():
    """The init program's cheap CPU codegen changes its compile time, not the state it makes."""
    import functools

    trainer = Trainer(load_config("configs/lenet5_shapes.py:smoke"))
    batch = trainer.first_batch()
    default = jax.jit(functools.partial(trainer._init, batch))()
    chex.assert_trees_all_close(jax.device_get(trainer.init_state(batch)),
                                jax.device_get(default), rtol=1e-6, atol=1e-7)
