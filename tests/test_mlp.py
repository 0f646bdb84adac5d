"""Perceptron and MLP against a numpy forward pass; losses and metrics against numpy."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dl_arch.models.activations import ACTIVATIONS
from dl_arch.models.mlp import MLP, Perceptron
from dl_arch.tasks.classification import cross_entropy, per_class_scores, top_k_correct

NP_ACT = {
    "relu": lambda x: np.maximum(x, 0),
    "tanh": np.tanh,
    "sigmoid": lambda x: 1 / (1 + np.exp(-x)),
    "gelu": lambda x: 0.5 * x * (1 + np.tanh(np.sqrt(2 / np.pi) * (x + 0.044715 * x**3))),
}


@pytest.mark.parametrize("activation", sorted(NP_ACT))
def test_mlp_matches_numpy(activation):
    model = MLP(num_classes=3, hidden_sizes=(5, 4), activation=activation)
    x = jax.random.normal(jax.random.PRNGKey(0), (6, 2, 3))
    params = jax.jit(model.init)(jax.random.PRNGKey(1), x)["params"]
    h = np.asarray(x).reshape(6, -1)
    for i in range(2):
        layer = params[f"hidden_{i}"]
        h = NP_ACT[activation](h @ np.asarray(layer["kernel"]) + np.asarray(layer["bias"]))
    expected = h @ np.asarray(params["head"]["kernel"]) + np.asarray(params["head"]["bias"])
    out = model.apply({"params": params}, x)
    chex.assert_shape(out, (6, 3))
    np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-5)


def test_activation_table_matches_numpy():
    x = jnp.linspace(-4, 4, 41)
    for name, ref in NP_ACT.items():
        np.testing.assert_allclose(ACTIVATIONS[name](x), ref(np.asarray(x)), rtol=1e-4, atol=1e-5)


def test_perceptron_is_affine():
    model = Perceptron(num_classes=2)
    x = jax.random.normal(jax.random.PRNGKey(0), (4, 2))
    p = jax.jit(model.init)(jax.random.PRNGKey(1), x)["params"]
    expected = np.asarray(x) @ np.asarray(p["linear"]["kernel"]) + np.asarray(p["linear"]["bias"])
    np.testing.assert_allclose(model.apply({"params": p}, x), expected, rtol=1e-6, atol=1e-6)
    # affine: f(a x + (1 - a) y) = a f(x) + (1 - a) f(y)
    y = -x
    mix = model.apply({"params": p}, 0.3 * x + 0.7 * y)
    np.testing.assert_allclose(mix, 0.3 * model.apply({"params": p}, x)
                               + 0.7 * model.apply({"params": p}, y), rtol=1e-5, atol=1e-5)


def test_dropout_only_in_training():
    model = MLP(num_classes=2, width=16, depth=1, dropout=0.5)
    x = jnp.ones((3, 4))
    variables = jax.jit(model.init)(jax.random.PRNGKey(0), x)
    a = model.apply(variables, x)
    chex.assert_trees_all_close(a, model.apply(variables, x))
    b = model.apply(variables, x, train=True, rngs={"dropout": jax.random.PRNGKey(1)})
    assert not np.allclose(a, b)


def _np_log_softmax(z):
    z = z - z.max(-1, keepdims=True)
    return z - np.log(np.exp(z).sum(-1, keepdims=True))


def test_cross_entropy_matches_numpy():
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(7, 5)).astype(np.float32) * 3
    labels = rng.integers(0, 5, size=7)
    expected = -_np_log_softmax(logits)[np.arange(7), labels]
    np.testing.assert_allclose(cross_entropy(jnp.asarray(logits), jnp.asarray(labels)),
                               expected, rtol=1e-5)
    eps = 0.1
    target = np.full((7, 5), eps / 5)
    target[np.arange(7), labels] += 1 - eps
    smoothed = -(target * _np_log_softmax(logits)).sum(-1)
    np.testing.assert_allclose(cross_entropy(jnp.asarray(logits), jnp.asarray(labels), eps),
                               smoothed, rtol=1e-5)


def test_cross_entropy_gradient_is_softmax_minus_one_hot():
    """The one-hot form's gradient w.r.t. the logits, against its numpy closed form."""
    rng = np.random.default_rng(1)
    logits = rng.normal(size=(6, 4)).astype(np.float32) * 2
    labels = rng.integers(0, 4, size=6)
    got = jax.grad(lambda z: cross_entropy(z, jnp.asarray(labels)).mean())(jnp.asarray(logits))
    want = np.exp(_np_log_softmax(logits)) - np.eye(4)[labels]
    np.testing.assert_allclose(got, want / 6, rtol=1e-5, atol=1e-7)


def test_top_k_and_per_class_scores():
    logits = jnp.asarray([[0.1, 0.5, 0.4], [0.9, 0.04, 0.06], [0.2, 0.3, 0.5]])
    labels = jnp.asarray([2, 1, 0])
    np.testing.assert_array_equal(top_k_correct(logits, labels, 1), [0, 0, 0])
    np.testing.assert_array_equal(top_k_correct(logits, labels, 3), [1, 1, 1])
    np.testing.assert_array_equal(top_k_correct(logits, labels, 2), [1, 0, 0])
    confusion = np.array([[5.0, 1.0], [2.0, 2.0]])  # rows: true, cols: predicted
    s = per_class_scores(confusion)
    np.testing.assert_allclose(s["precision"], [5 / 7, 2 / 3])
    np.testing.assert_allclose(s["recall"], [5 / 6, 2 / 4])
    p, r = s["precision"], s["recall"]
    np.testing.assert_allclose(s["f1"], 2 * p * r / (p + r))


def test_bfloat16_compute_keeps_float32_params_and_logits():
    model = MLP(num_classes=3, width=8, depth=1, dtype=jnp.bfloat16)
    x = jnp.ones((2, 4))
    variables = jax.jit(model.init)(jax.random.PRNGKey(0), x)
    assert all(p.dtype == jnp.float32 for p in jax.tree_util.tree_leaves(variables))
    out = model.apply(variables, x)
    assert out.dtype == jnp.float32
    ref = MLP(num_classes=3, width=8, depth=1).apply(variables, x)
    np.testing.assert_allclose(out, ref, rtol=3e-2, atol=3e-2)
