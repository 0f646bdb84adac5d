"""Transformer models: exact published parameter counts, overfitting one batch, padding
invariance, dtypes and the errors that bad configs give.
"""

from __future__ import annotations

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from dl_arch.models.transformer import GPT, Bert, EncoderDecoderTransformer, ViT
from dl_arch.registry import MODELS


def n_params(name: str, *inputs, **fields) -> int:
    """Parameter count from `jax.eval_shape` (nothing is materialised)."""
    model = MODELS.get(name)(**fields)
    shapes = jax.eval_shape(lambda *a: model.init(jax.random.key(0), *a), *inputs)["params"]
    return sum(int(np.prod(x.shape)) for x in jax.tree.leaves(shapes))


TOK = jax.ShapeDtypeStruct((1, 8), jnp.int32)


def test_published_parameter_counts():
    # BERT-base: vocab 30,522, 512 positions, 2 token types, with pooler (no MLM head)
    assert n_params("bert_base", TOK, head="none") == 109_482_240
    # GPT-2 small: vocab 50,257, context 1,024, tied embeddings
    assert n_params("gpt2_small", TOK) == 124_439_808
    # ViT-B/16 at 224x224 with 1,000 classes
    assert n_params("vit_b16", jax.ShapeDtypeStruct((1, 224, 224, 3), jnp.float32)) == 86_567_656


def test_other_variant_counts_follow_the_formulas():
    d, v, layers = 512, 37000, 6
    attn, ffn, ln = 4 * (d * d + d), 2 * d * 2048 + 2048 + d, 2 * d
    enc = layers * (attn + ffn + 2 * ln)
    dec = layers * (2 * attn + ffn + 3 * ln)
    assert n_params("transformer_base", TOK, TOK) == v * d + enc + dec
    # the scanned layout has the same parameters, stacked
    assert n_params("gpt2_small", TOK, scan=True) == 124_439_808
    # GQA with 4 of 12 heads for keys/values saves 2 * 2/3 of the k/v projections
    kv_saving = 12 * 2 * (768 * 512 + 512)
    assert n_params("gpt2_small", TOK, num_kv_heads=4) == 124_439_808 - kv_saving


def _fit(model, inputs, loss_fn, steps=60, lr=3e-3):
    params = jax.jit(model.init)(jax.random.key(0), *inputs)["params"]
    opt = optax.adam(lr)
    state = jax.jit(opt.init)(params)  # one program, not one per parameter shape

    @jax.jit
    def step(params, state):
        loss, g = jax.value_and_grad(lambda p: loss_fn(model.apply({"params": p}, *inputs)))(
            params)
        updates, state = opt.update(g, state)
        return optax.apply_updates(params, updates), state, loss

    losses = []
    for _ in range(steps):
        params, state, loss = step(params, state)
        losses.append(float(loss))
    return losses


def _xent(logits, labels):
    return optax.softmax_cross_entropy_with_integer_labels(logits, labels).mean()


# The other models overfit one batch through their tasks and configs
# (tests/test_transformer_tasks.py::test_configs_overfit_one_batch; ViT there pools with gap).
def test_vit_with_class_token_overfits_one_batch():
    images = jax.random.uniform(jax.random.key(4), (4, 16, 16, 3))
    labels = jnp.array([0, 1, 2, 3])
    m = MODELS.get("vit_nano")(pool="cls", num_classes=4)
    losses = _fit(m, (images,), lambda lg: _xent(lg, labels), steps=60)
    assert losses[-1] < 0.05, losses[::10]


def test_padding_does_not_change_outputs():
    bert = Bert(vocab_size=30, hidden=32, num_layers=2, num_heads=2, mlp_dim=64, max_len=16,
                head="classify", num_classes=3, dropout_rate=0.0)
    tokens = jnp.array([[5, 6, 7, 8, 9]])
    padded = jnp.array([[5, 6, 7, 8, 9, 0, 0, 0]])
    p = jax.jit(bert.init)(jax.random.key(0), padded)  # jitted: one compile, not one per op
    for pool in ("cls", "mean"):
        apply = jax.jit(bert.clone(pool=pool).apply)
        chex.assert_trees_all_close(apply(p, tokens), apply(p, padded), atol=1e-5)

    ed = MODELS.get("transformer_tiny")(dropout_rate=0.0)
    tgt = jnp.array([[1, 4, 5]])
    p = jax.jit(ed.init)(jax.random.key(0), padded, tgt)
    apply = jax.jit(ed.apply)
    chex.assert_trees_all_close(apply(p, tokens, tgt), apply(p, padded, tgt), atol=1e-5)


def test_segment_ids_keep_packed_documents_apart():
    gpt = GPT(vocab_size=40, emb_dim=32, num_layers=2, num_heads=4, mlp_dim=64, max_len=16,
              dropout_rate=0.0, position="rope")
    a, b = jnp.array([[3, 4, 5, 6]]), jnp.array([[7, 8, 9]])
    packed = jnp.concatenate([a, b], axis=1)
    seg = jnp.array([[1, 1, 1, 1, 2, 2, 2]])
    p = jax.jit(gpt.init)(jax.random.key(0), packed)
    apply = jax.jit(gpt.apply)
    out = apply(p, packed, segment_ids_BT=seg)
    chex.assert_trees_all_close(out[:, :4], apply(p, a), atol=1e-5)
    # RoPE is relative, so the second document is unaffected by its offset too
    chex.assert_trees_all_close(out[:, 4:], apply(p, b), atol=1e-4)


def test_bfloat16_compute_gives_float32_logits():
    tokens = jnp.ones((2, 8), jnp.int32)
    for model, inputs in ((GPT(vocab_size=64, emb_dim=32, num_layers=1, num_heads=2,
                               mlp_dim=64, max_len=8, dtype=jnp.bfloat16), (tokens,)),
                          (ViT(num_classes=5, patch_size=4, hidden=32, num_layers=1,
                               num_heads=2, mlp_dim=64, dtype=jnp.bfloat16),
                           (jnp.ones((2, 8, 8, 3)),))):
        variables = jax.jit(model.init)(jax.random.key(0), *inputs)
        assert jax.tree.leaves(variables)[0].dtype == jnp.float32
        out = jax.jit(model.apply)(variables, *inputs)
        assert out.dtype == jnp.float32 and bool(jnp.all(jnp.isfinite(out)))


def test_bad_configs_raise_one_line_errors():
    with pytest.raises(ValueError, match="patch_size"):
        ViT(patch_size=5).init(jax.random.key(0), jnp.ones((1, 16, 16, 3)))
    with pytest.raises(ValueError, match="max_len"):
        GPT(vocab_size=8, emb_dim=8, num_layers=1, num_heads=2, mlp_dim=8, max_len=4).init(
            jax.random.key(0), jnp.ones((1, 6), jnp.int32))
    with pytest.raises(ValueError, match="config.model.head"):
        Bert(head="nsp").init(jax.random.key(0), jnp.ones((1, 4), jnp.int32))
    with pytest.raises(ValueError, match="config.model.position"):
        EncoderDecoderTransformer(position="alibi").init(
            jax.random.key(0), jnp.ones((1, 4), jnp.int32), jnp.ones((1, 4), jnp.int32))
    with pytest.raises(ValueError, match="config.model.activation"):
        MODELS.get("gpt_nano")(activation="swish").init(jax.random.key(0),
                                                        jnp.ones((1, 4), jnp.int32))


def test_every_registered_variant_builds():
    names = [n for n in MODELS.names() if n.split("_")[0] in ("transformer", "bert", "gpt",
                                                                "gpt2", "vit")
             and "ctc" not in n]  # transformer_ctc* read log-mel frames, not tokens
    assert {"transformer_base", "bert_base", "bert_tiny", "gpt2_small", "gpt_nano", "vit_ti16",
            "vit_s16", "vit_b16", "vit_b32", "vit_small32"} <= set(names)
    image = jax.ShapeDtypeStruct((1, 32, 32, 3), jnp.float32)
    for name in names:
        if name == "transformer_classifier":  # a sequence model with no default head size
            assert n_params(name, TOK, num_outputs=2, vocab_size=16) > 0
            continue
        inputs = (image,) if name.startswith("vit") else (TOK, TOK) if name.startswith(
            "transformer") else (TOK,)
        assert n_params(name, *inputs) > 0
