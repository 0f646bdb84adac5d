"""Length-aware pieces shared by the speech models: frame masks, a masked 2-D conv stack over
(time, mel) and masked pooling, so padding frames never reach a real frame's output.

Every conv pads its time axis by kernel // 2 on both sides (never "SAME", whose split of the
padding depends on the padded length) and zeroes each output frame past the example's own
output length, so the next layer sees zeros there exactly as it would at the end of an
unpadded input. BatchNorm statistics are taken over real frames only.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from dl_arch.config.errors import ConfigError
from dl_arch.models.cnn.common import batch_norm, conv_init


def frame_mask(lengths_B: jax.Array, steps: int) -> jax.Array:
    """[B, T] bool: True at each example's real frames (t < length)."""
    return jnp.arange(steps)[None, :] < lengths_B[:, None]


def conv_out_len(lengths_B: jax.Array, kernel: int, stride: int, padding: int) -> jax.Array:
    """Frames a convolution over exactly `length` frames gives (0 for an empty input)."""
    out = (lengths_B + 2 * padding - kernel) // stride + 1
    return jnp.where(lengths_B > 0, jnp.maximum(out, 0), 0).astype(jnp.int32)


def check_features(features_BTF: jax.Array, frame_len_B: jax.Array, what: str) -> None:
    """Fails in one line unless the inputs are [B, T, mels] features with [B] lengths."""
    if features_BTF.ndim != 3:
        raise ConfigError(f"{what} takes log-mel features shaped (batch, frames, mels), got "
                          f"shape {tuple(features_BTF.shape)}; compute features before the model")
    if frame_len_B.shape != features_BTF.shape[:1]:
        raise ConfigError(f"{what} needs one frame length per example: features "
                          f"{tuple(features_BTF.shape)}, frame_len {tuple(frame_len_B.shape)}")


@dataclasses.dataclass(frozen=True)
class ConvSpec:
    """One conv layer over (time, mel): output channels, kernel and stride as (time, mel)."""

    features: int
    kernel: tuple[int, int]
    stride: tuple[int, int]


def clipped_relu(x: jax.Array) -> jax.Array:
    """min(max(x, 0), 20): Deep Speech 2's activation."""
    return jnp.clip(x, 0.0, 20.0)


def masked_conv_stack(features_BTF: jax.Array, frame_len_B: jax.Array, specs: Sequence[ConvSpec],
                      *, train: bool, use_batch_norm: bool, act: Callable[[jax.Array], jax.Array],
                      dtype: Any, param_dtype: Any) -> tuple[jax.Array, jax.Array]:
    """Convs `conv{i}` (+ `bn{i}`) then `act`, i = 1.., built in the caller's compact scope.

    Returns the map [B, T', F', C] (zero past each example's length) and the lengths [B].
    """
    mask_BT = frame_mask(frame_len_B, features_BTF.shape[1])
    x = jnp.where(mask_BT[:, :, None], features_BTF, 0).astype(dtype)[..., None]
    lengths_B = frame_len_B.astype(jnp.int32)
    for i, spec in enumerate(specs, start=1):
        (kt, kf), (st, sf) = spec.kernel, spec.stride
        x = nn.Conv(spec.features, (kt, kf), (st, sf), padding=((kt // 2, kt // 2), (kf // 2, kf // 2)),
                    use_bias=not use_batch_norm, kernel_init=conv_init, dtype=dtype,
                    param_dtype=param_dtype, name=f"conv{i}")(x)
        lengths_B = conv_out_len(lengths_B, kt, st, kt // 2)
        keep_BT11 = frame_mask(lengths_B, x.shape[1])[:, :, None, None]
        if use_batch_norm:
            x = batch_norm(train, dtype, param_dtype, name=f"bn{i}")(x, mask=keep_BT11)
        x = jnp.where(keep_BT11, act(x), 0)
    return x, lengths_B


def flatten_mels(x_BTFC: jax.Array) -> jax.Array:
    """[B, T, F, C] -> [B, T, F * C]: one feature vector per frame."""
    b, t, f, c = x_BTFC.shape
    return x_BTFC.reshape(b, t, f * c)


def masked_time_mean(x_BT_: jax.Array, lengths_B: jax.Array) -> jax.Array:
    """Mean over the real frames (axis 1) of each example; [B, T, ...] -> [B, ...]."""
    mask = frame_mask(lengths_B, x_BT_.shape[1]).reshape(*x_BT_.shape[:2], *([1] * (x_BT_.ndim - 2)))
    total = jnp.sum(jnp.where(mask, x_BT_, 0), axis=1)
    count = jnp.maximum(lengths_B, 1).astype(x_BT_.dtype)
    return total / count.reshape(-1, *([1] * (total.ndim - 1)))
