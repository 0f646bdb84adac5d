"""SpecAugment's frequency and time masks (Park et al., 2019), for training only.

Each utterance gets `freq_masks` bands of mel bins and `time_masks` runs of frames set to
`mask_value` (0: the mean, after `normalize_utterance`). A mask's width is drawn uniformly from
0..max width and its start uniformly where it fits; time masks fit inside the utterance's real
frames and frequency masks touch real frames only, so padding frames are left as they were.
No time warping. The task calls this in its training loss only; evaluation sees clean features.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

Array = jax.Array


def _band_masks(rng: Array, num: int, max_width: int, extent_B: Array, size: int) -> Array:
    """`[B, size]` bool: the union of `num` runs per row, each of width U{0..max_width}
    (capped at the row's extent) starting uniformly in 0..extent - width."""
    batch = extent_B.shape[0]
    w_rng, s_rng = jax.random.split(rng)
    extent_BK = jnp.broadcast_to(extent_B[:, None], (batch, num))
    width_BK = jax.random.randint(w_rng, (batch, num), 0, max_width + 1)
    width_BK = jnp.minimum(width_BK, extent_BK)
    # start uniform on 0..extent - width, drawn as floor(u * (number of starts))
    u_BK = jax.random.uniform(s_rng, (batch, num))
    start_BK = jnp.floor(u_BK * (extent_BK - width_BK + 1)).astype(jnp.int32)
    start_BK = jnp.minimum(start_BK, extent_BK - width_BK)
    pos = jnp.arange(size)[None, None, :]
    inside_BKS = (pos >= start_BK[..., None]) & (pos < (start_BK + width_BK)[..., None])
    return inside_BKS.any(axis=1)


def spec_augment(rng: Array, features: Array, frame_len: Array, *, freq_masks: int, freq_width: int,
                 time_masks: int, time_width: int, mask_value: float = 0.0) -> Array:
    """`features [B, T, F]` with frequency and time masks inside each utterance's real frames."""
    batch, frames, bins = features.shape
    frame_len = jnp.asarray(frame_len, jnp.int32)
    f_rng, t_rng = jax.random.split(rng)
    real_BT = jnp.arange(frames)[None, :] < frame_len[:, None]
    masked_BTF = jnp.zeros(features.shape, bool)
    if freq_masks > 0:
        freq_BF = _band_masks(f_rng, freq_masks, freq_width, jnp.full((batch,), bins, jnp.int32), bins)
        masked_BTF = masked_BTF | freq_BF[:, None, :]
    if time_masks > 0:
        time_BT = _band_masks(t_rng, time_masks, time_width, frame_len, frames)
        masked_BTF = masked_BTF | time_BT[:, :, None]
    masked_BTF = masked_BTF & real_BT[:, :, None]
    return jnp.where(masked_BTF, jnp.asarray(mask_value, features.dtype), features)
