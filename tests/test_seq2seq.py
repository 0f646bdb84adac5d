"""Attention encoder-decoder: numpy reference of the decoder, masking, decoding, overfitting."""

from __future__ import annotations

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from dl_arch.models.seq2seq import Seq2SeqAttention

B, S, T, V = 3, 6, 5, 11
LENS = jnp.array([6, 2, 4])


def _model(cell="gru", **kw):
    return Seq2SeqAttention(V, V, embed_dim=8, hidden_size=10, attention_dim=7, readout_dim=9,
                            cell=cell, **kw)


def _data(seed=0):
    k1, k2 = jax.random.split(jax.random.key(seed))
    src = jax.random.randint(k1, (B, S), 3, V)
    tgt = jax.random.randint(k2, (B, T), 3, V)
    return src, tgt


def _sig(v):
    return 1 / (1 + np.exp(-v))


@pytest.mark.parametrize("cell", ["gru", "lstm"])
def test_decoder_matches_numpy_equations(cell):
    """Teacher-forced logits and attention == a numpy loop over the Bahdanau equations."""
    model = _model(cell)
    src, tgt = _data()
    v = jax.jit(model.init)(jax.random.key(1), src, LENS, tgt)
    logits, attn = model.apply(v, src, LENS, tgt, return_attention=True)
    enc = model.apply(v, src, LENS, method=model.encode)
    p = jax.tree.map(lambda a: np.asarray(a, np.float64), v["params"])
    mem = np.asarray(enc["memory"], np.float64)
    keys = mem @ p["key_proj"]["kernel"] + p["key_proj"]["bias"]
    state = jax.tree.map(lambda a: np.asarray(a, np.float64), enc["state"])
    h = state[1] if cell == "lstm" else state
    c_cell = state[0] if cell == "lstm" else None
    H = 10
    for t in range(T):
        e = p["tgt_embed"][np.asarray(tgt[:, t])]
        score = (np.tanh(keys + (h @ p["w_query"])[:, None, :]) @ p["v"])[..., 0]
        score = np.where(np.arange(S)[None] < np.asarray(LENS)[:, None], score, -np.inf)
        a = np.exp(score - score.max(1, keepdims=True))
        a /= a.sum(1, keepdims=True)
        ctx = np.einsum("bs,bsc->bc", a, mem)
        xg = e @ p["w_emb"] + ctx @ p["w_ctx"] + p["b"]
        hg = h @ p["w_hh"]
        if cell == "gru":
            r = _sig(xg[:, :H] + hg[:, :H])
            z = _sig(xg[:, H:2 * H] + hg[:, H:2 * H])
            n = np.tanh(xg[:, 2 * H:] + r * (hg[:, 2 * H:] + p["b_hn"]))
            h = (1 - z) * n + z * h
        else:
            g = xg + hg
            c_cell = _sig(g[:, H:2 * H]) * c_cell + _sig(g[:, :H]) * np.tanh(g[:, 2 * H:3 * H])
            h = _sig(g[:, 3 * H:]) * np.tanh(c_cell)
        rd = np.tanh(np.concatenate([h, ctx, e], -1) @ p["w_readout"] + p["b_readout"])
        ref = rd @ p["w_out"] + p["b_out"]
        chex.assert_trees_all_close(logits[:, t], ref.astype(np.float32), atol=1e-5, rtol=1e-5)
        chex.assert_trees_all_close(attn[:, t], a.astype(np.float32), atol=1e-6)


def test_source_padding_is_ignored():
    model = _model()
    src, tgt = _data()
    v = jax.jit(model.init)(jax.random.key(1), src, LENS, tgt)
    junk = jnp.where(jnp.arange(S)[None] < LENS[:, None], src, 7)
    chex.assert_trees_all_close(model.apply(v, junk, LENS, tgt), model.apply(v, src, LENS, tgt),
                                atol=1e-6)
    _, attn = model.apply(v, src, LENS, tgt, return_attention=True)
    np.testing.assert_array_equal(np.asarray(attn[1, :, 2:]), 0.0)
    chex.assert_trees_all_close(attn.sum(-1), jnp.ones((B, T)), atol=1e-6)


def _seq_logprob(model, v, src, tokens):
    """Sum of log p(token) under teacher forcing, up to and including the first EOS."""
    dec_in = jnp.concatenate([jnp.full((B, 1), model.bos_id), tokens[:, :-1]], 1)
    logp = jax.nn.log_softmax(model.apply(v, src, LENS, dec_in))
    tok_lp = jnp.take_along_axis(logp, tokens[..., None], -1)[..., 0]
    is_eos = tokens == model.eos_id
    before_eos = jnp.cumsum(is_eos, 1) - is_eos == 0
    return jnp.sum(tok_lp * before_eos, 1)


def test_greedy_beam_and_teacher_forcing_agree():
    model = _model()
    src, tgt = _data()
    v = jax.jit(model.init)(jax.random.key(3), src, LENS, tgt)
    greedy, attn = model.apply(v, src, LENS, 6, method=model.greedy)
    chex.assert_shape(attn, (B, 6, S))
    # Second formulation: feeding the greedy output back with teacher forcing gives the
    # same argmax at every step before EOS.
    dec_in = jnp.concatenate([jnp.full((B, 1), model.bos_id), greedy[:, :-1]], 1)
    tf_argmax = jnp.argmax(model.apply(v, src, LENS, dec_in), -1)
    valid = jnp.cumsum(greedy == model.eos_id, 1) - (greedy == model.eos_id) == 0
    np.testing.assert_array_equal(np.where(valid, tf_argmax, -1), np.where(valid, greedy, -1))
    beam1 = model.apply(v, src, LENS, 6, 1, 0.0, method=model.beam_search)
    np.testing.assert_array_equal(np.asarray(beam1), np.asarray(greedy))
    beam4 = model.apply(v, src, LENS, 6, 4, 0.0, method=model.beam_search)
    assert np.all(np.asarray(_seq_logprob(model, v, src, beam4))
                  >= np.asarray(_seq_logprob(model, v, src, greedy)) - 1e-5)


def test_overfits_one_batch_and_decodes_it():
    model = _model(cell="lstm")
    src, tgt = _data(1)
    tgt = tgt.at[:, -1].set(model.eos_id)
    dec_in = jnp.concatenate([jnp.full((B, 1), model.bos_id), tgt[:, :-1]], 1)
    params = jax.jit(model.init)(jax.random.key(0), src, LENS, dec_in)["params"]
    opt = optax.adam(3e-2)
    st = jax.jit(opt.init)(params)  # one program, not one per parameter shape

    @jax.jit
    def step(params, st):
        def lf(p):
            logits = model.apply({"params": p}, src, LENS, dec_in)
            return optax.softmax_cross_entropy_with_integer_labels(logits, tgt).mean()

        loss, g = jax.value_and_grad(lf)(params)
        up, st = opt.update(g, st)
        return optax.apply_updates(params, up), st, loss

    first = None
    for _ in range(120):
        params, st, loss = step(params, st)
        first = loss if first is None else first
    assert float(first) > 2.0 and float(loss) < 0.05, (first, loss)
    greedy, _ = model.apply({"params": params}, src, LENS, T, method=model.greedy)
    np.testing.assert_array_equal(np.asarray(greedy), np.asarray(tgt))
    beam = model.apply({"params": params}, src, LENS, T, 3, method=model.beam_search)
    np.testing.assert_array_equal(np.asarray(beam), np.asarray(tgt))


def test_rnnsearch_parameter_count():
    from dl_arch.registry import MODELS

    model = MODELS.get("seq2seq_attention-rnnsearch")()
    x = jnp.zeros((1, 3), jnp.int32)
    shapes = jax.eval_shape(model.init, jax.random.key(0), x, jnp.array([3]), x)
    n = sum(int(np.prod(a.shape)) for a in jax.tree.leaves(shapes))
    v, e, h, a, r = 30000, 620, 1000, 1000, 500
    gru = lambda d: 3 * h * (d + h + 1) + h
    expected = (v * e + 2 * gru(e) + (h * h + h) + (2 * h * a + a)  # encoder, bridge, keys
                + v * e + e * 3 * h + 2 * h * 3 * h + h * 3 * h + h * a + 3 * h + h + a
                + (h + 2 * h + e) * r + r + r * v + v)
    assert n == expected, (n, expected)
