"""`dl_arch.models.layers.embed`: the lookup against `jnp.take` and `nn.Embed`, and its
bfloat16 gradient against a float64 numpy sum of the same cotangents."""

import chex
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.extend import core

from dl_arch.models.layers.embed import Embed, lookup

ROWS, FEATURES = 96, 24


def _case(key: int = 0):
    k1, k2, k3 = jax.random.split(jax.random.key(key), 3)
    table = jax.random.normal(k1, (ROWS, FEATURES))
    # Zipf-like ids: a few rows take most tokens, as in text (the case the float32 sum is for)
    ids = jax.random.categorical(k2, -jnp.log1p(jnp.arange(ROWS, dtype=jnp.float32)),
                                 shape=(4, 50))
    dy = jax.random.normal(k3, (4, 50, FEATURES))
    return table, ids, dy


def _grad(fn, table, dy):
    return jax.jit(jax.grad(lambda t: jnp.sum(fn(t).astype(jnp.float32) * dy)))(table)


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.bfloat16, jnp.float16])
def test_forward_is_take(dtype):
    table, ids, _ = _case()
    table = table.astype(dtype)
    chex.assert_trees_all_equal(jax.jit(lookup)(table, ids), jnp.take(table, ids, axis=0))


def test_float32_gradient_is_takes():
    table, ids, dy = _case(1)
    chex.assert_trees_all_equal(_grad(lambda t: lookup(t, ids), table, dy),
                                _grad(lambda t: jnp.take(t, ids, axis=0), table, dy))


@pytest.mark.parametrize("dtype", [jnp.bfloat16, jnp.float16])
def test_narrow_gradient_is_the_exact_sum_rounded_once(dtype):
    table, ids, dy = _case(2)
    grad = np.asarray(_grad(lambda t: lookup(t, ids), table.astype(dtype), dy), np.float64)
    # the cotangent reaching the lookup is dy rounded to the table's dtype
    exact = np.zeros((ROWS, FEATURES))
    np.add.at(exact, np.asarray(ids).ravel(),
              np.asarray(dy.astype(dtype), np.float64).reshape(-1, FEATURES))
    eps = float(jnp.finfo(dtype).eps)
    np.testing.assert_array_less(np.abs(grad - exact), eps * np.abs(exact) + 1e-6)
    # XLA's own gradient of the take sums in the narrow type: further from the exact sum
    theirs = np.asarray(_grad(lambda t: jnp.take(t, ids, axis=0), table.astype(dtype), dy),
                        np.float64)
    assert np.abs(grad - exact).max() < np.abs(theirs - exact).max()


def test_narrow_gradient_scatters_in_float32():
    table, ids, dy = _case(3)
    jaxpr = jax.make_jaxpr(jax.grad(lambda t: jnp.sum(lookup(t, ids).astype(jnp.float32) * dy)))(
        table.astype(jnp.bfloat16))
    scatters = [e for e in jaxpr.jaxpr.eqns if e.primitive.name.startswith("scatter")]
    for eqn in jaxpr.jaxpr.eqns:  # the custom VJP's backward is one nested jaxpr
        for sub in core.jaxprs_in_params(eqn.params):
            scatters += [e for e in sub.eqns if e.primitive.name.startswith("scatter")]
    assert scatters and all(e.invars[0].aval.dtype == jnp.float32 for e in scatters)


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.bfloat16])
def test_embed_matches_flax_embed(dtype):
    _, ids, dy = _case(4)
    ours, theirs = Embed(ROWS, FEATURES, dtype=dtype), nn.Embed(ROWS, FEATURES, dtype=dtype)
    variables = theirs.init(jax.random.key(5), ids)
    chex.assert_trees_all_equal(ours.init(jax.random.key(5), ids), variables)
    chex.assert_trees_all_equal(ours.apply(variables, ids), theirs.apply(variables, ids))
    grads = [jax.grad(lambda v, m=m: jnp.sum(m.apply(v, ids).astype(jnp.float32) * dy))(variables)
             for m in (ours, theirs)]
    chex.assert_trees_all_close(*grads, rtol=0.02 if dtype == jnp.bfloat16 else 0, atol=0.05)
    with pytest.raises(ValueError, match="integer ids"):
        ours.apply(variables, jnp.zeros((2,), jnp.float32))


def _narrow_scatters(jaxpr, found: list) -> list:
    """Scatter-adds (any nesting depth) whose operand is bfloat16 or float16."""
    for eqn in jaxpr.eqns:
        if "scatter" in eqn.primitive.name and eqn.invars[0].aval.dtype in (jnp.bfloat16,
                                                                              jnp.float16):
            found.append(f"{eqn.primitive.name} {eqn.invars[0].aval}")
        for sub in core.jaxprs_in_params(eqn.params):
            _narrow_scatters(sub, found)
    return found


@pytest.mark.parametrize("spec", ["configs/gpt_text.py:smoke", "configs/lstm_text.py:smoke",
                                  "configs/seq2seq_dates.py:smoke",
                                  "configs/bert_qa_offline.py:smoke"])
def test_text_models_train_steps_sum_no_gradient_in_bfloat16(spec):
    """Every token table (GPT's tokens and positions, the LSTM's, the seq2seq decoder's raw
    table, BERT's token, type and position tables) looks up through `lookup`: the bfloat16
    loop step has no scatter-add in a narrow type (on a GPU, the slow case)."""
    from dl_arch.testing import load_config
    from dl_arch.train import metric_window
    from dl_arch.train.trainer import Trainer

    config = load_config(spec)
    config.dtype = "bfloat16"
    trainer = Trainer(config)
    batch = trainer.first_batch()
    state = trainer.init_state(batch)
    window = metric_window.fresh(trainer.metric_shapes(state, batch))
    jaxpr = trainer.loop_step().trace(state, batch, window).jaxpr.jaxpr
    assert _narrow_scatters(jaxpr, []) == []
    # the check sees the case it is for: XLA's own gradient of a bfloat16 take
    bare = jax.make_jaxpr(jax.grad(lambda t: jnp.take(t, jnp.array([0, 1, 1]), axis=0).sum()))
    assert _narrow_scatters(bare(jnp.ones((4, 2), jnp.bfloat16)).jaxpr, [])
