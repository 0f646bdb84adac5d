"""Each recurrent cell against a plain numpy implementation of its equations, step by step.

Values are compared directly; gradients are compared as directional derivatives against
central finite differences of the numpy reference in float64. The GRU and LSTM are also
checked against PyTorch, an independent implementation of the same conventions.
"""

from __future__ import annotations

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch

from dl_arch.models.layers.rnn_cells import zero_state
from dl_arch.models.rnn import Recurrent

B, T, D, H = 3, 5, 4, 6


def _sig(v):
    return 1.0 / (1.0 + np.exp(-v))


def numpy_layer(cell, p, x, act="tanh"):
    """Reference recurrence written from the equations in the module docstring."""
    f_act = np.tanh if act == "tanh" else (lambda v: np.maximum(v, 0.0))
    h = np.zeros((x.shape[0], H))
    c = np.zeros_like(h)
    outs = []
    for t in range(x.shape[1]):
        xt = x[:, t]
        if cell == "rnn":
            h = f_act(xt @ p["w_ih"] + h @ p["w_hh"] + p["b"])
        elif cell == "lstm":
            z = xt @ p["w_ih"] + h @ p["w_hh"] + p["b"]
            i, f, g, o = (z[:, k * H:(k + 1) * H] for k in range(4))
            c = _sig(f) * c + _sig(i) * np.tanh(g)
            h = _sig(o) * np.tanh(c)
        else:
            wi, wh, b = p["w_ih"], p["w_hh"], p["b"]
            r = _sig(xt @ wi[:, :H] + b[:H] + h @ wh[:, :H])
            zg = _sig(xt @ wi[:, H:2 * H] + b[H:2 * H] + h @ wh[:, H:2 * H])
            n = np.tanh(xt @ wi[:, 2 * H:] + b[2 * H:] + r * (h @ wh[:, 2 * H:] + p["b_hn"]))
            h = (1 - zg) * n + zg * h
        outs.append(h)
    return np.stack(outs, 1), (c, h)


def _setup(cell, act="tanh"):
    x = jax.random.normal(jax.random.key(0), (B, T, D))
    layer = Recurrent(H, cell, activation=act)
    params = jax.jit(layer.init)(jax.random.key(1), x)["params"]
    # Random biases, so every term of the equations is exercised.
    params = jax.tree.map(lambda a: a + 0.3 * jax.random.normal(jax.random.key(2), a.shape),
                          params)
    return layer, params, x


CASES = [("rnn", "tanh"), ("rnn", "relu"), ("lstm", "tanh"), ("gru", "tanh")]


@pytest.mark.parametrize("cell,act", CASES)
def test_cell_values_match_numpy(cell, act):
    layer, params, x = _setup(cell, act)
    y, final = layer.apply({"params": params}, x)
    p64 = jax.tree.map(lambda a: np.asarray(a, np.float64), params)
    y_ref, (c_ref, h_ref) = numpy_layer(cell, p64, np.asarray(x, np.float64), act)
    chex.assert_shape(y, (B, T, H))
    chex.assert_trees_all_close(y, y_ref.astype(np.float32), atol=1e-5, rtol=1e-5)
    if cell == "lstm":
        chex.assert_trees_all_close(final, (c_ref, h_ref), atol=1e-5, rtol=1e-5)
    else:
        chex.assert_trees_all_close(final, h_ref.astype(np.float32), atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("cell,act", CASES)
def test_cell_gradients_match_finite_differences(cell, act):
    layer, params, x = _setup(cell, act)
    w_BTH = np.asarray(jax.random.normal(jax.random.key(3), (B, T, H)), np.float64)

    def loss_jax(p, xx):
        return jnp.sum(layer.apply({"params": p}, xx)[0] * w_BTH.astype(np.float32))

    gp, gx = jax.grad(loss_jax, argnums=(0, 1))(params, x)
    p64 = jax.tree.map(lambda a: np.asarray(a, np.float64), params)
    x64 = np.asarray(x, np.float64)

    def loss_np(p, xx):
        return float(np.sum(numpy_layer(cell, p, xx, act)[0] * w_BTH))

    rng = np.random.default_rng(0)
    for _ in range(3):
        vp = jax.tree.map(lambda a: rng.standard_normal(a.shape), p64)
        vx = rng.standard_normal(x64.shape)
        eps = 1e-6
        plus = loss_np(jax.tree.map(lambda a, v: a + eps * v, p64, vp), x64 + eps * vx)
        minus = loss_np(jax.tree.map(lambda a, v: a - eps * v, p64, vp), x64 - eps * vx)
        fd = (plus - minus) / (2 * eps)
        analytic = sum(float(np.sum(np.asarray(g, np.float64) * v))
                       for g, v in zip(jax.tree.leaves(gp), jax.tree.leaves(vp), strict=True))
        analytic += float(np.sum(np.asarray(gx, np.float64) * vx))
        np.testing.assert_allclose(analytic, fd, rtol=2e-4, atol=1e-4)


def test_lstm_forget_bias_is_one_at_init():
    layer = Recurrent(H, "lstm")
    b = jax.jit(layer.init)(jax.random.key(0), jnp.zeros((1, 2, D)))["params"]["b"]
    np.testing.assert_array_equal(np.asarray(b[H:2 * H]), np.ones(H))
    np.testing.assert_array_equal(np.asarray(b[:H]), np.zeros(H))


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_cells_match_pytorch(cell):
    """Our fused layouts equal torch.nn.LSTM/GRU (gate order i,f,g,o / r,z,n; reset after)."""
    layer, params, x = _setup(cell)
    mod = (torch.nn.LSTM if cell == "lstm" else torch.nn.GRU)(D, H, batch_first=True)
    with torch.no_grad():
        mod.weight_ih_l0.copy_(torch.tensor(np.asarray(params["w_ih"]).T))
        mod.weight_hh_l0.copy_(torch.tensor(np.asarray(params["w_hh"]).T))
        mod.bias_ih_l0.copy_(torch.tensor(np.asarray(params["b"])))
        b_hh = np.zeros(3 * H if cell == "gru" else 4 * H, np.float32)
        if cell == "gru":
            b_hh[2 * H:] = np.asarray(params["b_hn"])
        mod.bias_hh_l0.copy_(torch.tensor(b_hh))
        y_ref, _ = mod(torch.tensor(np.asarray(x)))
    y, _ = layer.apply({"params": params}, x)
    chex.assert_trees_all_close(y, y_ref.numpy(), atol=1e-5, rtol=1e-5)


def test_unknown_cell_is_a_clear_error():
    with pytest.raises(ValueError, match="config.model.cell"):
        Recurrent(H, "transformer").init(jax.random.key(0), jnp.zeros((1, 2, D)))
    with pytest.raises(ValueError, match="config.model.cell"):
        zero_state("elman", 1, H)
