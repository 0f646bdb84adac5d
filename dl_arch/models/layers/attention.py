"""Multi-head (and grouped-query) attention on `jax.nn.dot_product_attention`, with a KV cache.

Shapes: B batch, T query length, S key/value length, D model width, N query heads,
K key/value heads (GQA: N is a multiple of K), H head dim. Masks are boolean, True where
a query may attend, broadcastable to (B, N, T, S); build them with the helpers below
(padding, causal, packed-sequence segment ids) and combine with `nn.combine_masks`.

`implementation` picks the kernel: "xla" (fused XLA, any backend), "cudnn" (flash
attention on NVIDIA GPUs, bfloat16/float16), "auto" (the fastest available:
`auto_implementation`), "naive" (explicit einsum + softmax, the reference path; also used
whenever attention-probability dropout is active, because the fused kernels never
materialise the probabilities) or "blocked" (the naive math for causal self-attention in
blocks of queries, each against only the keys it can see: about half the FLOPs and score
traffic; naive otherwise).
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
from jax import lax

from dl_arch.config.errors import ConfigError
from dl_arch.models.layers.position import apply_rope

Array = jax.Array
IMPLEMENTATIONS = ("xla", "cudnn", "auto", "naive", "blocked")


def padding_mask(q_valid_BT: Array, kv_valid_BS: Array | None = None) -> Array:
    """(B, 1, T, S) mask: a pair attends only when both query and key are real tokens."""
    kv_valid_BS = q_valid_BT if kv_valid_BS is None else kv_valid_BS
    return nn.make_attention_mask(q_valid_BT, kv_valid_BS, dtype=jnp.bool_)


def causal_mask(length: int) -> Array:
    """(1, 1, T, T) lower-triangular mask: position i sees positions <= i."""
    return nn.make_causal_mask(jnp.ones((1, length), jnp.int32), dtype=jnp.bool_)


def segment_mask(q_segment_BT: Array, kv_segment_BS: Array | None = None) -> Array:
    """(B, 1, T, S) mask for packed sequences: tokens attend only within their segment."""
    kv_segment_BS = q_segment_BT if kv_segment_BS is None else kv_segment_BS
    return nn.make_attention_mask(q_segment_BT, kv_segment_BS, jnp.equal, dtype=jnp.bool_)


# the only inputs cuDNN's fused attention takes
CUDNN_DTYPES = (jnp.dtype(jnp.bfloat16), jnp.dtype(jnp.float16))
log = logging.getLogger("dl_arch")


def _backend() -> str:
    """The default backend's name (a seam: tests stand in a GPU)."""
    return jax.default_backend()


def auto_implementation(train: bool, backend: str | None = None, *, causal_self: bool = False,
                        dtype: Any = None, masked: bool = False, masked_self: bool = False
                        ) -> str:
    """The kernel "auto" runs.

    - CPU: "blocked" for causal self-attention (forward and backward 1.4-1.9x faster than
      the einsum path, forward 1.2-2x faster than XLA's fused kernel), else the einsum path
      when training (1.0-1.7x faster than XLA's fused attention) and XLA's otherwise
      (docs/results/benchmarks.md).
    - GPU: cuDNN's fused attention for bfloat16/float16 inputs without a mask (causal or
      not) or under a mask over self-attention (`masked_self`: padding or packed segments,
      not a decoding cache), else XLA's. JAX's own choice (`implementation=None`) is always
      XLA's, which stores the T x T scores. On an H200 (B8 T2048, 12 heads of 64, forward
      and backward in bfloat16) cuDNN took 1.60 ms against XLA's 6.37 causal and 2.53 ms
      against 5.92 under a padding mask. Where cuDNN refuses a call (no cuDNN, a GPU before
      Ampere, a head dim it lacks), the layer falls back to XLA's with a warning.
    - TPU and others: "auto", JAX's own choice.
    """
    backend = backend or _backend()
    if backend == "gpu":
        half = dtype is not None and jnp.dtype(dtype) in CUDNN_DTYPES
        return "cudnn" if half and (masked_self or not masked) else "auto"
    if backend != "cpu":
        return "auto"
    if causal_self:
        return "blocked"
    return "naive" if train else "xla"


def fused_attention(q_BTNH: Array, k_BSKH: Array, v_BSKH: Array, mask: Array | None,
                    causal: bool, implementation: str | None, fall_back: bool = False) -> Array:
    """`jax.nn.dot_product_attention` with this kernel (None: JAX's choice). `fall_back`:
    where cuDNN refuses the call while it is traced, XLA's kernel instead, with a warning
    (for "auto"'s pick; a cuDNN asked for by name raises)."""
    try:
        return jax.nn.dot_product_attention(q_BTNH, k_BSKH, v_BSKH, mask=mask, is_causal=causal,
                                            implementation=implementation)
    except (RuntimeError, NotImplementedError, ValueError) as error:
        if not (fall_back and implementation == "cudnn"):
            raise
        _warn_once(f"cuDNN attention refused {tuple(q_BTNH.shape)} {q_BTNH.dtype} ({error}); "
                   "attention_impl 'auto' runs XLA's kernel instead")
        return jax.nn.dot_product_attention(q_BTNH, k_BSKH, v_BSKH, mask=mask, is_causal=causal,
                                            implementation="xla")


@functools.cache
def _warn_once(message: str) -> None:
    log.warning(message)


def causal_block_size(length: int) -> int:
    """Query block of `blocked_causal_attention`: about 8 blocks a sequence, at least 32
    queries each (fastest of 32 to 512 at T = 128 to 2,048 on CPU, forward and backward)."""
    return max(32, -(-length // 64) * 8)


def _shared_kv_heads(q_BTNH: Array, k_BSKH: Array, v_BSKH: Array) -> tuple[Array, Array]:
    """Keys and values with one head per query head (GQA: each serves n // k query heads)."""
    n, k = q_BTNH.shape[2], k_BSKH.shape[2]
    if n == k:
        return k_BSKH, v_BSKH
    return jnp.repeat(k_BSKH, n // k, axis=2), jnp.repeat(v_BSKH, n // k, axis=2)


def _attend(q_BTNH: Array, k_BSNH: Array, v_BSNH: Array, mask: Array | None,
            dropout: Callable[[Array], Array] | None) -> tuple[Array, Array]:
    """softmax(Q K^T / sqrt(H), masked) V; returns (output BTNH, probabilities BNTS in f32)."""
    scale = q_BTNH.shape[-1] ** -0.5
    logits_BNTS = jnp.einsum("btnh,bsnh->bnts", q_BTNH, k_BSNH,
                             preferred_element_type=jnp.float32) * scale
    if mask is not None:
        logits_BNTS = jnp.where(mask, logits_BNTS, jnp.finfo(jnp.float32).min)
    probs_BNTS = jax.nn.softmax(logits_BNTS, axis=-1)
    used = probs_BNTS if dropout is None else dropout(probs_BNTS)
    out_BTNH = jnp.einsum("bnts,bsnh->btnh", used.astype(v_BSNH.dtype), v_BSNH)
    return out_BTNH, probs_BNTS


def _and_causal(mask: Array | None, t: int, s: int) -> Array:
    """`mask` and the lower-triangular (1, 1, T, S) mask: query i sees keys <= i."""
    return nn.combine_masks(mask, jnp.tril(jnp.ones((t, s), jnp.bool_))[None, None],
                            dtype=jnp.bool_)


def naive_attention(q_BTNH: Array, k_BSKH: Array, v_BSKH: Array, mask: Array | None,
                    causal: bool, dropout: Callable[[Array], Array] | None = None
                    ) -> tuple[Array, Array]:
    """Explicit einsum/softmax attention; returns (output BTNH, probabilities BNTS in f32)."""
    k_BSNH, v_BSNH = _shared_kv_heads(q_BTNH, k_BSKH, v_BSKH)
    if causal:
        mask = _and_causal(mask, q_BTNH.shape[1], k_BSNH.shape[1])
    return _attend(q_BTNH, k_BSNH, v_BSNH, mask, dropout)


def blocked_causal_attention(q_BTNH: Array, k_BTKH: Array, v_BTKH: Array, mask: Array | None,
                             dropout: Callable[[Array], Array] | None = None,
                             block: int | None = None) -> tuple[Array, Array]:
    """Causal self-attention as `naive_attention(..., causal=True)` computes it, one block of
    queries at a time against only the keys up to the block's last query: the masked-out
    scores above the diagonal blocks are never computed. Returns (output BTNH,
    probabilities BNTS in f32, zero above the diagonal blocks). A query with no visible key
    at all (a padded query) averages the values it could see; the naive path averages all."""
    t = q_BTNH.shape[1]
    if k_BTKH.shape[1] != t:
        raise ValueError(f"blocked causal attention needs as many keys as queries, got "
                         f"{k_BTKH.shape[1]} keys for {t} queries")
    block = block or causal_block_size(t)
    k_BTNH, v_BTNH = _shared_kv_heads(q_BTNH, k_BTKH, v_BTKH)
    mask = _and_causal(mask, t, t)  # (.., T, T): each block reads its rows and first columns
    outs, probs = [], []
    for start in range(0, t, block):
        stop = min(start + block, t)
        out, p = _attend(q_BTNH[:, start:stop], k_BTNH[:, :stop], v_BTNH[:, :stop],
                         mask[..., start:stop, :stop], dropout)
        outs.append(out)
        probs.append(jnp.pad(p, ((0, 0), (0, 0), (0, 0), (0, t - stop))))
    return jnp.concatenate(outs, axis=1), jnp.concatenate(probs, axis=2)


class MultiHeadAttention(nn.Module):
    """Multi-head attention with optional GQA, RoPE and a KV cache (`decode=True`).

    Self-attention when `kv_BSD` is None, cross-attention otherwise. In decode mode the
    layer keeps `cache/{cached_key, cached_value, cache_index}`: initialise it by running
    `init` on a full-length input, then feed one chunk (prompt or one token) per call.
    """

    num_heads: int
    num_kv_heads: int | None = None  # None = num_heads (plain MHA); 1 = multi-query
    head_dim: int | None = None  # None = input width // num_heads
    out_features: int | None = None  # None = input width
    use_bias: bool = True
    attention_dropout: float = 0.0  # dropout on the attention probabilities (einsum paths)
    rope: bool = False  # rotary position embedding on queries and keys
    rope_base: float = 10000.0
    implementation: str = "xla"  # xla | cudnn | auto | naive | blocked
    decode: bool = False  # autoregressive decoding with a key/value cache
    kernel_init: Callable[..., Any] = nn.initializers.xavier_uniform()
    dtype: Any = jnp.float32
    param_dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x_BTD: Array, kv_BSD: Array | None = None, *, mask: Array | None = None,
                 causal: bool = False, positions_BT: Array | None = None,
                 train: bool = False) -> Array:
        """Attends from `x_BTD` to `kv_BSD` (itself if None); returns (B, T, out_features)."""
        if self.implementation not in IMPLEMENTATIONS:
            raise ConfigError(f"attention implementation '{self.implementation}' is unknown; "
                             f"set config.model.attention_impl to one of {IMPLEMENTATIONS}")
        n = self.num_heads
        k_heads = n if self.num_kv_heads is None else self.num_kv_heads
        if n % k_heads:
            raise ConfigError(f"num_heads={n} is not a multiple of num_kv_heads={k_heads}; "
                             "set config.model.num_kv_heads to a divisor of num_heads")
        d = x_BTD.shape[-1]
        h = self.head_dim or d // n
        if self.head_dim is None and d % n:
            raise ConfigError(f"width {d} is not divisible by num_heads={n}; "
                             "change config.model.num_heads or the model width")
        dense = lambda heads, name: nn.DenseGeneral(
            (heads, h), use_bias=self.use_bias, kernel_init=self.kernel_init,
            dtype=self.dtype, param_dtype=self.param_dtype, name=name)
        self_attention = kv_BSD is None
        kv_BSD = x_BTD if self_attention else kv_BSD
        q_BTNH = dense(n, "query")(x_BTD)
        k_BSKH = dense(k_heads, "key")(kv_BSD)
        v_BSKH = dense(k_heads, "value")(kv_BSD)

        t = x_BTD.shape[1]
        if self.decode and self_attention:
            q_BTNH, k_BSKH, v_BSKH, cache_mask, offset = self._update_cache(
                q_BTNH, k_BSKH, v_BSKH)
            if cache_mask is not None:
                mask = nn.combine_masks(mask, cache_mask, dtype=jnp.bool_)
                causal = False  # the cache mask already hides the future
        else:
            offset = 0
        if self.rope:
            if positions_BT is None:
                positions_BT = offset + jnp.arange(t)[None, :]
            q_BTNH = apply_rope(q_BTNH, positions_BT, self.rope_base)
            # cached keys were rotated when they were written (see _update_cache)
            if not (self.decode and self_attention):
                k_BSKH = apply_rope(k_BSKH, positions_BT, self.rope_base)

        use_dropout = train and self.attention_dropout > 0.0
        same_length = q_BTNH.shape[1] == k_BSKH.shape[1]
        causal_self = causal and same_length
        implementation = self.implementation
        if implementation == "auto":
            implementation = auto_implementation(
                train, causal_self=causal_self, dtype=q_BTNH.dtype, masked=mask is not None,
                masked_self=(mask is not None and self_attention and same_length
                             and not self.decode))
        if implementation in ("naive", "blocked") or use_dropout:
            drop = None
            if use_dropout:
                drop = lambda p: nn.Dropout(self.attention_dropout)(p, deterministic=False)
            if implementation == "blocked" and causal_self:
                out_BTNH, probs = blocked_causal_attention(q_BTNH, k_BSKH, v_BSKH, mask, drop)
            else:
                out_BTNH, probs = naive_attention(q_BTNH, k_BSKH, v_BSKH, mask, causal, drop)
            self.sow("intermediates", "attention_probs", probs)
        else:
            out_BTNH = fused_attention(
                q_BTNH, k_BSKH, v_BSKH, mask, causal,
                None if implementation == "auto" else implementation,
                fall_back=self.implementation == "auto")
        return nn.DenseGeneral(
            self.out_features or d, axis=(-2, -1), use_bias=self.use_bias,
            kernel_init=self.kernel_init, dtype=self.dtype, param_dtype=self.param_dtype,
            name="out")(out_BTNH)

    def _update_cache(self, q_BTNH: Array, k_BTKH: Array, v_BTKH: Array):
        """Writes this chunk's keys/values at `cache_index`; returns the full cache + mask."""
        initialised = self.has_variable("cache", "cached_key")
        cached_k = self.variable("cache", "cached_key", jnp.zeros, k_BTKH.shape, k_BTKH.dtype)
        cached_v = self.variable("cache", "cached_value", jnp.zeros, v_BTKH.shape, v_BTKH.dtype)
        index = self.variable("cache", "cache_index", lambda: jnp.zeros((), jnp.int32))
        if not initialised:  # the init call only shapes the cache; attend as usual
            if self.rope:
                pos = jnp.arange(k_BTKH.shape[1])[None, :]
                k_BTKH = apply_rope(k_BTKH, pos, self.rope_base)
            return q_BTNH, k_BTKH, v_BTKH, None, 0
        t, s = q_BTNH.shape[1], cached_k.value.shape[1]
        start = index.value
        if self.rope:
            k_BTKH = apply_rope(k_BTKH, start + jnp.arange(t)[None, :], self.rope_base)
        k_BSKH = lax.dynamic_update_slice(cached_k.value, k_BTKH.astype(cached_k.value.dtype),
                                          (0, start, 0, 0))
        v_BSKH = lax.dynamic_update_slice(cached_v.value, v_BTKH.astype(cached_v.value.dtype),
                                          (0, start, 0, 0))
        cached_k.value, cached_v.value = k_BSKH, v_BSKH
        index.value = start + t
        q_pos_T = start + jnp.arange(t)
        mask_TS = jnp.arange(s)[None, :] <= q_pos_T[:, None]
        return q_BTNH, k_BSKH, v_BSKH, mask_TS[None, None], start
