"""Layer options (lengths, reverse, bidirectional, stacking, state carry, unroll) and models."""

from __future__ import annotations

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from dl_arch.models.layers.recurrence import time_chunk_size
from dl_arch.models.layers.rnn_cells import state_hidden
from dl_arch.models.rnn import Recurrent, RecurrentStack
from dl_arch.registry import MODELS

B, T, D, H = 3, 7, 4, 5
LENGTHS = np.array([7, 3, 5], np.int32)


def _x(seed=0, shape=(B, T, D)):
    return jax.random.normal(jax.random.key(seed), shape)


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
def test_scan_and_unrolled_agree(cell):
    x = _x()
    rolled = Recurrent(H, cell)
    params = jax.jit(rolled.init)(jax.random.key(1), x)
    loss = lambda m: (lambda p: jnp.sum(jnp.sin(m.apply(p, x, jnp.asarray(LENGTHS))[0])))
    ref_y, ref_s = rolled.apply(params, x, jnp.asarray(LENGTHS))
    ref_g = jax.grad(loss(rolled))(params)
    for unroll in (True, 3):
        m = Recurrent(H, cell, unroll=unroll)
        y, s = m.apply(params, x, jnp.asarray(LENGTHS))
        chex.assert_trees_all_close((y, s), (ref_y, ref_s), atol=1e-6)
        chex.assert_trees_all_close(jax.grad(loss(m))(params), ref_g, atol=1e-5)


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
def test_padding_does_not_leak(cell):
    """Each example alone at its own length == the padded batch, in both directions (a
    bidirectional stack); pad values never matter and get no gradient."""
    x = np.asarray(_x())
    stack = RecurrentStack(H, cell=cell, bidirectional=True)
    params = jax.jit(stack.init)(jax.random.key(1), x)
    apply = jax.jit(stack.apply)
    y, final = apply(params, x, jnp.asarray(LENGTHS))
    junk = x.copy()
    for b, n in enumerate(LENGTHS):
        junk[b, n:] = 100.0
        y_b, final_b = stack.apply(params, x[b:b + 1, :n])
        chex.assert_trees_all_close(y[b:b + 1, :n], y_b, atol=1e-6)
        np.testing.assert_array_equal(np.asarray(y[b, n:]), 0.0)
        chex.assert_trees_all_close(jax.tree.map(lambda a: a[b:b + 1], final), final_b,
                                    atol=1e-6)
    y_junk, final_junk = apply(params, junk, jnp.asarray(LENGTHS))
    chex.assert_trees_all_close((y_junk, final_junk), (y, final))
    gx = jax.grad(lambda xx: jnp.sum(stack.apply(params, xx, jnp.asarray(LENGTHS))[0] ** 2))(x)
    for b, n in enumerate(LENGTHS):
        np.testing.assert_array_equal(np.asarray(gx[b, n:]), 0.0)


def test_reverse_equals_forward_on_flipped_sequences():
    x = np.asarray(_x())
    fwd, bwd = Recurrent(H, "gru"), Recurrent(H, "gru", reverse=True)
    params = jax.jit(fwd.init)(jax.random.key(1), x)
    y_rev, _ = bwd.apply(params, x, jnp.asarray(LENGTHS))
    for b, n in enumerate(LENGTHS):
        y_f, _ = fwd.apply(params, x[b:b + 1, :n][:, ::-1])
        chex.assert_trees_all_close(y_rev[b:b + 1, :n], y_f[:, ::-1], atol=1e-6)


def test_bidirectional_stack_halves_are_the_two_directions():
    x = _x()
    stack = RecurrentStack(H, num_layers=1, cell="lstm", bidirectional=True)
    v = jax.jit(stack.init)(jax.random.key(1), x)
    y, finals = stack.apply(v, x, jnp.asarray(LENGTHS))
    chex.assert_shape(y, (B, T, 2 * H))
    p = v["params"]
    y_f, s_f = Recurrent(H, "lstm").apply({"params": p["layer_0_fwd"]}, x, jnp.asarray(LENGTHS))
    y_b, s_b = Recurrent(H, "lstm", reverse=True).apply(
        {"params": p["layer_0_bwd"]}, x, jnp.asarray(LENGTHS))
    chex.assert_trees_all_close(y, jnp.concatenate([y_f, y_b], -1), atol=1e-6)
    chex.assert_trees_all_close(finals[0], (s_f, s_b), atol=1e-6)


def test_stacking_dropout_and_parameter_names():
    x = _x()
    stack = RecurrentStack(H, num_layers=3, cell="gru", dropout=0.5)
    v = jax.jit(stack.init)(jax.random.key(1), x)
    assert sorted(v["params"]) == ["layer_0", "layer_1", "layer_2"]
    chex.assert_shape(v["params"]["layer_1"]["w_ih"], (H, 3 * H))
    y_eval1, _ = stack.apply(v, x)
    y_eval2, _ = stack.apply(v, x)
    chex.assert_trees_all_equal(y_eval1, y_eval2)
    y_a, _ = stack.apply(v, x, train=True, rngs={"dropout": jax.random.key(0)})
    y_b, _ = stack.apply(v, x, train=True, rngs={"dropout": jax.random.key(1)})
    assert not np.allclose(y_a, y_b) and not np.allclose(y_a, y_eval1)


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
def test_initial_and_final_state_chain_windows(cell):
    """Two windows with the state carried equal one long window (truncated BPTT)."""
    x = _x(shape=(B, 10, D))
    stack = RecurrentStack(H, num_layers=2, cell=cell)
    v = jax.jit(stack.init)(jax.random.key(1), x)
    y_full, s_full = stack.apply(v, x)
    y1, s1 = stack.apply(v, x[:, :4])
    y2, s2 = stack.apply(v, x[:, 4:], None, s1)
    chex.assert_trees_all_close(jnp.concatenate([y1, y2], 1), y_full, atol=1e-5)
    chex.assert_trees_all_close(s2, s_full, atol=1e-5)
    with pytest.raises(ValueError, match="num_layers"):
        stack.apply(v, x, None, s1[:1])


def _overfit(model, x, loss_of_out, steps=150, lr=1e-2, **kw):
    v = jax.jit(model.init)(jax.random.key(0), x, **kw)
    opt = optax.adam(lr)
    params = v["params"]
    state = jax.jit(opt.init)(params)  # one program, not one per parameter shape

    @jax.jit
    def step(params, state):
        loss, g = jax.value_and_grad(lambda p: loss_of_out(model.apply({"params": p}, x, **kw)))(
            params)
        updates, state = opt.update(g, state)
        return optax.apply_updates(params, updates), state, loss

    first = None
    for _ in range(steps):
        params, state, loss = step(params, state)
        first = loss if first is None else first
    return float(first), float(loss)


@pytest.mark.parametrize("name", ["rnn_lm", "lstm_lm", "gru_lm"])
def test_language_models_overfit_one_batch(name):
    tokens = jax.random.randint(jax.random.key(0), (4, 12), 0, 20)
    model = MODELS.get(name)(vocab_size=20, embed_dim=16, hidden_size=32)
    first, last = _overfit(model, tokens[:, :-1], lambda logits: jnp.mean(
        optax.softmax_cross_entropy_with_integer_labels(logits, tokens[:, 1:])))
    assert first > 2.5 and last < 0.1, (first, last)


def test_lm_state_carry_and_tied_embeddings():
    model = MODELS.get("gru_lm")(vocab_size=11, embed_dim=8, hidden_size=8, num_layers=2,
                                 tie_embeddings=True)
    tok = jax.random.randint(jax.random.key(0), (2, 9), 0, 11)
    v = jax.jit(model.init)(jax.random.key(1), tok)
    assert "head" not in v["params"]
    full = model.apply(v, tok)
    chex.assert_shape(full, (2, 9, 11))
    a, s = model.apply(v, tok[:, :5], return_state=True)
    b = model.apply(v, tok[:, 5:], initial_state=s)
    chex.assert_trees_all_close(jnp.concatenate([a, b], 1), full, atol=1e-5)
    with pytest.raises(ValueError, match="tie_embeddings"):
        MODELS.get("gru_lm")(vocab_size=11, embed_dim=8, hidden_size=6,
                             tie_embeddings=True).init(jax.random.key(1), tok)


@pytest.mark.parametrize("name,pool,bidir", [("lstm_classifier", "last", True),
                                              ("gru_classifier", "mean", False),
                                              ("rnn_classifier", "per_step", False)])
def test_sequence_models_overfit_one_batch(name, pool, bidir):
    x = _x(shape=(6, 9, 3))
    lengths = jnp.array([9, 4, 6, 9, 2, 7])
    labels = jnp.array([0, 1, 2, 1, 0, 2])
    model = MODELS.get(name)(num_outputs=3, hidden_size=16, pool=pool, bidirectional=bidir)
    if pool == "per_step":
        y = jnp.tile(labels[:, None], (1, 9))
        lf = lambda out: jnp.mean(optax.softmax_cross_entropy_with_integer_labels(out, y))
        first, last = _overfit(model, x, lf)
    else:
        lf = lambda out: jnp.mean(optax.softmax_cross_entropy_with_integer_labels(out, labels))
        first, last = _overfit(model, x, lf, lengths_B=lengths)
    assert first > 0.8 and last < 0.05, (first, last)


def test_token_classifier_padding_invariance():
    model = MODELS.get("lstm_classifier")(num_outputs=2, vocab_size=10, embed_dim=4,
                                          hidden_size=6, bidirectional=True)
    tok = jnp.array([[1, 2, 3, 0, 0], [4, 5, 6, 7, 8]])
    v = jax.jit(model.init)(jax.random.key(0), tok, lengths_B=jnp.array([3, 5]))
    out = model.apply(v, tok, lengths_B=jnp.array([3, 5]))
    alone = model.apply(v, tok[:1, :3])
    chex.assert_trees_all_close(out[:1], alone, atol=1e-6)


@pytest.mark.parametrize("cell", ["lstm"])
def test_forecaster_starts_naive_and_overfits(cell):
    t = jnp.arange(24, dtype=jnp.float32)
    series = jnp.sin(0.3 * t[None, :] + jnp.arange(4)[:, None])[..., None]
    x, y = series[:, :16], series[:, 16:]
    model = MODELS.get(f"{cell}_forecaster")(horizon=8, hidden_size=16)
    v = jax.jit(model.init)(jax.random.key(0), x)
    chex.assert_trees_all_close(model.apply(v, x), jnp.repeat(x[:, -1:], 8, axis=1))
    first, last = _overfit(model, x, lambda out: jnp.mean((out - y) ** 2), steps=150)
    assert last < 0.05 * first, (first, last)


def _count(name, **kw):
    model = MODELS.get(name)(**kw)
    shapes = jax.eval_shape(model.init, jax.random.key(0), jnp.zeros((1, 2), jnp.int32))
    return sum(int(np.prod(a.shape)) for a in jax.tree.leaves(shapes["params"]))


def test_parameter_counts_at_published_sizes():
    """Closed forms: LSTM layer 4H(D+H+1); embedding V*E; output H*V+V."""

    def lm(v, e, h, layers):
        rec = sum(4 * h * ((e if i == 0 else h) + h + 1) for i in range(layers))
        return v * e + rec + h * v + v

    assert _count("lstm_lm-zaremba_small") == lm(10000, 200, 200, 2) == 4_651_600
    assert _count("lstm_lm-zaremba_medium") == lm(10000, 650, 650, 2) == 19_775_200
    assert _count("lstm_lm-zaremba_large") == lm(10000, 1500, 1500, 2) == 66_022_000
    assert _count("lstm_lm-char_rnn") == lm(256, 512, 512, 2) == 4_460_800
    # GRU: 3H(D+H+1) + H (the candidate's recurrent bias, reset-after convention).
    assert _count("gru_lm", vocab_size=256, embed_dim=64, hidden_size=128) == (
        256 * 64 + 3 * 128 * (64 + 128 + 1) + 128 + 128 * 256 + 256)


def test_hidden_state_extraction():
    s = RecurrentStack(H, cell="lstm").zero_state(2)
    chex.assert_shape(state_hidden("lstm", s[0]), (2, H))


@pytest.mark.parametrize("cell,act,reverse,chunk", [
    ("rnn", "relu", True, None), ("lstm", "tanh", True, None), ("gru", "tanh", True, None),
    ("lstm", "tanh", False, 2), ("gru", "tanh", True, 4), ("rnn", "tanh", False, 3)])
def test_fused_backward_equals_autodiff_of_the_scan(cell, act, reverse, chunk):
    """The hand-written BPTT backward == jax autodiff of the same scan (lengths, reverse,
    initial state, final-state cotangents all exercised), with the input projection of all
    steps at once or `time_chunk` steps at a time (8 steps: chunks of 2, 4 and 1)."""
    x = _x() if chunk is None else _x(shape=(B, 8, D))
    fused = Recurrent(H, cell, activation=act, reverse=reverse, time_chunk=chunk)
    plain = Recurrent(H, cell, activation=act, reverse=reverse, fused_backward=False)
    v = jax.jit(fused.init)(jax.random.key(1), x)
    s0 = jax.tree.map(lambda a: a + 0.1, fused.apply(v, x)[1])

    def loss(m):
        def f(v, x, s0):
            y, s = m.apply(v, x, jnp.asarray(LENGTHS), s0)
            return jnp.sum(jnp.sin(y)) + sum(jnp.sum(leaf**2) for leaf in jax.tree.leaves(s))
        return jax.grad(f, argnums=(0, 1, 2))

    chex.assert_trees_all_close(loss(fused)(v, x, s0), loss(plain)(v, x, s0), atol=1e-5)


def test_time_chunk_size_divides_the_sequence():
    assert [time_chunk_size(12, c) for c in (None, 12, 20, 5, 4, 1)] == [12, 12, 12, 4, 4, 1]
    assert time_chunk_size(7, 3) == 1  # prime length: one step per input matmul
    assert time_chunk_size(64, None) == (16 if jax.default_backend() == "cpu" else 64)
    with pytest.raises(ValueError, match="time_chunk"):
        time_chunk_size(8, 0)


def test_stack_passes_compute_dtype_to_its_layers():
    """bfloat16 compute reaches every layer (parameters stay float32)."""
    m = RecurrentStack(H, num_layers=2, cell="gru", dtype=jnp.bfloat16, time_chunk=4)
    v = jax.jit(m.init)(jax.random.key(0), _x())
    y, _ = m.apply(v, _x())
    assert y.dtype == jnp.bfloat16
    assert all(p.dtype == jnp.float32 for p in jax.tree.leaves(v))
