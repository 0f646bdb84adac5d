"""Embedding lookup whose gradient is summed in float32, for tables cast to bfloat16.

The gradient of `jnp.take(table, ids)` is a scatter-add of one row per token into the
table. XLA's GPU scatter-add of a bfloat16 table is fast for spread-out ids but slow when
many tokens share a row, as in text: on an H200 it took 2.7 ms of `gpt_text`'s 5.9 ms step
(256 rows, 4,096 tokens), and alone 22 ms for GPT-2's table with 16,384 Zipf-distributed
tokens, against 0.05 and 0.1 ms in float32 (docs/results/benchmarks.md). Models keep
float32 parameters and cast them to their compute dtype, so the float32 sum is also the
more accurate one. The forward is unchanged, and float32 tables keep XLA's gradient.
"""

from __future__ import annotations

import functools

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

Array = jax.Array


@functools.partial(jax.custom_vjp, nondiff_argnums=(0,))
def _take_summing_in_f32(rows: int, table_VD: Array, ids: Array) -> Array:
    del rows
    return jnp.take(table_VD, ids, axis=0)


def _fwd(rows: int, table_VD: Array, ids: Array) -> tuple[Array, Array]:
    del rows
    return jnp.take(table_VD, ids, axis=0), ids


def _bwd(rows: int, ids: Array, dy: Array) -> tuple[Array, np.ndarray]:
    dy_ND = dy.reshape(-1, dy.shape[-1]).astype(jnp.float32)
    dtable_VD = jnp.zeros((rows, dy.shape[-1]), jnp.float32).at[ids.reshape(-1)].add(dy_ND)
    return dtable_VD.astype(dy.dtype), np.zeros(ids.shape, jax.dtypes.float0)


_take_summing_in_f32.defvjp(_fwd, _bwd)


def lookup(table_VD: Array, ids: Array) -> Array:
    """`jnp.take(table_VD, ids, axis=0)` (shape ids.shape + (D,)), its gradient summed in
    float32 when the table is in a narrower float type."""
    if not jnp.issubdtype(table_VD.dtype, jnp.floating) or table_VD.dtype.itemsize >= 4:
        return jnp.take(table_VD, ids, axis=0)
    return _take_summing_in_f32(table_VD.shape[0], table_VD, ids)


class Embed(nn.Embed):
    """`nn.Embed` (same parameters, same values) looking its rows up with `lookup`."""

    def __call__(self, inputs: Array) -> Array:
        if not jnp.issubdtype(inputs.dtype, jnp.integer):
            raise ValueError(f"Embed takes integer ids, got {inputs.dtype}")
        (embedding,) = self.promote_dtype(self.embedding, dtype=self.dtype, inexact=False)
        if self.num_embeddings == 1:
            return jnp.broadcast_to(embedding, (*inputs.shape, self.features))
        return lookup(embedding, inputs)
