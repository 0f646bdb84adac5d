"""The Transformer family: the original encoder-decoder, BERT, GPT and the Vision Transformer.

All four are stacks of `TransformerBlock`s (`dl_arch.models.layers.transformer_block`)
around different embeddings and heads. Token id 0 is padding everywhere. Logits are
returned in float32 whatever the compute dtype.

Registered variants (published sizes; `*_tiny`/`*_nano` are for tests and CPU runs):
  transformer_base, transformer_big, transformer_tiny     encoder-decoder (translation)
  bert_base, bert_large, bert_tiny, bert_mini              BERT encoder (MLM / classifier)
  gpt2_small, gpt2_medium, gpt_micro, gpt_nano             GPT decoder (language model)
  vit_ti16, vit_s16, vit_b16, vit_ti32, vit_s32, vit_b32,  Vision Transformer
  vit_small32 (32x32 images, patch 4), vit_nano
"""

from __future__ import annotations

import functools
from typing import Any, ClassVar

import flax.linen as nn
import jax
import jax.numpy as jnp

from dl_arch.config.errors import ConfigError
from dl_arch.models.cnn.common import check_images
from dl_arch.models.layers.attention import IMPLEMENTATIONS, padding_mask, segment_mask
from dl_arch.models.layers.embed import Embed
from dl_arch.models.layers.position import LearnedPositionEmbedding, sinusoidal_encoding
from dl_arch.models.layers.transformer_block import ACTIVATIONS, TransformerStack
from dl_arch.registry import register_model

Array = jax.Array


def _kernel_init(init_std: float | None):
    """normal(init_std) (BERT/GPT/ViT convention) or Xavier-uniform (original) when None."""
    return nn.initializers.normal(init_std) if init_std else nn.initializers.xavier_uniform()


# Checks every model of the family shares (see `dl_arch.config.fields.model_fields`).
COMMON_CHECKS: dict[str, dict[str, Any]] = {
    "activation": dict(choices=tuple(ACTIVATIONS)),
    "attention_impl": dict(choices=IMPLEMENTATIONS),
    "hidden": dict(low=1),
}


def _check_length(t: int, max_len: int, what: str) -> None:
    """Fails with the fix when a sequence is longer than the position table."""
    if t > max_len:
        raise ConfigError(f"{what} length {t} exceeds config.model.max_len={max_len}; "
                         "raise max_len or shorten the sequences")


class _DecodePosition(nn.Module):
    """Positions of the current chunk: 0..T-1, or continuing a counter in `cache` when decoding."""

    decode: bool

    @nn.compact
    def __call__(self, batch: int, t: int) -> Array:
        positions_BT = jnp.broadcast_to(jnp.arange(t)[None, :], (batch, t))
        if not self.decode:
            return positions_BT
        initialised = self.has_variable("cache", "position")
        counter = self.variable("cache", "position", lambda: jnp.zeros((), jnp.int32))
        if initialised:
            positions_BT = positions_BT + counter.value
            counter.value = counter.value + t
        return positions_BT


class EncoderDecoderTransformer(nn.Module):
    """The original Transformer (Vaswani et al. 2017): post-LN, sinusoidal positions, ReLU
    feed-forward, one embedding table shared by source, target and the output projection.
    """

    vocab_size: int = 37000  # shared source/target subword vocabulary
    emb_dim: int = 512  # model width
    num_heads: int = 8  # attention heads per layer
    num_encoder_layers: int = 6  # encoder blocks
    num_decoder_layers: int = 6  # decoder blocks
    mlp_dim: int = 2048  # hidden width of each feed-forward layer
    max_len: int = 256  # longest source or target sequence
    dropout_rate: float = 0.1  # dropout on embeddings and after each sublayer in training
    attention_dropout: float = 0.0  # dropout on the attention weights in training
    pre_ln: bool = False  # LayerNorm before each sublayer (False: after, as in the paper)
    activation: str = "relu"  # feed-forward activation
    position: str = "sinusoidal"  # sinusoidal | learned
    share_embeddings: bool = True  # one table for source and target (shared subword vocab)
    init_std: float | None = None  # std of normal weight init (None: Xavier-uniform, the paper's)
    layer_norm_eps: float = 1e-6  # LayerNorm epsilon
    scan: bool = False  # nn.scan over the layers (compile time flat in depth)
    remat: bool = False  # recompute activations in the backward pass to save memory
    attention_impl: str = "xla"  # attention kernel: xla | cudnn | auto | naive | blocked
    decode: bool = False  # autoregressive decoding with a key/value cache
    dtype: Any = jnp.float32
    param_dtype: Any = jnp.float32

    field_checks: ClassVar[dict[str, dict[str, Any]]] = {
        **COMMON_CHECKS, "position": dict(choices=("sinusoidal", "learned"))}

    def setup(self):
        if self.position not in ("sinusoidal", "learned"):
            raise ConfigError(f"config.model.position='{self.position}' is unknown; "
                             "use 'sinusoidal' or 'learned'")
        embed = lambda: Embed(self.vocab_size, self.emb_dim,
                              embedding_init=nn.initializers.normal(self.emb_dim**-0.5),
                              dtype=self.dtype, param_dtype=self.param_dtype)
        self.target_embed = embed()
        if not self.share_embeddings:
            self.source_embed = embed()
        if self.position == "learned":
            self.source_positions = LearnedPositionEmbedding(
                self.max_len, self.emb_dim, dtype=self.dtype, param_dtype=self.param_dtype)
            self.target_positions = LearnedPositionEmbedding(
                self.max_len, self.emb_dim, dtype=self.dtype, param_dtype=self.param_dtype)
        block = dict(num_heads=self.num_heads, mlp_dim=self.mlp_dim, pre_ln=self.pre_ln,
                     activation=self.activation, dropout_rate=self.dropout_rate,
                     attention_dropout=self.attention_dropout,
                     implementation=self.attention_impl, layer_norm_eps=self.layer_norm_eps,
                     kernel_init=_kernel_init(self.init_std))
        stack = functools.partial(TransformerStack, scan=self.scan, remat=self.remat,
                                  final_norm=self.pre_ln, layer_norm_eps=self.layer_norm_eps,
                                  dtype=self.dtype, param_dtype=self.param_dtype)
        self.encoder = stack(self.num_encoder_layers, block)
        self.decoder = stack(self.num_decoder_layers,
                             dict(block, causal=True, cross_attention=True, decode=self.decode))
        self.decode_position = _DecodePosition(self.decode)
        self.dropout = nn.Dropout(self.dropout_rate)

    def _embed(self, tokens_BT: Array, positions_BT: Array, table: nn.Embed,
               learned: nn.Module | None, train: bool) -> Array:
        x_BTD = table(tokens_BT) * jnp.sqrt(self.emb_dim).astype(self.dtype)
        if learned is not None:
            x_BTD = x_BTD + learned(positions_BT)
        else:
            x_BTD = x_BTD + sinusoidal_encoding(positions_BT, self.emb_dim).astype(self.dtype)
        return self.dropout(x_BTD, deterministic=not train)

    def encode(self, source_BS: Array, *, train: bool = False) -> Array:
        """Encoder states (B, S, D); padded source positions are masked out of attention."""
        b, s = source_BS.shape
        _check_length(s, self.max_len, "source")
        positions = jnp.broadcast_to(jnp.arange(s)[None], (b, s))
        table = self.target_embed if self.share_embeddings else self.source_embed
        x_BSD = self._embed(source_BS, positions, table,
                            self.source_positions if self.position == "learned" else None, train)
        valid_BS = source_BS > 0
        return self.encoder(x_BSD, None, padding_mask(valid_BS), None, train=train)

    def decode_logits(self, encoded_BSD: Array, source_BS: Array, target_in_BT: Array, *,
                      train: bool = False) -> Array:
        """Next-token logits (B, T, V) in float32 given encoder states and shifted targets."""
        b, t = target_in_BT.shape
        positions_BT = self.decode_position(b, t)
        if not self.decode:
            _check_length(t, self.max_len, "target")
        y_BTD = self._embed(target_in_BT, positions_BT, self.target_embed,
                            self.target_positions if self.position == "learned" else None, train)
        cross = padding_mask(jnp.ones((b, t), jnp.bool_), source_BS > 0)
        y_BTD = self.decoder(y_BTD, encoded_BSD, None, cross, train=train)
        return self.target_embed.attend(y_BTD).astype(jnp.float32)

    def __call__(self, source_BS: Array, target_in_BT: Array, *, train: bool = False) -> Array:
        """Teacher-forced logits (B, T, V) for `target_in` (targets shifted right, BOS first)."""
        encoded_BSD = self.encode(source_BS, train=train)
        return self.decode_logits(encoded_BSD, source_BS, target_in_BT, train=train)


def bert_sequence(module: nn.Module, tokens_BT: Array, token_types_BT: Array | None,
                  train: bool, extra_BTD: Array | None = None) -> tuple[Array, nn.Embed]:
    """BERT's token path, built in `module`'s compact `__call__`: token + learned position +
    token-type embeddings (+ `extra_BTD`, a caller's own input feature), LayerNorm, dropout,
    post-LN `encoder`. Returns the states (B, T, D) and the token table (which an MLM head's
    output is tied to). `Bert` and `BertSpanQA` both build theirs here, so parameters move
    between the two by path.
    Reads the BERT fields of `module` (vocab_size, hidden, num_layers, num_heads, mlp_dim,
    max_len, type_vocab_size, dropout rates, activation, layer_norm_eps, init_std, scan,
    remat, attention_impl, dtype, param_dtype).
    """
    m = module
    b, t = tokens_BT.shape
    _check_length(t, m.max_len, "input")
    init = nn.initializers.normal(m.init_std)
    common = dict(dtype=m.dtype, param_dtype=m.param_dtype)
    if token_types_BT is None:
        token_types_BT = jnp.zeros_like(tokens_BT)
    positions_BT = jnp.broadcast_to(jnp.arange(t)[None], (b, t))
    token_embed = Embed(m.vocab_size, m.hidden, embedding_init=init, name="token_embed",
                        **common)
    x_BTD = (token_embed(tokens_BT)
             + LearnedPositionEmbedding(m.max_len, m.hidden, init, name="position_embed",
                                        **common)(positions_BT)
             + Embed(m.type_vocab_size, m.hidden, embedding_init=init, name="type_embed",
                     **common)(token_types_BT))
    if extra_BTD is not None:
        x_BTD = x_BTD + extra_BTD
    x_BTD = nn.LayerNorm(m.layer_norm_eps, name="embed_norm", **common)(x_BTD)
    x_BTD = nn.Dropout(m.dropout_rate)(x_BTD, deterministic=not train)
    block = dict(num_heads=m.num_heads, mlp_dim=m.mlp_dim, pre_ln=False,
                 activation=m.activation, dropout_rate=m.dropout_rate,
                 attention_dropout=m.attention_dropout, implementation=m.attention_impl,
                 layer_norm_eps=m.layer_norm_eps, kernel_init=init)
    x_BTD = TransformerStack(m.num_layers, block, scan=m.scan, remat=m.remat, final_norm=False,
                             name="encoder", **common)(
        x_BTD, None, padding_mask(tokens_BT > 0), None, train=train)
    return x_BTD, token_embed


class Bert(nn.Module):
    """BERT encoder (post-LN, GELU, learned positions + token types) with a selectable head.

    head="mlm": masked-LM logits (B, T, V) (transform + LN + output tied to the token table);
    head="classify": class logits (B, num_classes) from the pooled state ([CLS], or the
    mean over real tokens with pool="mean");
    head="none": the pooled state (B, D) (sequence states are sown as intermediates).
    """

    vocab_size: int = 30522  # WordPiece vocabulary
    hidden: int = 768  # model width
    num_layers: int = 12  # encoder blocks
    num_heads: int = 12  # attention heads per layer
    mlp_dim: int = 3072  # hidden width of each feed-forward layer
    max_len: int = 512  # longest input sequence (learned position table)
    type_vocab_size: int = 2  # token types (segment A/B)
    head: str = "mlm"  # mlm | classify | none
    num_classes: int = 2  # classes of the classify head
    pool: str = "cls"  # cls: the [CLS] state (BERT); mean: masked mean over real tokens
    pooler: bool = True  # dense + tanh on the pooled state (BERT's pooler)
    dropout_rate: float = 0.1  # dropout on embeddings and after each sublayer in training
    attention_dropout: float = 0.0  # dropout on the attention weights in training
    activation: str = "gelu"  # feed-forward activation
    layer_norm_eps: float = 1e-12  # LayerNorm epsilon
    init_std: float = 0.02  # std of the normal weight init
    scan: bool = False  # nn.scan over the layers (compile time flat in depth)
    remat: bool = False  # recompute activations in the backward pass to save memory
    attention_impl: str = "xla"  # attention kernel: xla | cudnn | auto | naive | blocked
    dtype: Any = jnp.float32
    param_dtype: Any = jnp.float32

    field_checks: ClassVar[dict[str, dict[str, Any]]] = {
        **COMMON_CHECKS, "head": dict(choices=("mlm", "classify", "none")),
        "pool": dict(choices=("cls", "mean"))}

    @nn.compact
    def __call__(self, tokens_BT: Array, token_types_BT: Array | None = None, *,
                 train: bool = False) -> Array:
        if self.head not in ("mlm", "classify", "none"):
            raise ConfigError(f"config.model.head='{self.head}' is unknown; "
                             "use 'mlm', 'classify' or 'none'")
        x_BTD, token_embed = bert_sequence(self, tokens_BT, token_types_BT, train)
        init = nn.initializers.normal(self.init_std)
        common = dict(dtype=self.dtype, param_dtype=self.param_dtype)
        self.sow("intermediates", "sequence", x_BTD)

        if self.head == "mlm":
            h_BTD = nn.Dense(self.hidden, kernel_init=init, name="mlm_transform", **common)(x_BTD)
            h_BTD = nn.LayerNorm(self.layer_norm_eps, name="mlm_norm", **common)(
                jax.nn.gelu(h_BTD, approximate=False))
            bias = self.param("mlm_bias", nn.initializers.zeros, (self.vocab_size,),
                              self.param_dtype)
            return (token_embed.attend(h_BTD) + bias[None, None, :]).astype(jnp.float32)
        if self.pool == "mean":
            valid_BT1 = (tokens_BT > 0)[..., None].astype(x_BTD.dtype)
            pooled_BD = (x_BTD * valid_BT1).sum(1) / jnp.maximum(valid_BT1.sum(1), 1.0)
        elif self.pool == "cls":
            pooled_BD = x_BTD[:, 0]
        else:
            raise ConfigError(f"config.model.pool='{self.pool}' is unknown; use 'cls' or 'mean'")
        if self.pooler:
            pooled_BD = jnp.tanh(nn.Dense(self.hidden, kernel_init=init, name="pooler",
                                          **common)(pooled_BD))
        if self.head == "none":
            return pooled_BD
        pooled_BD = nn.Dropout(self.dropout_rate)(pooled_BD, deterministic=not train)
        return nn.Dense(self.num_classes, kernel_init=init, name="classifier", **common)(
            pooled_BD).astype(jnp.float32)


class GPT(nn.Module):
    """GPT-2-style decoder: pre-LN causal blocks, learned (or rotary) positions, output
    projection tied to the token table. `decode=True` runs one chunk at a time on a KV cache.
    """

    vocab_size: int = 50257  # token vocabulary (GPT-2 BPE)
    emb_dim: int = 768  # model width
    num_layers: int = 12  # decoder blocks
    num_heads: int = 12  # attention heads per layer
    num_kv_heads: int | None = None  # grouped-query attention when < num_heads
    mlp_dim: int = 3072  # hidden width of each feed-forward layer
    max_len: int = 1024  # longest sequence (context length)
    position: str = "learned"  # learned | rope
    tie_embeddings: bool = True  # output projection = token embedding^T
    dropout_rate: float = 0.1  # dropout on embeddings and after each sublayer in training
    attention_dropout: float = 0.0  # dropout on the attention weights in training
    activation: str = "gelu_tanh"  # feed-forward activation
    layer_norm_eps: float = 1e-5  # LayerNorm epsilon
    init_std: float = 0.02  # std of the normal weight init
    scan: bool = False  # nn.scan over the layers (compile time flat in depth)
    remat: bool = False  # recompute activations in the backward pass to save memory
    attention_impl: str = "xla"  # attention kernel: xla | cudnn | auto | naive | blocked
    decode: bool = False  # autoregressive decoding with a key/value cache
    dtype: Any = jnp.float32
    param_dtype: Any = jnp.float32

    field_checks: ClassVar[dict[str, dict[str, Any]]] = {
        **COMMON_CHECKS, "position": dict(choices=("learned", "rope"))}

    @nn.compact
    def __call__(self, tokens_BT: Array, *, train: bool = False,
                 segment_ids_BT: Array | None = None) -> Array:
        """Next-token logits (B, T, V) in float32; `segment_ids` keep packed documents apart."""
        if self.position not in ("learned", "rope"):
            raise ConfigError(f"config.model.position='{self.position}' is unknown; "
                             "use 'learned' or 'rope'")
        b, t = tokens_BT.shape
        if not self.decode:
            _check_length(t, self.max_len, "input")
        init = nn.initializers.normal(self.init_std)
        common = dict(dtype=self.dtype, param_dtype=self.param_dtype)
        token_embed = Embed(self.vocab_size, self.emb_dim, embedding_init=init,
                            name="token_embed", **common)
        x_BTD = token_embed(tokens_BT)
        positions_BT = _DecodePosition(self.decode, name="decode_position")(b, t)
        if self.position == "learned":
            x_BTD = x_BTD + LearnedPositionEmbedding(self.max_len, self.emb_dim, init,
                                                     name="position_embed", **common)(positions_BT)
        x_BTD = nn.Dropout(self.dropout_rate)(x_BTD, deterministic=not train)
        mask = None if segment_ids_BT is None else segment_mask(segment_ids_BT)
        block = dict(num_heads=self.num_heads, num_kv_heads=self.num_kv_heads,
                     mlp_dim=self.mlp_dim, pre_ln=True, causal=True, activation=self.activation,
                     dropout_rate=self.dropout_rate, attention_dropout=self.attention_dropout,
                     rope=self.position == "rope", implementation=self.attention_impl,
                     decode=self.decode, layer_norm_eps=self.layer_norm_eps, kernel_init=init)
        x_BTD = TransformerStack(self.num_layers, block, scan=self.scan, remat=self.remat,
                                 final_norm=True, layer_norm_eps=self.layer_norm_eps,
                                 name="decoder", **common)(x_BTD, None, mask, None, train=train)
        if self.tie_embeddings:
            return token_embed.attend(x_BTD).astype(jnp.float32)
        return nn.Dense(self.vocab_size, use_bias=False, kernel_init=init, name="lm_head",
                        **common)(x_BTD).astype(jnp.float32)


class ViT(nn.Module):
    """Vision Transformer: non-overlapping patches -> linear tokens (+ class token) + learned
    positions -> pre-LN encoder -> class token or global average pool -> linear head.
    """

    num_classes: int = 1000  # classes of the head
    patch_size: int = 16  # side of the square patches; image sides must be multiples of it
    hidden: int = 768  # model width
    num_layers: int = 12  # encoder blocks
    num_heads: int = 12  # attention heads per layer
    mlp_dim: int = 3072  # hidden width of each feed-forward layer
    pool: str = "cls"  # cls | gap
    dropout_rate: float = 0.0  # dropout on embeddings and after each sublayer in training
    attention_dropout: float = 0.0  # dropout on the attention weights in training
    layer_norm_eps: float = 1e-6  # LayerNorm epsilon
    scan: bool = False  # nn.scan over the layers (compile time flat in depth)
    remat: bool = False  # recompute activations in the backward pass to save memory
    attention_impl: str = "xla"  # attention kernel: xla | cudnn | auto | naive | blocked
    dtype: Any = jnp.float32
    param_dtype: Any = jnp.float32

    field_checks: ClassVar[dict[str, dict[str, Any]]] = {
        **COMMON_CHECKS, "pool": dict(choices=("cls", "gap"))}

    @nn.compact
    def __call__(self, images_BHWC: Array, *, train: bool = False) -> Array:
        """Class logits (B, num_classes) in float32 for images in NHWC layout."""
        if self.pool not in ("cls", "gap"):
            raise ConfigError(f"config.model.pool='{self.pool}' is unknown; use 'cls' or 'gap'")
        x_BND = vit_tokens(self, images_BHWC, train, class_token=self.pool == "cls")
        feature_BD = x_BND[:, 0] if self.pool == "cls" else x_BND.mean(axis=1)
        self.sow("intermediates", "features", feature_BD)
        return nn.Dense(self.num_classes, kernel_init=nn.initializers.zeros, name="head",
                        dtype=self.dtype, param_dtype=self.param_dtype)(feature_BD).astype(
            jnp.float32)


def check_patches(images_BHWC: Array, patch_size: int, what: str = "vit") -> None:
    """Fails in one line unless both image sides are positive multiples of the patch side."""
    check_images(images_BHWC, what)
    _, h, w, _ = images_BHWC.shape
    p = patch_size
    if h % p or w % p or h < p or w < p:
        raise ConfigError(
            f"{what} with patch_size={p} needs images of at least {p}x{p} whose sides are "
            f"multiples of {p} (got {h}x{w}); set config.dataset.resize_to to a multiple of "
            f"{p} or change config.model.patch_size")


def vit_tokens(module: nn.Module, images_BHWC: Array, train: bool, *, class_token: bool,
               what: str = "vit") -> Array:
    """The ViT's token path, built in `module`'s compact `__call__`: patches -> linear tokens
    (`patch_embed`), optional `cls_token` first, learned `position_embed`, dropout, pre-LN
    `encoder` with its final LayerNorm. Returns the encoded tokens (B, [1 +] N, D).

    The parameters sit at the top level of `module` whatever model it is (classifier,
    segmenter), so they move between them by path. Reads the ViT fields of `module`
    (patch_size, hidden, num_layers, num_heads, mlp_dim, dropout rates, layer_norm_eps,
    scan, remat, attention_impl, dtype, param_dtype).
    """
    m = module
    check_patches(images_BHWC, m.patch_size, what)
    p = m.patch_size
    common = dict(dtype=m.dtype, param_dtype=m.param_dtype)
    x = nn.Conv(m.hidden, (p, p), strides=(p, p), padding="VALID",
                name="patch_embed", **common)(images_BHWC.astype(m.dtype))
    b = x.shape[0]
    x_BND = x.reshape(b, -1, m.hidden)
    if class_token:
        cls = m.param("cls_token", nn.initializers.zeros, (1, 1, m.hidden), m.param_dtype)
        x_BND = jnp.concatenate(
            [jnp.broadcast_to(cls.astype(m.dtype), (b, 1, m.hidden)), x_BND], axis=1)
    pos = m.param("position_embed", nn.initializers.normal(0.02),
                  (1, x_BND.shape[1], m.hidden), m.param_dtype)
    x_BND = nn.Dropout(m.dropout_rate)(x_BND + pos.astype(m.dtype), deterministic=not train)
    block = dict(num_heads=m.num_heads, mlp_dim=m.mlp_dim, pre_ln=True, activation="gelu",
                 dropout_rate=m.dropout_rate, attention_dropout=m.attention_dropout,
                 implementation=m.attention_impl, layer_norm_eps=m.layer_norm_eps)
    return TransformerStack(m.num_layers, block, scan=m.scan, remat=m.remat, final_norm=True,
                            layer_norm_eps=m.layer_norm_eps, name="encoder", **common)(
        x_BND, train=train)


def _register(name: str, cls: type, **fields: Any) -> None:
    register_model(name, functools.partial(cls, **fields))


_register("transformer_base", EncoderDecoderTransformer)
_register("transformer_big", EncoderDecoderTransformer, emb_dim=1024, num_heads=16,
          mlp_dim=4096, dropout_rate=0.3)
_register("transformer_tiny", EncoderDecoderTransformer, vocab_size=64, emb_dim=64,
          num_heads=4, num_encoder_layers=2, num_decoder_layers=2, mlp_dim=128, max_len=64)

_register("bert_base", Bert)
_register("bert_large", Bert, hidden=1024, num_layers=24, num_heads=16, mlp_dim=4096)
_register("bert_mini", Bert, hidden=256, num_layers=4, num_heads=4, mlp_dim=1024)
_register("bert_tiny", Bert, hidden=128, num_layers=2, num_heads=2, mlp_dim=512)

_register("gpt2_small", GPT)
_register("gpt2_medium", GPT, emb_dim=1024, num_layers=24, num_heads=16, mlp_dim=4096)
_register("gpt_micro", GPT, vocab_size=256, emb_dim=128, num_layers=4, num_heads=4,
          mlp_dim=512, max_len=256)
_register("gpt_nano", GPT, vocab_size=256, emb_dim=48, num_layers=3, num_heads=3,
          mlp_dim=192, max_len=128)

_VIT_SIZES = {"ti": (192, 12, 3, 768), "s": (384, 12, 6, 1536), "b": (768, 12, 12, 3072)}
for _size, (_hidden, _layers, _heads, _mlp) in _VIT_SIZES.items():
    for _patch in (16, 32):
        _register(f"vit_{_size}{_patch}", ViT, patch_size=_patch, hidden=_hidden,
                  num_layers=_layers, num_heads=_heads, mlp_dim=_mlp)
_register("vit_small32", ViT, num_classes=10, patch_size=4, hidden=192, num_layers=6,
          num_heads=3, mlp_dim=384, pool="gap")
_register("vit_nano", ViT, num_classes=10, patch_size=4, hidden=32, num_layers=2, num_heads=2,
          mlp_dim=64)
