"""The MLP benchmark's references (`benchmarks/bench_mlp.py`) compute what they claim: the
hand-written Adam step equals optax's Adam, and the MLP's loss equals a numpy forward pass."""

from __future__ import annotations

import chex
import jax
import numpy as np
import optax

from benchmarks import bench_mlp

SIZES = [2, 32, 32, 3]


def _batch():
    rng = np.random.default_rng(0)
    return (rng.standard_normal((16, 2)).astype(np.float32),
            rng.integers(0, SIZES[-1], 16).astype(np.int32))


def test_plain_mlp_loss_matches_numpy():
    init, loss_fn = bench_mlp._plain_mlp(SIZES)
    params = init(jax.random.PRNGKey(1))
    x, y = _batch()
    h = x.astype(np.float64)
    for i, (w, b) in enumerate(params):
        h = h @ np.asarray(w, np.float64) + np.asarray(b, np.float64)
        if i < len(params) - 1:
            h = np.maximum(h, 0.0)
    logp = h - h.max(1, keepdims=True)
    logp -= np.log(np.exp(logp).sum(1, keepdims=True))
    expected = -logp[np.arange(len(y)), y].mean()
    np.testing.assert_allclose(float(loss_fn(params, x, y)), expected, rtol=1e-5)


def test_hand_written_adam_equals_optax_adam():
    """Both references start from the same parameters; five steps later they agree."""
    x, y = _batch()
    init_plain, plain = bench_mlp._plain_step(SIZES)
    init_optax, with_optax = bench_mlp._optax_step(SIZES, optax.adam(1e-3))
    a, b = init_plain(jax.random.PRNGKey(0)), init_optax(jax.random.PRNGKey(0))
    chex.assert_trees_all_equal(a[0], b[0])
    for _ in range(5):
        a, loss_a = plain(a, x, y)
        b, loss_b = with_optax(b, x, y)
        np.testing.assert_allclose(float(loss_a), float(loss_b), rtol=1e-5)
    chex.assert_trees_all_close(a[0], b[0], rtol=1e-5, atol=1e-6)
    moved = jax.tree_util.tree_map(lambda p, q: float(np.abs(p - q).max()),
                                   a[0], init_plain(jax.random.PRNGKey(0))[0])
    assert min(jax.tree_util.tree_leaves(moved)) > 1e-4  # every array took the steps
