"""Autoencoders: dense and convolutional, deterministic (AE) or variational (VAE).

An encoder maps an image to a low-dimensional latent code, a decoder maps the code back
to image logits (apply a sigmoid for pixel values in [0, 1]). The VAE's encoder is a
diagonal Gaussian q(z|x) = N(mean, exp(logvar)); its latent is drawn with the
reparameterisation trick z = mean + exp(logvar / 2) * eps, eps ~ N(0, I), so gradients
flow into mean and logvar. The noise comes from the rng stream `"latent"` when sampling.

Registered names: `dense_ae`, `conv_ae`, `dense_vae`, `conv_vae` (small defaults for
28x28x1 images) and published sizes: `dense_ae_hinton2006` (784-1000-500-250-30 of Hinton &
Salakhutdinov, Science 2006) and `dense_vae_kingma2013` (784-400-20, the fully connected
VAE of Kingma & Welling as sized in the pytorch/examples VAE), plus `*_tiny` test variants.
"""

from __future__ import annotations

import functools
import math
from typing import Any, ClassVar

import flax.linen as nn
import jax
import jax.numpy as jnp

from dl_arch.config.errors import ConfigError
from dl_arch.config.fields import Field
from dl_arch.models.activations import ACTIVATIONS
from dl_arch.models.activations import get_activation as activation_fn
from dl_arch.models.cnn.taps import upsampling_conv
from dl_arch.models.latent_prior import MixturePrior, gaussian_neg_entropy
from dl_arch.registry import register_model


def reparameterize(mean_BZ: jax.Array, logvar_BZ: jax.Array, eps_BZ: jax.Array) -> jax.Array:
    """z = mean + sigma * eps: a sample of N(mean, exp(logvar)) differentiable in both."""
    return mean_BZ + jnp.exp(0.5 * logvar_BZ) * eps_BZ


def gaussian_kl(mean_BZ: jax.Array, logvar_BZ: jax.Array) -> jax.Array:
    """KL(N(mean, exp(logvar)) || N(0, I)) per example, in closed form (nats)."""
    mean_BZ = mean_BZ.astype(jnp.float32)
    logvar_BZ = logvar_BZ.astype(jnp.float32)
    return 0.5 * jnp.sum(jnp.square(mean_BZ) + jnp.exp(logvar_BZ) - 1.0 - logvar_BZ, axis=-1)


class DenseEncoder(nn.Module):
    """Flatten -> Dense stack -> `out_dim` features (the latent, or its mean/logvar heads)."""

    hidden_sizes: tuple[int, ...]
    activation: str = "relu"
    dtype: Any = jnp.float32
    param_dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x_BHWC: jax.Array) -> jax.Array:
        act = activation_fn(self.activation)
        h = x_BHWC.reshape(x_BHWC.shape[0], -1)
        for i, width in enumerate(self.hidden_sizes):
            h = act(nn.Dense(width, dtype=self.dtype, param_dtype=self.param_dtype,
                             name=f"dense_{i}")(h))
        return h


class DenseDecoder(nn.Module):
    """Dense stack -> Dense(H*W*C) -> image logits."""

    hidden_sizes: tuple[int, ...]
    image_shape: tuple[int, int, int]
    activation: str = "relu"
    dtype: Any = jnp.float32
    param_dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, z_BZ: jax.Array) -> jax.Array:
        act = activation_fn(self.activation)
        h = z_BZ
        for i, width in enumerate(self.hidden_sizes):
            h = act(nn.Dense(width, dtype=self.dtype, param_dtype=self.param_dtype,
                             name=f"dense_{i}")(h))
        out = nn.Dense(math.prod(self.image_shape), dtype=self.dtype,
                       param_dtype=self.param_dtype, name="to_pixels")(h)
        return out.reshape(z_BZ.shape[0], *self.image_shape)


NORMS = ("none", "group")


def _normalize(norm: str, h: jax.Array, name: str, dtype: Any, param_dtype: Any) -> jax.Array:
    """GroupNorm (8 groups, or fewer for narrow maps) or nothing; per example, so training
    and evaluation agree and there is no batch state to carry."""
    if norm == "none":
        return h
    if norm == "group":
        groups = math.gcd(8, h.shape[-1])
        return nn.GroupNorm(num_groups=groups, dtype=dtype, param_dtype=param_dtype,
                            name=name)(h)
    raise ConfigError(f"config.model.norm='{norm}'; use one of {NORMS}")


class ConvEncoder(nn.Module):
    """Stride-2 convolutions (each halves H and W) -> flattened feature map."""

    features: tuple[int, ...]
    kernel_size: int = 4
    activation: str = "relu"
    norm: str = "none"  # none | group: normalisation after each hidden convolution
    dtype: Any = jnp.float32
    param_dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x_BHWC: jax.Array) -> jax.Array:
        act = activation_fn(self.activation)
        h = x_BHWC
        k = (self.kernel_size, self.kernel_size)
        for i, f in enumerate(self.features):
            h = nn.Conv(f, k, strides=(2, 2), padding="SAME", dtype=self.dtype,
                        param_dtype=self.param_dtype, name=f"conv_{i}")(h)
            h = act(_normalize(self.norm, h, f"norm_{i}", self.dtype, self.param_dtype))
        return h.reshape(h.shape[0], -1)


class ConvDecoder(nn.Module):
    """Dense -> (H/2^n, W/2^n, features[-1]) map -> stride-2 transposed convs -> logits
    (the mirror of the encoder)."""

    features: tuple[int, ...]
    image_shape: tuple[int, int, int]
    kernel_size: int = 4
    activation: str = "relu"
    norm: str = "none"  # none | group: normalisation after each hidden convolution
    dtype: Any = jnp.float32
    param_dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, z_BZ: jax.Array) -> jax.Array:
        act = activation_fn(self.activation)
        height, width, channels = self.image_shape
        scale = 2 ** len(self.features)
        h0, w0 = height // scale, width // scale
        h = act(nn.Dense(h0 * w0 * self.features[-1], dtype=self.dtype,
                         param_dtype=self.param_dtype, name="from_latent")(z_BZ))
        h = h.reshape(z_BZ.shape[0], h0, w0, self.features[-1])
        # mirror of the encoder: widths features[-2], ..., features[0], then the pixels
        widths = list(reversed(self.features[:-1])) + [channels]
        for i, f in enumerate(widths):
            h = upsampling_conv(f, self.kernel_size, dtype=self.dtype,
                                param_dtype=self.param_dtype, name=f"deconv_{i}")(h)
            if i < len(widths) - 1:
                h = act(_normalize(self.norm, h, f"norm_{i}", self.dtype, self.param_dtype))
        return h


class Autoencoder(nn.Module):
    """Encoder -> latent (deterministic, or a Gaussian with `variational=True`) -> decoder.

    `__call__` returns a dict: `logits` (B, H, W, C) float32 image logits, `z` (B, Z), and
    for a VAE `mean` and `logvar` (B, Z) and `kl` (B,): KL(q(z|x) || p(z)) in closed form for
    the N(0, I) prior, or estimated at the drawn z for a learned mixture prior
    (`prior_components` > 0, see `latent_prior`). `encode` / `decode` are usable alone;
    sampling from the prior is `decode` of `sample_latents`.
    """

    image_shape: tuple[int, int, int] = (28, 28, 1)  # (height, width, channels) of the images
    latent_dim: int = 16  # width of the latent code z
    architecture: str = "dense"  # dense | conv
    hidden_sizes: tuple[int, ...] = (256, 128)  # dense: encoder widths (decoder mirrors)
    features: tuple[int, ...] = (32, 64)  # conv: encoder channels, one stride-2 conv each
    kernel_size: int = 4  # conv: kernel of every (transposed) convolution
    norm: str = "none"  # conv: none | group (GroupNorm after each hidden convolution)
    variational: bool = False  # a VAE: Gaussian q(z|x), reparameterised samples, a KL term
    prior_components: int = 0  # VAE: 0 = N(0, I); K = a learned mixture of K Gaussians
    activation: str = "relu"  # non-linearity of the hidden layers
    dtype: Any = jnp.float32
    param_dtype: Any = jnp.float32

    field_checks: ClassVar[dict[str, dict[str, Any]]] = {
        "architecture": dict(choices=("dense", "conv")), "norm": dict(choices=NORMS),
        "activation": dict(choices=tuple(ACTIVATIONS)),
        "image_shape": dict(each=Field(1, "a side or a channel count", low=1))}

    def setup(self):
        height, width, _ = self.image_shape
        kw = dict(activation=self.activation, dtype=self.dtype, param_dtype=self.param_dtype)
        if self.architecture == "dense":
            self.encoder = DenseEncoder(tuple(self.hidden_sizes), **kw)
            self.decoder = DenseDecoder(tuple(reversed(self.hidden_sizes)),
                                        tuple(self.image_shape), **kw)
        elif self.architecture == "conv":
            scale = 2 ** len(self.features)
            if not self.features or height % scale or width % scale or min(height, width) < scale:
                raise ConfigError(
                    f"config.model.image_shape={tuple(self.image_shape)}: height and width must "
                    f"be multiples of 2**len(config.model.features)={scale}, at least {scale}; "
                    "change features or image"
                )
            conv = dict(norm=self.norm, **kw)
            self.encoder = ConvEncoder(tuple(self.features), self.kernel_size, **conv)
            self.decoder = ConvDecoder(tuple(self.features), tuple(self.image_shape),
                                       self.kernel_size, **conv)
        else:
            raise ConfigError(
                f"config.model.architecture='{self.architecture}'; use 'dense' or 'conv'"
            )
        dense = functools.partial(nn.Dense, self.latent_dim, dtype=self.dtype,
                                  param_dtype=self.param_dtype)
        if self.prior_components < 0 or (self.prior_components and not self.variational):
            raise ConfigError(f"config.model.prior_components={self.prior_components}; use 0 "
                             f"(N(0, I) prior) or, for a *_vae model, K > 0 mixture components")
        if self.variational:
            self.latent_mean = dense(name="latent_mean")
            self.latent_logvar = dense(name="latent_logvar")
            if self.prior_components:
                self.prior = MixturePrior(self.prior_components, self.latent_dim)
        else:
            self.latent = dense(name="latent")

    def _check(self, x_BHWC: jax.Array) -> None:
        if tuple(x_BHWC.shape[1:]) != tuple(self.image_shape):
            raise ConfigError(
                f"images of shape {tuple(x_BHWC.shape[1:])} but config.model.image_shape="
                f"{tuple(self.image_shape)}; set image_shape to the dataset's (H, W, C)"
            )

    def encode(self, x_BHWC: jax.Array) -> dict[str, jax.Array]:
        """{'z'} for an AE; {'mean', 'logvar'} (float32) of q(z|x) for a VAE."""
        self._check(x_BHWC)
        h = self.encoder(x_BHWC.astype(self.dtype))
        if self.variational:
            return {"mean": self.latent_mean(h).astype(jnp.float32),
                    "logvar": self.latent_logvar(h).astype(jnp.float32)}
        return {"z": self.latent(h).astype(jnp.float32)}

    def kl(self, mean_BZ: jax.Array, logvar_BZ: jax.Array, z_BZ: jax.Array) -> jax.Array:
        """KL(q(z|x) || p(z)) per example (B,): closed form for N(0, I), else the estimate
        -H(q) - log p(z) at the drawn z."""
        if not self.prior_components:
            return gaussian_kl(mean_BZ, logvar_BZ)
        return gaussian_neg_entropy(logvar_BZ) - self.prior.log_prob(z_BZ)

    def sample_latents(self, rng: jax.Array, count: int) -> jax.Array:
        """`count` draws (count, Z) from the prior p(z)."""
        if not self.prior_components:
            return jax.random.normal(rng, (count, self.latent_dim), jnp.float32)
        return self.prior.sample(rng, count)

    def decode(self, z_BZ: jax.Array) -> jax.Array:
        """Image logits (B, H, W, C) in float32 for latent codes z."""
        return self.decoder(z_BZ.astype(self.dtype)).astype(jnp.float32)

    def __call__(self, x_BHWC: jax.Array, *, train: bool = False,
                 sample: bool | None = None) -> dict[str, jax.Array]:
        """Encodes and decodes; a VAE samples z (rng 'latent') if `sample` (default: train)."""
        out = self.encode(x_BHWC)
        if self.variational:
            if train if sample is None else sample:
                eps_BZ = jax.random.normal(self.make_rng("latent"), out["mean"].shape)
                out["z"] = reparameterize(out["mean"], out["logvar"], eps_BZ)
            else:
                out["z"] = out["mean"]
            out["kl"] = self.kl(out["mean"], out["logvar"], out["z"])
        self.sow("intermediates", "z", out["z"])
        out["logits"] = self.decode(out["z"])
        return out


def _register(name: str, **fields: Any) -> None:
    register_model(name, functools.partial(Autoencoder, **fields))


_register("dense_ae", architecture="dense")
_register("conv_ae", architecture="conv")
_register("dense_vae", architecture="dense", variational=True)
_register("conv_vae", architecture="conv", variational=True)
# published sizes (MNIST, 28x28x1)
_register("dense_ae_hinton2006", architecture="dense", hidden_sizes=(1000, 500, 250),
          latent_dim=30)
_register("dense_vae_kingma2013", architecture="dense", hidden_sizes=(400,), latent_dim=20,
          variational=True)
# tiny variants for tests
_register("dense_ae_tiny", architecture="dense", hidden_sizes=(32,), latent_dim=4,
          image_shape=(8, 8, 1))
_register("conv_ae_tiny", architecture="conv", features=(4, 8), latent_dim=4,
          image_shape=(8, 8, 1))
_register("dense_vae_tiny", architecture="dense", hidden_sizes=(32,), latent_dim=4,
          image_shape=(8, 8, 1), variational=True)
_register("conv_vae_tiny", architecture="conv", features=(4, 8), latent_dim=4,
          image_shape=(8, 8, 1), variational=True)
