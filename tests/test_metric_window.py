"""The device window of train metrics against a plain Python account of the same steps."""

import math

import jax
import numpy as np

from dl_arch.train import metric_window

NAMES = {"loss": (), "accuracy": (), "grad_norm": (), "g/loss": ()}


def _run(steps, factor=10.0):
    """Adds `steps` (step number, metrics, norms computed) to a fresh window under jit."""
    add = jax.jit(metric_window.add, static_argnums=(4,))
    window = jax.device_put(metric_window.fresh(NAMES))
    for number, metrics, norms in steps:
        window = add(window, metrics, np.int32(number), np.bool_(norms), factor)
    return metric_window.read(window)


def _metrics(loss, accuracy, grad_norm, g_loss):
    return {"loss": np.float32(loss), "accuracy": np.float32(accuracy),
            "grad_norm": np.float32(grad_norm), "g/loss": np.float32(g_loss)}


def test_sums_counts_last_and_first_follow_the_steps():
    steps = [(1, _metrics(2.0, 0.5, 3.0, 1.0), False), (2, _metrics(1.5, 0.75, 4.0, 2.0), True),
             (3, _metrics(1.0, 1.0, 5.0, 3.0), False)]
    r = _run(steps)
    np.testing.assert_allclose([r.sums[k] for k in NAMES], [4.5, 2.25, 4.0, 6.0])
    assert [r.counts[k] for k in NAMES] == [3, 3, 1, 3]  # the norm counts at its step only
    assert r.last == {"loss": 1.0, "accuracy": 1.0, "grad_norm": 5.0, "g/loss": 3.0}
    assert r.first == {"loss": 2.0, "g/loss": 1.0}
    assert r.bad_step == -1 and r.grown_step == -1


def test_the_first_non_finite_and_the_first_grown_loss_are_kept_with_their_steps():
    steps = [(1, _metrics(2.0, 0, 0, 1.0), False), (2, _metrics(3.0, 0, 0, 11.0), False),
             (3, _metrics(math.nan, 0, 0, 1.0), False), (4, _metrics(math.inf, 0, 0, 50.0), False)]
    r = _run(steps)
    assert r.grown_step == 2 and r.grown == {"loss": 3.0, "g/loss": 11.0}  # 11 > 10 x 1
    assert r.bad_step == 3 and math.isnan(r.bad["loss"]) and r.bad["g/loss"] == 1.0
    assert _run(steps[:2], factor=0.0).grown_step == -1  # factor 0: no growth check


def test_a_fresh_window_carries_the_runs_first_losses():
    window = metric_window.fresh(NAMES, first={"loss": 7.0, "g/loss": 9.0})
    add = jax.jit(metric_window.add, static_argnums=(4,))
    r = metric_window.read(add(jax.device_put(window), _metrics(1.0, 0, 0, 1.0), np.int32(5),
                               np.bool_(False), 10.0))
    assert r.first == {"loss": 7.0, "g/loss": 9.0}
    assert metric_window.read(jax.device_put(metric_window.fresh(NAMES))).first == {}
