"""A ViT segmenter: Segmenter's "linear" decoder (Strudel et al. 2021), SETR-naive style
(Zheng et al. 2021) without its extra conv.

Layout: the ViT classifier's token path (`patch_embed`, optional `cls_token`,
`position_embed`, pre-LN `encoder` with its final LayerNorm; `dl_arch.models.transformer.
vit_tokens`) -> the patch tokens back on their (H/p, W/p) grid -> `decoder`: one linear layer
per patch to class logits -> bilinear upsampling to the input. With `class_token` (as the
cls-pooled ViT classifiers) the class token is encoded and dropped before the decoder, so the
classifier's position table has the same shape and loads by path; a ViT trained at another
image size has a position table of another shape, which `init_from` skips.
"""

from __future__ import annotations

import functools
from typing import Any, ClassVar

import flax.linen as nn
import jax
import jax.numpy as jnp

from dl_arch.models.segmentation.common import check_sides
from dl_arch.models.segmentation.upsample import resize_bilinear
from dl_arch.models.transformer import COMMON_CHECKS, vit_tokens
from dl_arch.registry import register_model


class ViTSegmenter(nn.Module):
    """ViT encoder + per-patch linear decoder: logits [B, H, W, num_classes] (module doc)."""

    num_classes: int = 21  # classes of the per-pixel logits (background included)
    patch_size: int = 16  # side of the square patches; image sides must be multiples of it
    hidden: int = 768  # model width
    num_layers: int = 12  # encoder blocks
    num_heads: int = 12  # attention heads per layer
    mlp_dim: int = 3072  # hidden width of each feed-forward layer
    class_token: bool = True  # encode a class token too (as cls-pooled ViTs); dropped before the decoder
    dropout_rate: float = 0.0  # dropout on embeddings and after each sublayer in training
    attention_dropout: float = 0.0  # dropout on the attention weights in training
    layer_norm_eps: float = 1e-6  # LayerNorm epsilon
    scan: bool = False  # nn.scan over the layers (compile time flat in depth)
    remat: bool = False  # recompute activations in the backward pass to save memory
    attention_impl: str = "xla"  # attention kernel: xla | cudnn | auto | naive | blocked
    dtype: Any = jnp.float32
    param_dtype: Any = jnp.float32

    field_checks: ClassVar[dict[str, dict[str, Any]]] = {
        k: v for k, v in COMMON_CHECKS.items() if k != "activation"}

    @nn.compact
    def __call__(self, images_BHWC: jax.Array, *, train: bool = False) -> jax.Array:
        check_sides(images_BHWC, self.patch_size, f"vit_segmenter with patch_size={self.patch_size}")
        x_BND = vit_tokens(self, images_BHWC, train, class_token=self.class_token,
                           what="vit_segmenter")
        if self.class_token:
            x_BND = x_BND[:, 1:]
        b, h, w, _ = images_BHWC.shape
        p = self.patch_size
        x_BhwD = x_BND.reshape(b, h // p, w // p, self.hidden)
        self.sow("intermediates", "patch_features", x_BhwD)
        logits_BhwK = nn.Dense(self.num_classes, dtype=jnp.float32, param_dtype=self.param_dtype,
                               kernel_init=nn.initializers.zeros, name="decoder")(x_BhwD)
        return resize_bilinear(logits_BhwK, h, w)


register_model("vit_segmenter", ViTSegmenter)
register_model("vit_segmenter_tiny", functools.partial(
    ViTSegmenter, patch_size=4, hidden=32, num_layers=2, num_heads=2, mlp_dim=64))
