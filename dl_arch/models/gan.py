"""DCGAN (Radford, Metz & Chintala, 2015): a generator and a discriminator in one module.

Generator: z -> Dense (the "project and reshape" of the paper, equal to a 4x4 transposed
convolution of a 1x1 input) -> BatchNorm -> ReLU -> stride-2 transposed convolutions that
halve the width and double the resolution, each with BatchNorm + ReLU -> a last
transposed convolution to the image channels -> tanh (images in [-1, 1]).
Discriminator: stride-2 convolutions with LeakyReLU(0.2), BatchNorm on all but the first
(`discriminator_norm='spectral'`: spectral normalisation of every layer instead) -> Dense to
one logit (a valid 4x4 convolution of the last map in the paper). `num_classes > 0` adds a
second Dense head on the same features that classifies images (the GAN task's
`class_weight`); G stays unconditional.
No biases before BatchNorm (nor, as in the paper's code, in D's first convolution and
logit); with norm 'spectral' or 'none' every D layer has a bias. Weights ~ N(0, 0.02).

`DCGAN` holds both as submodules `generator` and `discriminator`, so its parameter and
batch-statistics trees are `{"generator": ..., "discriminator": ...}`, one entry per
training phase. Call `generate(z, train=)` / `discriminate(x, train=)` through
`model.apply(..., method=...)`; `__call__` runs both (used to initialise).
Registered: `dcgan` (64x64x3, z=100, 64 base features: the published size), `dcgan_32`
(CIFAR-10), `dcgan_28` (MNIST), `dcgan_tiny` (tests).
"""

from __future__ import annotations

import functools
from typing import Any, ClassVar

import flax.linen as nn
import jax
import jax.numpy as jnp

from dl_arch.config.errors import ConfigError
from dl_arch.config.fields import Field
from dl_arch.models.cnn.taps import upsampling_conv, window_conv
from dl_arch.registry import register_model

DCGAN_INIT = nn.initializers.normal(0.02)


def _check_shape(image_shape: tuple[int, int, int], num_stages: int) -> tuple[int, int]:
    """(H, W) of the smallest feature map; ConfigError if the image does not divide."""
    height, width, _ = image_shape
    scale = 2**num_stages
    if num_stages < 1 or height % scale or width % scale or min(height, width) < scale:
        raise ConfigError(
            f"config.model.image_shape={tuple(image_shape)}: height and width must be multiples "
            f"of 2**config.model.num_stages={scale}, at least {scale}; change num_stages or the "
            "image size"
        )
    return height // scale, width // scale


class Generator(nn.Module):
    """z (B, Z) -> images (B, H, W, C) in [-1, 1], float32."""

    image_shape: tuple[int, int, int]
    features: int = 64  # width of the last hidden map; earlier ones double per stage
    num_stages: int = 4  # stride-2 upsamplings; the first map is (H, W) / 2**num_stages
    kernel_size: int = 4
    bn_momentum: float = 0.9
    dtype: Any = jnp.float32
    param_dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, z_BZ: jax.Array, *, train: bool = False) -> jax.Array:
        h0, w0 = _check_shape(self.image_shape, self.num_stages)
        norm = functools.partial(nn.BatchNorm, use_running_average=not train,
                                 momentum=self.bn_momentum, epsilon=1e-5, dtype=self.dtype,
                                 param_dtype=self.param_dtype)
        width = self.features * 2 ** (self.num_stages - 1)
        h = nn.Dense(h0 * w0 * width, use_bias=False, kernel_init=DCGAN_INIT, dtype=self.dtype,
                     param_dtype=self.param_dtype, name="project")(z_BZ.astype(self.dtype))
        h = h.reshape(z_BZ.shape[0], h0, w0, width)
        h = nn.relu(norm(name="project_bn")(h))
        for i in range(self.num_stages - 1):
            width //= 2
            h = upsampling_conv(width, self.kernel_size, use_bias=False, kernel_init=DCGAN_INIT,
                                dtype=self.dtype, param_dtype=self.param_dtype,
                                name=f"deconv_{i}")(h)
            h = nn.relu(norm(name=f"bn_{i}")(h))
        h = upsampling_conv(self.image_shape[-1], self.kernel_size, use_bias=False,
                            kernel_init=DCGAN_INIT, dtype=self.dtype, param_dtype=self.param_dtype,
                            name="to_image")(h)
        return jnp.tanh(h.astype(jnp.float32))


DISCRIMINATOR_NORMS = ("batch", "spectral", "none")


class Discriminator(nn.Module):
    """images (B, H, W, C) in [-1, 1] -> real/fake logits (B,), float32.

    norm='batch' is the paper's (BatchNorm on all but the first convolution); 'spectral'
    divides every weight by its largest singular value instead (Miyato et al., 2018), which
    bounds how sharply D can change with its input and keeps it from overpowering G.
    """

    image_shape: tuple[int, int, int]
    features: int = 64  # width of the first map; later ones double per stage
    num_stages: int = 4  # stride-2 convolutions
    kernel_size: int = 4
    negative_slope: float = 0.2
    bn_momentum: float = 0.9
    norm: str = "batch"  # batch | spectral | none
    num_classes: int = 0  # > 0: a class head beside the real/fake logit
    dtype: Any = jnp.float32
    param_dtype: Any = jnp.float32

    def _layer(self, layer: nn.Module, h: jax.Array, train: bool) -> jax.Array:
        """Applies `layer`, through spectral normalisation if norm='spectral'."""
        if self.norm != "spectral":
            return layer(h)
        # the power-iteration vector lives in `batch_stats` and advances in training only
        return nn.SpectralNorm(layer, name=f"{layer.name}_sn")(h, update_stats=train)

    @nn.compact
    def __call__(self, x_BHWC: jax.Array, *, train: bool = False, with_classes: bool = False
                 ) -> jax.Array | tuple[jax.Array, jax.Array]:
        """Logits (B,); with `with_classes`, also the class head's logits (B, num_classes)."""
        _check_shape(self.image_shape, self.num_stages)
        if self.norm not in DISCRIMINATOR_NORMS:
            raise ConfigError(f"config.model.discriminator_norm='{self.norm}'; use one of "
                             f"{DISCRIMINATOR_NORMS}")
        if tuple(x_BHWC.shape[1:]) != tuple(self.image_shape):
            raise ConfigError(
                f"images of shape {tuple(x_BHWC.shape[1:])} but config.model.image_shape="
                f"{tuple(self.image_shape)}; set image_shape to the dataset's (H, W, C)"
            )
        k = (self.kernel_size, self.kernel_size)
        # without BatchNorm's shift, a bias-free LeakyReLU net is positively homogeneous,
        # D(a x) = a D(x): it scores a flat grey image (x ~ 0) near 0 whatever it learns,
        # which leaves G a safe grey corner. The other norms therefore keep their biases.
        bias = self.norm != "batch"
        h = x_BHWC.astype(self.dtype)
        for i in range(self.num_stages):
            h = self._layer(nn.Conv(self.features * 2**i, k, strides=(2, 2), padding="SAME",
                                    use_bias=bias, kernel_init=DCGAN_INIT, dtype=self.dtype,
                                    param_dtype=self.param_dtype, conv_general_dilated=window_conv,
                                    name=f"conv_{i}"), h, train)
            if i > 0 and self.norm == "batch":
                h = nn.BatchNorm(use_running_average=not train, momentum=self.bn_momentum,
                                 epsilon=1e-5, dtype=self.dtype, param_dtype=self.param_dtype,
                                 name=f"bn_{i}")(h)
            h = nn.leaky_relu(h, self.negative_slope)
        self.sow("intermediates", "features", h)
        flat = h.reshape(h.shape[0], -1)
        logit = self._layer(nn.Dense(1, use_bias=bias, kernel_init=DCGAN_INIT, dtype=self.dtype,
                                     param_dtype=self.param_dtype, name="logit"), flat, train)
        logit = logit[:, 0].astype(jnp.float32)
        if not self.num_classes:
            if with_classes:
                raise ConfigError("the discriminator has no class head; set "
                                 "config.model.num_classes to the dataset's number of classes")
            return logit
        # always built, so that `init` creates it whichever output the caller wants
        classes = self._layer(nn.Dense(self.num_classes, kernel_init=DCGAN_INIT, dtype=self.dtype,
                                       param_dtype=self.param_dtype, name="classify"), flat, train)
        return (logit, classes.astype(jnp.float32)) if with_classes else logit


class DCGAN(nn.Module):
    """Generator + discriminator; parameters `{"generator": ..., "discriminator": ...}`."""

    image_shape: tuple[int, int, int] = (64, 64, 3)  # (height, width, channels) of the images
    latent_dim: int = 100  # width of the noise z fed to the generator
    generator_features: int = 64  # width of G's last hidden map; earlier ones double per stage
    discriminator_features: int = 64  # width of D's first map; later ones double per stage
    num_stages: int = 4  # stride-2 (transposed) convolutions in G and in D
    kernel_size: int = 4  # kernel of every (transposed) convolution
    discriminator_norm: str = "batch"  # batch (the paper) | spectral | none
    num_classes: int = 0  # > 0: D also classifies images (a second head on its features)
    bn_momentum: float = 0.9  # running statistics: m * old + (1 - m) * batch
    dtype: Any = jnp.float32
    param_dtype: Any = jnp.float32

    field_checks: ClassVar[dict[str, dict[str, Any]]] = {
        "num_classes": dict(low=0), "discriminator_norm": dict(choices=DISCRIMINATOR_NORMS),
        "image_shape": dict(each=Field(1, "a side or a channel count", low=1))}

    def setup(self):
        kw = dict(image_shape=tuple(self.image_shape), num_stages=self.num_stages,
                  kernel_size=self.kernel_size, bn_momentum=self.bn_momentum, dtype=self.dtype,
                  param_dtype=self.param_dtype)
        self.generator = Generator(features=self.generator_features, **kw)
        self.discriminator = Discriminator(features=self.discriminator_features,
                                           norm=self.discriminator_norm,
                                           num_classes=self.num_classes, **kw)

    def generate(self, z_BZ: jax.Array, *, train: bool = False) -> jax.Array:
        """Images in [-1, 1] from latent noise z (B, latent_dim)."""
        if z_BZ.shape[-1] != self.latent_dim:
            raise ConfigError(
                f"noise of width {z_BZ.shape[-1]} but config.model.latent_dim={self.latent_dim}"
            )
        return self.generator(z_BZ, train=train)

    def discriminate(self, x_BHWC: jax.Array, *, train: bool = False, with_classes: bool = False
                     ) -> jax.Array | tuple[jax.Array, jax.Array]:
        """Real-vs-fake logits (B,) of images in [-1, 1]; with `with_classes`, also the class
        head's logits (B, num_classes)."""
        return self.discriminator(x_BHWC, train=train, with_classes=with_classes)

    def __call__(self, z_BZ: jax.Array, *, train: bool = False) -> jax.Array:
        """D(G(z)): touches every parameter, so `init` builds both networks."""
        return self.discriminate(self.generate(z_BZ, train=train), train=train)


register_model("dcgan", DCGAN)  # Radford et al. 64x64 RGB, z=100, 64 base features
register_model("dcgan_32", functools.partial(DCGAN, image_shape=(32, 32, 3), num_stages=3))
register_model("dcgan_28", functools.partial(DCGAN, image_shape=(28, 28, 1), num_stages=2))
register_model("dcgan_tiny", functools.partial(DCGAN, image_shape=(8, 8, 1), latent_dim=4,
                                               generator_features=4, discriminator_features=4,
                                               num_stages=2))
