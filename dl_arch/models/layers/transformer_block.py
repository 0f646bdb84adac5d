"""Transformer blocks (pre-LN or post-LN; optional cross-attention) and a layer stack that
can be `nn.scan`-ned over depth (compile time flat in the number of layers) and `nn.remat`-ed
(activations recomputed in the backward pass instead of stored).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from dl_arch.config.errors import ConfigError
from dl_arch.models.layers.attention import MultiHeadAttention

Array = jax.Array

ACTIVATIONS: dict[str, Callable[[Array], Array]] = {
    "gelu": lambda x: jax.nn.gelu(x, approximate=False),  # BERT, ViT
    "gelu_tanh": lambda x: jax.nn.gelu(x, approximate=True),  # GPT-2
    "relu": jax.nn.relu,  # the original Transformer
}


def activation(name: str) -> Callable[[Array], Array]:
    """Looks up a feed-forward activation by name, failing with the known names."""
    if name not in ACTIVATIONS:
        raise ConfigError(f"unknown activation '{name}' in config.model.activation; "
                         f"known: {', '.join(ACTIVATIONS)}")
    return ACTIVATIONS[name]


class FeedForward(nn.Module):
    """Position-wise MLP: Dense(mlp_dim) -> activation -> dropout -> Dense(width)."""

    mlp_dim: int
    activation: str = "gelu"
    dropout_rate: float = 0.0
    kernel_init: Callable[..., Any] = nn.initializers.xavier_uniform()
    dtype: Any = jnp.float32
    param_dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x_BTD: Array, *, train: bool = False) -> Array:
        dense = lambda f, name: nn.Dense(f, kernel_init=self.kernel_init, dtype=self.dtype,
                                         param_dtype=self.param_dtype, name=name)
        h_BTF = activation(self.activation)(dense(self.mlp_dim, "fc1")(x_BTD))
        h_BTF = nn.Dropout(self.dropout_rate)(h_BTF, deterministic=not train)
        return dense(x_BTD.shape[-1], "fc2")(h_BTF)


class TransformerBlock(nn.Module):
    """Self-attention (+ optional cross-attention) + feed-forward, each with a residual.

    pre_ln=True:  x + f(LN(x))   (GPT-2, ViT; stable without warm-up)
    pre_ln=False: LN(x + f(x))   (the original Transformer, BERT)
    """

    num_heads: int
    mlp_dim: int
    num_kv_heads: int | None = None
    pre_ln: bool = True
    cross_attention: bool = False  # decoder block of an encoder-decoder
    causal: bool = False
    activation: str = "gelu"
    dropout_rate: float = 0.0
    attention_dropout: float = 0.0
    rope: bool = False
    implementation: str = "xla"
    decode: bool = False
    layer_norm_eps: float = 1e-6
    kernel_init: Callable[..., Any] = nn.initializers.xavier_uniform()
    dtype: Any = jnp.float32
    param_dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x_BTD: Array, encoded_BSD: Array | None = None, mask: Array | None = None,
                 cross_mask: Array | None = None, train: bool = False) -> Array:
        ln = lambda name: nn.LayerNorm(self.layer_norm_eps, dtype=self.dtype,
                                       param_dtype=self.param_dtype, name=name)
        drop = lambda y: nn.Dropout(self.dropout_rate)(y, deterministic=not train)
        attn = lambda name, **kw: MultiHeadAttention(
            self.num_heads, num_kv_heads=self.num_kv_heads,
            attention_dropout=self.attention_dropout, implementation=self.implementation,
            kernel_init=self.kernel_init, dtype=self.dtype, param_dtype=self.param_dtype,
            name=name, **kw)

        def sublayer(x, f, name):
            if self.pre_ln:
                return x + drop(f(ln(f"{name}_norm")(x)))
            return ln(f"{name}_norm")(x + drop(f(x)))

        x_BTD = sublayer(x_BTD, lambda y: attn("self_attention", rope=self.rope,
                                               decode=self.decode)(
            y, mask=mask, causal=self.causal, train=train), "self_attention")
        if self.cross_attention:
            if encoded_BSD is None:
                raise ValueError("a cross-attention block needs encoder outputs")
            x_BTD = sublayer(x_BTD, lambda y: attn("cross_attention")(
                y, encoded_BSD, mask=cross_mask, train=train), "cross_attention")
        ffn = FeedForward(self.mlp_dim, self.activation, self.dropout_rate, self.kernel_init,
                          self.dtype, self.param_dtype, name="mlp")
        x_BTD = sublayer(x_BTD, lambda y: ffn(y, train=train), "mlp")
        self.sow("intermediates", "residual_rms", jnp.sqrt(jnp.mean(jnp.square(
            x_BTD.astype(jnp.float32)))))
        return x_BTD


class _ScanStep(nn.Module):
    """Adapts a block to the `(carry, x) -> (carry, y)` signature that `nn.scan` wants."""

    block_kwargs: dict[str, Any]
    train: bool
    remat: bool

    @nn.compact
    def __call__(self, x_BTD, encoded_BSD, mask, cross_mask):
        # train is positional argument 5 (self is 0) and static: it switches dropout on/off
        cls = nn.remat(TransformerBlock, static_argnums=(5,), prevent_cse=False) if self.remat \
            else TransformerBlock
        return cls(**self.block_kwargs, name="block")(
            x_BTD, encoded_BSD, mask, cross_mask, self.train), None


class TransformerStack(nn.Module):
    """`num_layers` blocks, unrolled (`layer_0`, `layer_1`, ...) or scanned (`layers`, with
    every parameter stacked along a leading depth axis); an optional final LayerNorm.
    """

    num_layers: int
    block_kwargs: dict[str, Any]
    scan: bool = False
    remat: bool = False
    final_norm: bool = True
    layer_norm_eps: float = 1e-6
    dtype: Any = jnp.float32
    param_dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x_BTD: Array, encoded_BSD: Array | None = None, mask: Array | None = None,
                 cross_mask: Array | None = None, *, train: bool = False) -> Array:
        kwargs = dict(self.block_kwargs, dtype=self.dtype, param_dtype=self.param_dtype)
        if self.scan:
            scanned = nn.scan(
                _ScanStep,
                variable_axes={"params": 0, "cache": 0, "intermediates": 0},
                split_rngs={"params": True, "dropout": True},
                in_axes=(nn.broadcast, nn.broadcast, nn.broadcast),
                length=self.num_layers,
            )
            x_BTD, _ = scanned(kwargs, train, self.remat, name="layers")(
                x_BTD, encoded_BSD, mask, cross_mask)
        else:
            cls = nn.remat(TransformerBlock, static_argnums=(5,)) if self.remat \
                else TransformerBlock
            for i in range(self.num_layers):  # remat wants `train` positional and static
                x_BTD = cls(**kwargs, name=f"layer_{i}")(x_BTD, encoded_BSD, mask, cross_mask,
                                                         train)
        if self.final_norm:
            x_BTD = nn.LayerNorm(self.layer_norm_eps, dtype=self.dtype,
                                 param_dtype=self.param_dtype, name="final_norm")(x_BTD)
        return x_BTD
