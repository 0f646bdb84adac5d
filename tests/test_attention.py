"""Attention, positional encodings and blocks against numpy implementations of their equations,
plus the properties the Transformer family relies on: causality, padding invariance, KV-cached
decoding == full forward, scan == unrolled, remat == plain.
"""

from __future__ import annotations

import logging

import chex
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dl_arch.models.layers.attention import (
    MultiHeadAttention,
    blocked_causal_attention,
    causal_block_size,
    causal_mask,
    naive_attention,
    padding_mask,
    segment_mask,
)
from dl_arch.models.layers.position import apply_rope, sinusoidal_encoding
from dl_arch.models.layers.transformer_block import TransformerBlock, TransformerStack
from dl_arch.models.transformer import GPT, EncoderDecoderTransformer


@pytest.fixture(autouse=True)
def _strict_ranks():
    with jax.numpy_rank_promotion("raise"):
        yield


B, T, D, N = 2, 6, 16, 4


def numpy_mha(params, x, kv, mask, num_kv_heads):
    """softmax(Q K^T / sqrt(H) + mask) V per head, then the output projection, in float64."""
    p = jax.tree.map(lambda a: np.asarray(a, np.float64), params)
    x, kv = np.asarray(x, np.float64), np.asarray(kv, np.float64)
    q = np.einsum("btd,dnh->btnh", x, p["query"]["kernel"]) + p["query"]["bias"]
    k = np.einsum("bsd,dnh->bsnh", kv, p["key"]["kernel"]) + p["key"]["bias"]
    v = np.einsum("bsd,dnh->bsnh", kv, p["value"]["kernel"]) + p["value"]["bias"]
    groups = q.shape[2] // num_kv_heads
    out = np.zeros(q.shape)
    for n in range(q.shape[2]):
        kn, vn = k[:, :, n // groups], v[:, :, n // groups]
        scores = np.einsum("bth,bsh->bts", q[:, :, n], kn) / np.sqrt(q.shape[-1])
        if mask is not None:
            m = np.broadcast_to(np.asarray(mask)[:, 0], scores.shape)
            scores = np.where(m, scores, -1e30)
        scores = scores - scores.max(-1, keepdims=True)
        w = np.exp(scores)
        w = w / w.sum(-1, keepdims=True)
        out[:, :, n] = np.einsum("bts,bsh->bth", w, vn)
    return np.einsum("btnh,nhd->btd", out, p["out"]["kernel"]) + p["out"]["bias"]


def _masks():
    valid = jnp.array([[1, 1, 1, 1, 1, 1], [1, 1, 1, 1, 0, 0]], bool)
    seg = jnp.array([[1, 1, 1, 2, 2, 2], [1, 1, 2, 2, 2, 0]])
    return {
        "none": None,
        "causal": causal_mask(T),
        "padding": padding_mask(valid),
        "segment": segment_mask(seg),
        "causal+segment": jnp.logical_and(causal_mask(T), segment_mask(seg)),
    }


CASES = [(impl, m, kv) for impl in ("xla", "naive") for m in _masks() for kv in (N, 1)]


@pytest.mark.parametrize("impl,mask_kind,kv_heads", CASES + [("xla", "causal+segment", 2)])
def test_attention_matches_numpy_values_and_gradients(impl, mask_kind, kv_heads):
    mask = _masks()[mask_kind]
    x = jax.random.normal(jax.random.key(0), (B, T, D))
    layer = MultiHeadAttention(N, num_kv_heads=kv_heads, implementation=impl)
    params = jax.jit(layer.init)(jax.random.key(1), x)["params"]
    chex.assert_shape(params["key"]["kernel"], (D, kv_heads, D // N))
    apply = jax.jit(lambda p, x_: layer.apply({"params": p}, x_, mask=mask))
    out = apply(params, x)
    ref = numpy_mha(params, x, x, mask, kv_heads)
    chex.assert_trees_all_close(np.asarray(out), ref, atol=2e-5, rtol=2e-5)

    # gradient w.r.t. the input along a random direction vs central finite differences
    w = np.random.default_rng(0).normal(size=(B, T, D))
    g = jax.jit(jax.grad(lambda x_: jnp.sum(apply(params, x_) * w)))(x)
    v = np.random.default_rng(1).normal(size=x.shape)
    eps = 1e-4
    xs = np.asarray(x, np.float64)
    fd = (np.sum(numpy_mha(params, xs + eps * v, xs + eps * v, mask, kv_heads) * w)
          - np.sum(numpy_mha(params, xs - eps * v, xs - eps * v, mask, kv_heads) * w)) / (2 * eps)
    np.testing.assert_allclose(float(jnp.sum(g * v)), fd, rtol=1e-4, atol=1e-4)


def test_cross_attention_matches_numpy():
    x = jax.random.normal(jax.random.key(0), (B, T, D))
    kv = jax.random.normal(jax.random.key(1), (B, T + 3, D))
    mask = padding_mask(jnp.ones((B, T), bool), jnp.arange(T + 3)[None, :] < jnp.array([[9], [5]]))
    layer = MultiHeadAttention(N)
    params = jax.jit(layer.init)(jax.random.key(2), x, kv)["params"]
    out = layer.apply({"params": params}, x, kv, mask=mask)
    chex.assert_trees_all_close(np.asarray(out), numpy_mha(params, x, kv, mask, N), atol=2e-5)


def test_causal_flag_equals_causal_mask_and_naive_path():
    x = jax.random.normal(jax.random.key(0), (B, T, D))
    layer = MultiHeadAttention(N)
    params = jax.jit(layer.init)(jax.random.key(1), x)
    by_flag = layer.apply(params, x, causal=True)
    by_mask = layer.apply(params, x, mask=causal_mask(T))
    naive = MultiHeadAttention(N, implementation="naive").apply(params, x, causal=True)
    chex.assert_trees_all_close(by_flag, by_mask, atol=1e-6)
    chex.assert_trees_all_close(by_flag, naive, atol=1e-5)


def test_auto_picks_blocks_for_causal_self_attention_and_the_einsum_or_xla_path_otherwise():
    """"auto" picks by backend, mode and whether the attention is causal self-attention
    (auto_implementation); its outputs and gradients are the picked path's, bit for bit."""
    from dl_arch.models.layers.attention import auto_implementation

    assert auto_implementation(True, "cpu", causal_self=True) == "blocked"
    assert auto_implementation(False, "cpu", causal_self=True) == "blocked"
    assert auto_implementation(True, "cpu") == "naive"
    assert auto_implementation(False, "cpu") == "xla"
    assert auto_implementation(False, "tpu") == "auto"
    # GPU: cuDNN's flash attention for unmasked half-precision inputs, else JAX's choice (XLA)
    assert auto_implementation(True, "gpu", causal_self=True, dtype=jnp.bfloat16) == "cudnn"
    assert auto_implementation(False, "gpu", dtype=jnp.float16) == "cudnn"
    assert auto_implementation(True, "gpu", causal_self=True, dtype=jnp.float32) == "auto"
    assert auto_implementation(True, "gpu", dtype=jnp.bfloat16, masked=True) == "auto"
    # a padding or packing mask over self-attention: cuDNN too (2.3x XLA's on an H200)
    assert auto_implementation(True, "gpu", dtype=jnp.bfloat16, masked=True,
                               masked_self=True) == "cudnn"
    assert auto_implementation(True, "gpu", dtype=jnp.float32, masked=True,
                               masked_self=True) == "auto"
    assert auto_implementation(True, "gpu", causal_self=True) == "auto"
    x = jax.random.normal(jax.random.key(0), (B, 40, D))
    names = ("auto", "naive", "xla", "blocked")
    layers = {name: MultiHeadAttention(N, implementation=name) for name in names}
    params = jax.jit(layers["auto"].init)(jax.random.key(1), x)

    def grads(name, train, causal):
        loss = lambda p: jnp.sum(layers[name].apply(p, x, causal=causal, train=train) ** 2)
        return jax.jit(jax.value_and_grad(loss))(params)

    for train, causal, same in ((True, True, "blocked"), (False, True, "blocked"),
                                (True, False, "naive"), (False, False, "xla")):
        chex.assert_trees_all_equal(grads("auto", train, causal), grads(same, train, causal))


def test_auto_falls_back_to_xla_where_cudnn_refuses_and_cudnn_by_name_raises(monkeypatch, caplog):
    """On a GPU "auto" picks cuDNN for bfloat16 without a mask; where cuDNN refuses the call
    while it is traced (here: none on this CPU) the layer runs XLA's kernel, the same values
    bit for bit, and says so once. "cudnn" asked for by name keeps cuDNN's error."""
    from dl_arch.models.layers import attention

    monkeypatch.setattr(attention, "_backend", lambda: "gpu")
    attention._warn_once.cache_clear()
    x = jax.random.normal(jax.random.key(0), (B, 16, D)).astype(jnp.bfloat16)
    auto = MultiHeadAttention(N, implementation="auto", dtype=jnp.bfloat16)
    params = jax.jit(auto.init)(jax.random.key(1), x)
    with caplog.at_level(logging.WARNING, logger="dl_arch"):
        out = auto.apply(params, x, causal=True)
    assert "cuDNN attention refused" in caplog.text and "XLA's kernel instead" in caplog.text
    xla = MultiHeadAttention(N, implementation="xla", dtype=jnp.bfloat16)
    chex.assert_trees_all_equal(out, xla.apply(params, x, causal=True))
    by_name = MultiHeadAttention(N, implementation="cudnn", dtype=jnp.bfloat16)
    with pytest.raises(RuntimeError, match="cuDNN"):
        by_name.apply(params, x, causal=True)


@pytest.mark.parametrize("mask_kind", ["none", "segment", "padding"])
@pytest.mark.parametrize("kv_heads,block", [(4, 2), (2, 3), (1, 7), (4, 32)])
def test_blocked_causal_attention_equals_the_naive_path(mask_kind, kv_heads, block):
    """Query blocks against the keys they can see give the naive causal values, gradients
    and probabilities (zero above the diagonal), for blocks that do and don't divide T."""
    t, n, h = 11, 4, 8
    ks = jax.random.split(jax.random.key(0), 4)
    q = jax.random.normal(ks[0], (B, t, n, h))
    k, v = (jax.random.normal(kk, (B, t, kv_heads, h)) for kk in ks[1:3])
    w = jax.random.normal(ks[3], (B, t, n, h))
    valid = jnp.arange(t)[None, :] < jnp.array([[t], [7]])
    seg = jnp.array([[1] * 5 + [2] * 6, [1] * 3 + [2] * 8])
    mask = {"none": None, "segment": segment_mask(seg), "padding": padding_mask(valid)}[mask_kind]
    # a padded query sees no key; the two paths average different values there, so the
    # comparison (and the loss) keeps the real queries only
    keep_BT1 = valid[:, :, None] if mask_kind == "padding" else jnp.ones((B, t, 1), bool)

    def run(fn):
        loss = lambda q_, k_, v_: jnp.sum(jnp.where(keep_BT1[..., None], fn(q_, k_, v_)[0] * w, 0))
        out, probs = jax.jit(fn)(q, k, v)
        return (jnp.where(keep_BT1[..., None], out, 0), jnp.where(keep_BT1[:, None], probs, 0),
                jax.jit(jax.grad(loss, argnums=(0, 1, 2)))(q, k, v))

    blocked = run(lambda q_, k_, v_: blocked_causal_attention(q_, k_, v_, mask, block=block))
    naive = run(lambda q_, k_, v_: naive_attention(q_, k_, v_, mask, True))
    chex.assert_trees_all_close(blocked, naive, atol=1e-6, rtol=1e-5)
    assert float(jnp.max(jnp.abs(jnp.triu(blocked[1], k=1)))) == 0.0


def test_blocked_layer_matches_numpy_across_several_blocks():
    """The layer with implementation="blocked" and `causal=True` at a length of three
    default blocks (32, 32, 16) against the numpy equations, values and gradients."""
    t = 80
    assert causal_block_size(t) == 32
    seg = jnp.concatenate([jnp.ones((B, 30), jnp.int32), 2 * jnp.ones((B, t - 30), jnp.int32)], 1)
    x = jax.random.normal(jax.random.key(0), (B, t, D))
    layer = MultiHeadAttention(N, num_kv_heads=2, implementation="blocked")
    params = jax.jit(layer.init)(jax.random.key(1), x)["params"]
    for mask in (None, segment_mask(seg)):
        apply = jax.jit(lambda p, x_, m=mask: layer.apply({"params": p}, x_, mask=m, causal=True))
        full_mask = causal_mask(t) if mask is None else jnp.logical_and(causal_mask(t), mask)
        ref = numpy_mha(params, x, x, full_mask, 2)
        chex.assert_trees_all_close(np.asarray(apply(params, x)), ref, atol=2e-5, rtol=2e-5)
        w = np.random.default_rng(0).normal(size=(B, t, D))
        g = jax.jit(jax.grad(lambda x_: jnp.sum(apply(params, x_) * w)))(x)
        v = np.random.default_rng(1).normal(size=x.shape)
        eps, xs = 1e-4, np.asarray(x, np.float64)
        fd = (np.sum(numpy_mha(params, xs + eps * v, xs + eps * v, full_mask, 2) * w)
              - np.sum(numpy_mha(params, xs - eps * v, xs - eps * v, full_mask, 2) * w)) / (2 * eps)
        np.testing.assert_allclose(float(jnp.sum(g * v)), fd, rtol=1e-4, atol=1e-3)


def test_blocked_dropout_is_unbiased_and_each_block_draws_its_own_mask():
    """Probability dropout in the blocked path, at two default blocks (T = 64): each block
    has a Dropout of its own (its own rng draw), and the mean output over many dropout keys
    is the deterministic output (every block's kept probabilities scale by 1/keep)."""
    t = 64
    x = jax.random.normal(jax.random.key(0), (1, t, D))
    layer = MultiHeadAttention(N, attention_dropout=0.5, implementation="blocked")
    params = jax.jit(layer.init)(jax.random.key(1), x)
    plain = layer.apply(params, x, causal=True)

    def one(r):
        return layer.apply(params, x, causal=True, train=True, rngs={"dropout": r})

    seen = []

    def record(next_fun, args, kwargs, context):
        if isinstance(context.module, nn.Dropout):
            seen.append((context.module.name, args[0].shape))
        return next_fun(*args, **kwargs)

    with nn.intercept_methods(record):
        one(jax.random.key(3))
    assert seen == [("Dropout_0", (1, N, 32, 32)), ("Dropout_1", (1, N, 32, 64))]
    keys = jax.random.split(jax.random.key(2), 2000)
    outs = jax.jit(jax.vmap(one))(keys)
    assert float(jnp.abs(outs[0] - plain).max()) > 0.1  # dropout is on
    for rows in (slice(0, 32), slice(32, 64)):
        err = jnp.abs(outs.mean(0)[:, rows] - plain[:, rows]).mean()
        assert float(err) < 0.05 * float(jnp.abs(plain[:, rows]).mean()), rows


def test_blocked_falls_back_to_naive_without_causal_self_attention():
    x = jax.random.normal(jax.random.key(0), (B, T, D))
    kv = jax.random.normal(jax.random.key(1), (B, T + 2, D))
    layers = {name: MultiHeadAttention(N, implementation=name) for name in ("blocked", "naive")}
    params = jax.jit(layers["naive"].init)(jax.random.key(2), x, kv)
    for args, causal in (((x,), False), ((x, kv), False), ((x, kv), True)):
        same = [layers[name].apply(params, *args, causal=causal) for name in layers]
        chex.assert_trees_all_equal(*same)
    with pytest.raises(ValueError, match="as many keys as queries"):
        blocked_causal_attention(jnp.ones((1, 3, 2, 4)), jnp.ones((1, 5, 2, 4)),
                                 jnp.ones((1, 5, 2, 4)), None)


def test_bad_head_counts_raise_clear_errors():
    x = jnp.ones((1, 3, D))
    with pytest.raises(ValueError, match="num_kv_heads"):
        MultiHeadAttention(N, num_kv_heads=3).init(jax.random.key(0), x)
    with pytest.raises(ValueError, match="num_heads"):
        MultiHeadAttention(5).init(jax.random.key(0), x)
    with pytest.raises(ValueError, match="attention_impl"):
        MultiHeadAttention(N, implementation="flash").init(jax.random.key(0), x)


def test_sinusoidal_matches_paper_formula():
    pos = np.arange(10)
    table = np.asarray(sinusoidal_encoding(jnp.asarray(pos)[None], 8))[0]
    i = np.arange(4)
    angle = pos[:, None] / 10000 ** (2 * i[None, :] / 8)
    np.testing.assert_allclose(table[:, 0::2], np.sin(angle), atol=1e-5)
    np.testing.assert_allclose(table[:, 1::2], np.cos(angle), atol=1e-5)


def test_rope_matches_rotation_and_is_relative():
    h = 8
    x = np.random.default_rng(0).normal(size=(1, 5, 2, h)).astype(np.float32)
    pos = jnp.arange(5)[None]
    out = np.asarray(apply_rope(jnp.asarray(x), pos))
    # numpy: pair (i, i + h/2) rotated by angle pos * 10000^(-2i/h)
    theta = np.arange(5)[:, None] * 10000.0 ** (-np.arange(0, h, 2) / h)
    c, s = np.cos(theta)[None, :, None], np.sin(theta)[None, :, None]
    x1, x2 = x[..., : h // 2], x[..., h // 2:]
    np.testing.assert_allclose(out, np.concatenate([x1 * c - x2 * s, x2 * c + x1 * s], -1),
                               atol=1e-5)
    # <rope(q, m), rope(k, n)> depends only on m - n
    q, k = jnp.asarray(x[:, :1, :1]), jnp.asarray(x[:, 1:2, :1])
    dot = lambda m, n: float(jnp.sum(apply_rope(q, jnp.array([[m]]))
                                     * apply_rope(k, jnp.array([[n]]))))
    np.testing.assert_allclose(dot(3, 1), dot(7, 5), rtol=1e-4)


def _gpt(**kw):
    fields = dict(vocab_size=32, emb_dim=32, num_layers=2, num_heads=4, mlp_dim=64, max_len=16,
                  dropout_rate=0.0)
    fields.update(kw)
    return GPT(**fields)


def test_causality_no_gradient_from_future_positions():
    stack = TransformerStack(2, dict(num_heads=4, mlp_dim=32, causal=True, rope=True))
    x = jax.random.normal(jax.random.key(0), (1, T, D))
    params = jax.jit(stack.init)(jax.random.key(1), x)
    jac = jax.jit(jax.jacrev(lambda x_: stack.apply(params, x_)))(x)  # (1, T, D, 1, T, D)
    influence_TS = np.abs(np.asarray(jac)[0, :, :, 0]).sum(axis=(1, 3))
    assert np.all(influence_TS[np.triu_indices(T, k=1)] == 0.0)
    assert np.all(influence_TS[np.tril_indices(T)] > 0.0)


def test_gpt_logits_ignore_future_tokens():
    model = _gpt(position="rope")
    tokens = jax.random.randint(jax.random.key(0), (1, 8), 1, 32)
    params = jax.jit(model.init)(jax.random.key(1), tokens)
    changed = tokens.at[:, 5:].set((tokens[:, 5:] + 7) % 31 + 1)
    apply = jax.jit(model.apply)
    a, b = apply(params, tokens), apply(params, changed)
    chex.assert_trees_all_close(a[:, :5], b[:, :5], atol=1e-6)
    assert float(jnp.abs(a[:, 5:] - b[:, 5:]).max()) > 1e-3


def test_kv_cache_decoding_matches_full_forward_gpt():
    for kw in (dict(), dict(position="rope", num_kv_heads=2)):
        model = _gpt(**kw)
        tokens = jax.random.randint(jax.random.key(0), (2, 10), 1, 32)
        params = jax.jit(model.init)(jax.random.key(1), tokens)["params"]
        full = jax.jit(model.apply)({"params": params}, tokens)
        dec = model.clone(decode=True)
        cache = jax.jit(dec.init)(jax.random.key(0), jnp.ones((2, 16), jnp.int32))["cache"]
        # prefill 4 tokens in one chunk, then one token at a time
        step = jax.jit(lambda c, tok, dec=dec, params=params: dec.apply(
            {"params": params, "cache": c}, tok, mutable=["cache"]))
        logits, upd = step(cache, tokens[:, :4])
        steps = [logits]
        cache = upd["cache"]
        for t in range(4, 10):
            logits, upd = step(cache, tokens[:, t:t + 1])
            cache = upd["cache"]
            steps.append(logits)
        chex.assert_trees_all_close(jnp.concatenate(steps, axis=1), full, atol=2e-5)


def test_kv_cache_decoding_matches_full_forward_encoder_decoder():
    model = EncoderDecoderTransformer(vocab_size=20, emb_dim=32, num_heads=4,
                                      num_encoder_layers=2, num_decoder_layers=2, mlp_dim=64,
                                      max_len=16, dropout_rate=0.0)
    src = jnp.array([[3, 4, 5, 6, 0, 0], [7, 8, 9, 3, 4, 5]])
    tgt = jnp.array([[1, 5, 6, 7, 8], [1, 9, 3, 4, 2]])
    params = jax.jit(model.init)(jax.random.key(0), src, tgt)["params"]
    full = jax.jit(model.apply)({"params": params}, src, tgt)
    dec = model.clone(decode=True)
    cache = jax.jit(dec.init)(jax.random.key(0), src, jnp.ones((2, 8), jnp.int32))["cache"]
    encoded = jax.jit(lambda p: dec.apply(p, src, method="encode"))({"params": params})
    step = jax.jit(lambda c, tok: dec.apply({"params": params, "cache": c}, encoded, src, tok,
                                            method="decode_logits", mutable=["cache"]))
    outs = []
    for t in range(5):
        logits, upd = step(cache, tgt[:, t:t + 1])
        cache = upd["cache"]
        outs.append(logits)
    chex.assert_trees_all_close(jnp.concatenate(outs, axis=1), full, atol=2e-5)


def _stack(scan, remat):
    block = dict(num_heads=4, mlp_dim=64, pre_ln=True, causal=True, dropout_rate=0.0)
    return TransformerStack(3, block, scan=scan, remat=remat)


def test_scan_and_remat_match_unrolled_values_and_gradients():
    x = jax.random.normal(jax.random.key(0), (B, T, D * 2))
    plain = _stack(False, False)
    params = jax.jit(plain.init)(jax.random.key(1), x)["params"]
    # the scanned stack holds the same per-layer parameters stacked along axis 0
    layers = [params[f"layer_{i}"] for i in range(3)]
    stacked = {"layers": {"block": jax.tree.map(lambda *a: jnp.stack(a), *layers)},
               "final_norm": params["final_norm"]}
    loss = lambda m, p: jnp.sum(jnp.sin(m.apply({"params": p}, x)))
    ref_val, ref_grad = jax.jit(jax.value_and_grad(lambda p: loss(plain, p)))(params)
    for scan, remat in ((True, False), (True, True), (False, True)):
        p = stacked if scan else params
        val, grad = jax.jit(jax.value_and_grad(lambda q, s=scan, r=remat: loss(_stack(s, r), q))
                            )(p)
        chex.assert_trees_all_close(val, ref_val, rtol=1e-5)
        if scan:
            grad = {**{f"layer_{i}": jax.tree.map(lambda a, i=i: a[i], grad["layers"]["block"])
                       for i in range(3)}, "final_norm": grad["final_norm"]}
        chex.assert_trees_all_close(grad, ref_grad, atol=1e-5, rtol=1e-4)


def test_scanned_gpt_kv_cache_matches_full_forward():
    model = _gpt(scan=True, remat=True)
    tokens = jax.random.randint(jax.random.key(0), (1, 6), 1, 32)
    params = jax.jit(model.init)(jax.random.key(1), tokens)["params"]
    full = model.apply({"params": params}, tokens)
    dec = model.clone(decode=True)
    cache = jax.jit(dec.init)(jax.random.key(0), jnp.ones((1, 8), jnp.int32))["cache"]
    step = jax.jit(lambda c, tok: dec.apply({"params": params, "cache": c}, tok,
                                            mutable=["cache"]))
    outs = []
    for t in range(6):
        logits, upd = step(cache, tokens[:, t:t + 1])
        cache = upd["cache"]
        outs.append(logits)
    chex.assert_trees_all_close(jnp.concatenate(outs, axis=1), full, atol=2e-5)


@pytest.mark.parametrize("pre_ln", [True, False])
def test_block_post_and_pre_ln_match_numpy(pre_ln):
    x = jax.random.normal(jax.random.key(0), (1, 4, 8))
    block = TransformerBlock(num_heads=2, mlp_dim=16, pre_ln=pre_ln, activation="relu")
    params = jax.jit(block.init)(jax.random.key(1), x)["params"]
    out = np.asarray(block.apply({"params": params}, x))

    def ln(y, p):
        mu, var = y.mean(-1, keepdims=True), y.var(-1, keepdims=True)
        return (y - mu) / np.sqrt(var + 1e-6) * np.asarray(p["scale"]) + np.asarray(p["bias"])

    def mlp(y):
        p = params["mlp"]
        h = np.maximum(y @ np.asarray(p["fc1"]["kernel"]) + np.asarray(p["fc1"]["bias"]), 0)
        return h @ np.asarray(p["fc2"]["kernel"]) + np.asarray(p["fc2"]["bias"])

    att = lambda y: numpy_mha(params["self_attention"], y, y, None, 2)
    y = np.asarray(x, np.float64)
    if pre_ln:
        y = y + att(ln(y, params["self_attention_norm"]))
        y = y + mlp(ln(y, params["mlp_norm"]))
    else:
        y = ln(y + att(y), params["self_attention_norm"])
        y = ln(y + mlp(y), params["mlp_norm"])
    np.testing.assert_allclose(out, y, atol=2e-5)


def test_auto_tries_cudnn_under_a_self_attention_mask_but_not_across_sequences(monkeypatch,
                                                                               caplog):
    """On a GPU, a padding mask over self-attention goes to cuDNN too (here refused: no
    cuDNN on this CPU, so XLA's values, bit for bit, after a warning); a masked attention
    from one sequence to another of a different length stays on XLA's without trying."""
    from dl_arch.models.layers import attention

    monkeypatch.setattr(attention, "_backend", lambda: "gpu")
    attention._warn_once.cache_clear()
    x = jax.random.normal(jax.random.key(0), (B, 16, D)).astype(jnp.bfloat16)
    valid_BT = jnp.arange(16)[None, :] < jnp.array([16, 11])[:, None]
    auto = MultiHeadAttention(N, implementation="auto", dtype=jnp.bfloat16)
    xla = MultiHeadAttention(N, implementation="xla", dtype=jnp.bfloat16)
    params = jax.jit(auto.init)(jax.random.key(1), x)
    with caplog.at_level(logging.WARNING, logger="dl_arch"):
        out = auto.apply(params, x, mask=padding_mask(valid_BT))
    assert "cuDNN attention refused" in caplog.text
    chex.assert_trees_all_equal(out, xla.apply(params, x, mask=padding_mask(valid_BT)))
    caplog.clear()
    memory = x[:, :11]
    cross_mask = padding_mask(jnp.ones((B, 16), bool), valid_BT[:, :11])
    with caplog.at_level(logging.WARNING, logger="dl_arch"):
        out = auto.apply(params, x, memory, mask=cross_mask)
    assert "cuDNN" not in caplog.text
    chex.assert_trees_all_equal(out, xla.apply(params, x, memory, mask=cross_mask))
