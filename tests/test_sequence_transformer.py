"""The Transformer sequence model (`transformer_classifier`): padding, causality, learning."""

from __future__ import annotations

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dl_arch.models.sequence_transformer import SequenceTransformer
from dl_arch.testing import load_config, overfit_one_batch

B, T, F = 3, 9, 2
LENGTHS = np.array([9, 4, 6], np.int32)


def _model(**kw) -> SequenceTransformer:
    return SequenceTransformer(num_outputs=3, emb_dim=16, num_layers=2, num_heads=2,
                               mlp_dim=32, **kw)


def _x(seed: int = 0) -> jax.Array:
    return jax.random.normal(jax.random.key(seed), (B, T, F))


@pytest.mark.parametrize("pool", ["cls", "mean"])
def test_padded_sequence_equals_the_same_sequence_unpadded(pool):
    """Second formulation: an example padded to T gives what its real steps alone give
    (sinusoidal positions do not depend on T), whatever the padding holds."""
    m = _model(pool=pool)
    apply = jax.jit(m.apply)  # one compile per shape instead of one per eager op
    x = _x()
    v = jax.jit(m.init)(jax.random.key(1), x)
    padded = apply(v, x, lengths_B=jnp.asarray(LENGTHS))
    noisy = x.at[1, LENGTHS[1]:].set(100.0)  # garbage after example 1's length
    chex.assert_trees_all_close(apply(v, noisy, lengths_B=jnp.asarray(LENGTHS)), padded,
                                atol=1e-5)
    for i, n in enumerate(LENGTHS):
        alone = apply(v, x[i:i + 1, :n])
        chex.assert_trees_all_close(padded[i:i + 1], alone, atol=1e-5)


def test_causal_steps_ignore_the_future():
    m = _model(pool="per_step", causal=True)
    x = _x()
    v = jax.jit(m.init)(jax.random.key(1), x)
    y = m.apply(v, x)
    chex.assert_shape(y, (B, T, 3))
    y2 = m.apply(v, x.at[:, 5:].set(-7.0))
    chex.assert_trees_all_close(y[:, :5], y2[:, :5], atol=1e-5)
    assert not np.allclose(y[:, 5:], y2[:, 5:])


def test_token_inputs_and_bad_pool():
    m = SequenceTransformer(num_outputs=2, vocab_size=11, emb_dim=8, num_layers=1,
                            num_heads=2, mlp_dim=16, pool="mean")
    tokens = jnp.arange(B * T).reshape(B, T) % 11
    y = m.apply(m.init(jax.random.key(0), tokens), tokens)
    chex.assert_shape(y, (B, 2))
    with pytest.raises(ValueError, match="config.model.pool"):
        _model(pool="last").init(jax.random.key(0), _x())


def test_transformer_overfits_one_adding_batch():
    history, _ = overfit_one_batch(load_config("configs/transformer_adding.py:smoke"), steps=100)
    assert history[-1]["loss"] < 0.2 * history[0]["loss"]
