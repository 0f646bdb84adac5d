"""The regression task: MSE/MAE against numpy, and an MLP that fits a smooth function."""

import jax
import jax.numpy as jnp
import numpy as np

from dl_arch.testing import load_config
from dl_arch.train.loop import build_task, train_and_evaluate


def test_regression_losses_match_numpy():
    config = load_config("configs/mlp_regression.py:smoke")
    task = build_task(config)
    rng = np.random.default_rng(0)
    batch = {"inputs": jnp.asarray(rng.normal(size=(6, 1)), jnp.float32),
             "targets": jnp.asarray(rng.normal(size=(6, 1)), jnp.float32),
             "_mask": jnp.asarray([1, 1, 1, 1, 0, 0], jnp.float32)}
    variables = jax.jit(task.init_variables)(jax.random.PRNGKey(0), batch)
    pred = np.asarray(task.apply_eval(variables, batch))
    err = pred - np.asarray(batch["targets"])
    loss, (metrics, _) = task.loss("all", variables["params"], {}, batch, jax.random.PRNGKey(1))
    np.testing.assert_allclose(loss, np.mean(err**2), rtol=1e-5)
    np.testing.assert_allclose(metrics["mae"], np.mean(np.abs(err)), rtol=1e-5)
    totals = task.eval_metrics(variables, batch)
    s, c = totals["loss"]
    np.testing.assert_allclose(s / c, np.mean(err[:4] ** 2), rtol=1e-5)


def test_mlp_fits_the_function(tmp_path):
    config = load_config("configs/mlp_regression.py")
    config.num_train_steps = 600
    config.optimizer.decay_steps = 600
    summary = train_and_evaluate(config, str(tmp_path))
    # the target variance is ~0.95; a fitted MLP is two orders of magnitude below
    assert summary["eval/loss"] < 1e-2, summary
