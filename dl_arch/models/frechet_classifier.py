"""The small CNN whose penultimate activations are the features of the Fréchet distance.

The `frechet` evaluator trains it as an ordinary `classification` run (through the Trainer)
on the labelled images of the run's own dataset, then reads its features; any task can
also train it by name (`config.model.name = "frechet_classifier"`).
"""

from __future__ import annotations

from collections.abc import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from dl_arch.registry import register_model


@register_model("frechet_classifier")
class FrechetClassifier(nn.Module):
    """Stride-2 3x3 convolutions, a dense feature layer, a linear class head."""

    num_classes: int = 10  # classes of the dataset's labels
    features: Sequence[int] = (32, 64)  # channels of the stride-2 convolutions
    width: int = 128  # width of the feature layer (the Fréchet features)
    dtype: jnp.dtype = jnp.float32
    param_dtype: jnp.dtype = jnp.float32

    @nn.compact
    def __call__(self, x_BHWC: jax.Array, *, train: bool = False, with_features: bool = False
                 ) -> jax.Array | tuple[jax.Array, jax.Array]:
        """Class logits (B, K) of images in [0, 1]; with `with_features`, also the features
        (B, width) they are computed from."""
        h = x_BHWC.astype(self.dtype) * 2.0 - 1.0
        dense = dict(dtype=self.dtype, param_dtype=self.param_dtype)
        for i, f in enumerate(self.features):
            h = nn.relu(nn.Conv(f, (3, 3), strides=(2, 2), name=f"conv_{i}", **dense)(h))
        h = h.reshape(h.shape[0], -1)
        feats = nn.relu(nn.Dense(self.width, name="features", **dense)(h))
        logits = nn.Dense(self.num_classes, name="classifier", **dense)(feats)
        logits, feats = logits.astype(jnp.float32), feats.astype(jnp.float32)
        return (logits, feats) if with_features else logits
