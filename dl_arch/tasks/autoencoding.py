"""Autoencoding: AE, denoising AE and VAE (ELBO with beta) on images in [0, 1].

`config.task` fields:
  reconstruction_loss: 'bce' (Bernoulli decoder: per-pixel sigmoid cross-entropy on logits),
                       'gaussian' (-log N(x; sigmoid(logits), decoder_std^2): a decoder for
                       grey levels, whose small std weighs reconstruction against the KL)
                       or 'mse' (squared error of sigmoid(logits)); summed over pixels.
  corruption: 'none' | 'gaussian' | 'masking' | 'salt_pepper' (denoising: the model sees the
              corrupted image, the loss compares with the clean one); noise_level sets
              the Gaussian std, the masked fraction, or the salt-and-pepper fraction.
  beta: weight of the KL term of a VAE (beta-VAE; 1 = the ELBO).
Metrics: loss, recon (per image, summed over pixels), kl and elbo = -(recon + kl) for
VAEs (nats per image; with a mixture prior, `model.prior_components`, kl is the one-sample
estimate at the drawn z), mse per pixel, psnr of the reconstruction vs the clean image, and
psnr_noisy of the corrupted input vs the clean image (denoising).
Evaluators: `reconstructions` (inputs vs reconstructions, or clean / noisy / denoised, and
latent interpolations between eval images), `prior_samples` (a VAE's samples of a fixed
noise batch), `latent_scatter` (latent_dim 2: the eval split's codes by class) and, listed
in config.evaluators, `frechet` (a VAE's prior samples).
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax

from dl_arch.config.errors import ConfigError
from dl_arch.config.fields import Field
from dl_arch.models.autoencoder import gaussian_kl
from dl_arch.registry import register_task
from dl_arch.tasks import image_grids
from dl_arch.tasks.base import (
    ALL,
    Batch,
    MetricTotals,
    Task,
    Variables,
    build_model,
    masked_mean_pair,
)
from dl_arch.train.compile_options import model_jit

CORRUPTIONS = ("none", "gaussian", "masking", "salt_pepper")
LOSSES = ("bce", "gaussian", "mse")
DECODER_STD = 0.1  # default pixel std of the 'gaussian' decoder


def corrupt(x_BHWC: jax.Array, rng: jax.Array, kind: str, level: float) -> jax.Array:
    """The corrupted copy of images in [0, 1] that a denoising autoencoder sees."""
    if kind == "none" or level == 0.0:
        return x_BHWC
    if kind == "gaussian":  # additive noise of std `level`, clipped back to [0, 1]
        return jnp.clip(x_BHWC + level * jax.random.normal(rng, x_BHWC.shape, x_BHWC.dtype),
                        0.0, 1.0)
    pixel_shape = x_BHWC.shape[:-1] + (1,)  # one draw per pixel, shared by its channels
    if kind == "masking":  # dropout noise: a fraction `level` of pixels set to 0
        keep = jax.random.bernoulli(rng, 1.0 - level, pixel_shape)
        return jnp.where(keep, x_BHWC, 0.0)
    if kind == "salt_pepper":  # a fraction `level` of pixels set to 0 or 1, equally likely
        hit_rng, salt_rng = jax.random.split(rng)
        hit = jax.random.bernoulli(hit_rng, level, pixel_shape)
        salt = jax.random.bernoulli(salt_rng, 0.5, pixel_shape).astype(x_BHWC.dtype)
        return jnp.where(hit, salt, x_BHWC)
    raise ConfigError(f"config.task.corruption='{kind}'; use one of {CORRUPTIONS}")


def reconstruction_error(logits: jax.Array, x: jax.Array, kind: str,
                         decoder_std: float = DECODER_STD) -> jax.Array:
    """Per-image reconstruction term (B,), summed over pixels: -log p(x|z) for 'bce'/'gaussian'.
    `logits` and `x`: (B, ...) of the same shape."""
    logits = logits.astype(jnp.float32)
    x = x.astype(jnp.float32)
    if kind == "bce":
        per_pixel = optax.sigmoid_binary_cross_entropy(logits, x)
    elif kind == "gaussian":
        z = (jax.nn.sigmoid(logits) - x) / decoder_std
        per_pixel = 0.5 * jnp.square(z) + jnp.log(decoder_std) + 0.5 * jnp.log(2.0 * jnp.pi)
    elif kind == "mse":
        per_pixel = jnp.square(jax.nn.sigmoid(logits) - x)
    else:
        raise ConfigError(f"config.task.reconstruction_loss='{kind}'; use one of {LOSSES}")
    return per_pixel.reshape(per_pixel.shape[0], -1).sum(axis=1)


def psnr(a: jax.Array, b: jax.Array) -> jax.Array:
    """Peak signal-to-noise ratio per image (B,), in dB, for pixel values in [0, 1] ((B, ...))."""
    diff = (a.astype(jnp.float32) - b.astype(jnp.float32)).reshape(a.shape[0], -1)
    return -10.0 * jnp.log10(jnp.mean(jnp.square(diff), axis=1) + 1e-10)


def pixel_rows(images: jax.Array) -> jax.Array:
    """Images (B, H, W, C) as rows of pixels (B, H*W*C).

    On CPU, XLA's elementwise loops and reductions over images of one channel (a trailing
    dimension of 1) ran five times slower than over rows (docs/results/benchmarks.md, stop
    62), so the per-pixel terms are computed on rows.
    """
    return images.reshape(images.shape[0], -1)


def autoencoder_terms(out: dict[str, jax.Array], clean_BHWC: jax.Array, noisy_BHWC: jax.Array,
                      loss_kind: str, beta: float, decoder_std: float = DECODER_STD
                      ) -> dict[str, jax.Array]:
    """Per-image loss terms (each (B,)) of a model output against the clean images."""
    logits_BP, clean_BP = pixel_rows(out["logits"]), pixel_rows(clean_BHWC)
    recon = reconstruction_error(logits_BP, clean_BP, loss_kind, decoder_std)
    pixels_BP = jax.nn.sigmoid(logits_BP)
    terms = {
        "recon": recon,
        "mse": jnp.mean(jnp.square(pixels_BP - clean_BP), axis=1),
        "psnr": psnr(pixels_BP, clean_BP),
        "psnr_noisy": psnr(pixel_rows(noisy_BHWC), clean_BP),
    }
    if "mean" in out:  # the model's KL (a mixture prior's is an estimate), else N(0, I)'s
        kl = out["kl"] if "kl" in out else gaussian_kl(out["mean"], out["logvar"])
        terms.update(kl=kl, elbo=-(recon + kl), loss=recon + beta * kl)
    else:
        terms["loss"] = recon
    return terms


@register_task("autoencoding")
class AutoencodingTask(Task):
    """Reconstruct (denoise) images; with a variational model, maximise the (beta-)ELBO."""

    phases = (ALL,)
    evaluators = ("reconstructions", "prior_samples", "latent_scatter")
    fields = {
        "reconstruction_loss": Field("bce", "-log p(x|z) per image: Bernoulli (bce), Gaussian "
                                            "of std decoder_std, or squared error", choices=LOSSES),
        "decoder_std": Field(DECODER_STD, "pixel std of the 'gaussian' decoder", low=0.0,
                             low_open=True),
        "corruption": Field("none", "denoising: the model sees corrupted images, the loss "
                                    "compares with the clean ones", choices=CORRUPTIONS),
        "noise_level": Field(0.0, "corruption strength: Gaussian std, or the fraction of pixels "
                                  "masked / salted", low=0.0),
        "beta": Field(1.0, "weight of a VAE's KL term (1: the ELBO)", low=0.0),
    }
    sections = {"sample": image_grids.IMAGE_SAMPLE_FIELDS}

    def __init__(self, config: ml_collections.ConfigDict):
        super().__init__(config)
        tc = config.task
        self.loss_kind = tc.reconstruction_loss
        self.corruption = tc.corruption
        self.noise_level = tc.noise_level
        self.beta = tc.beta
        self.decoder_std = tc.decoder_std
        if self.corruption in ("masking", "salt_pepper") and self.noise_level > 1.0:
            raise ConfigError(f"config.task.noise_level={self.noise_level} is a fraction of "
                              f"pixels for '{self.corruption}'; use a value in [0, 1]")
        self.model = build_model(config.model, config)
        self.variational = bool(getattr(self.model, "variational", False))
        self._encode = model_jit(lambda v, x: self.model.apply(v, x, method="encode"))
        self._decode = model_jit(lambda v, z: self.model.apply(v, z, method="decode"))
        self._sample_latents = model_jit(
            lambda v, key, n: self.model.apply(v, key, n, method="sample_latents"),
            static_argnums=2)
        self._reconstruct = model_jit(lambda v, x: self.model.apply(v, x, sample=False))

    @property
    def generates_images(self) -> bool:
        """Whether `generate_images` can draw: only a VAE has a prior to sample."""
        return self.variational

    # ----- pure functions -----
    def init_variables(self, rng: jax.Array, batch: Batch) -> Variables:
        params_rng, latent_rng = jax.random.split(rng)
        return dict(self.model.init({"params": params_rng, "latent": latent_rng},
                                    batch["image"], train=False))

    def _forward(self, variables: Variables, images: jax.Array, rng: jax.Array, train: bool
                 ) -> tuple[dict[str, jax.Array], dict[str, jax.Array], Variables]:
        noise_rng, latent_rng, dropout_rng = jax.random.split(rng, 3)
        clean = images.astype(jnp.float32)
        noisy = corrupt(clean, noise_rng, self.corruption, self.noise_level)
        mutable = [k for k in variables if k != "params"] if train else False
        result = self.model.apply(variables, noisy, train=train, sample=self.variational,
                                  rngs={"latent": latent_rng, "dropout": dropout_rng},
                                  mutable=mutable)
        out, new_mutable = result if train else (result, {})
        terms = autoencoder_terms(out, clean, noisy, self.loss_kind, self.beta,
                                  self.decoder_std)
        return terms, out, dict(new_mutable)

    def loss(self, phase: str, params: Any, mutable: Variables, batch: Batch,
             rng: jax.Array) -> tuple[jax.Array, tuple[dict[str, jax.Array], Variables]]:
        terms, _, new_mutable = self._forward({"params": params, **mutable}, batch["image"],
                                              rng, train=True)
        metrics = {k: jnp.mean(v) for k, v in terms.items() if k != "loss"}
        if self.corruption == "none":
            metrics.pop("psnr_noisy")
        return jnp.mean(terms["loss"]), (metrics, new_mutable)

    def eval_metrics(self, variables: Variables, batch: Batch) -> MetricTotals:
        # a fixed key: the eval split always gets the same corruption and latent noise
        terms, _, _ = self._forward(variables, batch["image"], jax.random.key(0), train=False)
        mask = batch["_mask"] if "_mask" in batch else jnp.ones(batch["image"].shape[:1], jnp.float32)
        if self.corruption == "none":
            terms.pop("psnr_noisy")
        return {k: masked_mean_pair(v, mask) for k, v in terms.items()}

    # ----- host side (the evaluators' drawing helpers) -----
    def reconstruct(self, variables: Variables, images: np.ndarray
                    ) -> tuple[np.ndarray, np.ndarray]:
        """(the corrupted inputs the model sees, its reconstructions in [0, 1]) of clean images;
        the corruption's key is fixed, so pictures stay comparable across steps."""
        noisy = np.asarray(corrupt(jnp.asarray(images), jax.random.key(0), self.corruption,
                                   self.noise_level))
        logits = self._reconstruct(variables, jnp.asarray(noisy))["logits"]
        return noisy, np.asarray(jax.nn.sigmoid(logits))

    def latents(self, variables: Variables, images: np.ndarray, batch_size: int = 256
                ) -> np.ndarray:
        """Codes of images (a VAE's posterior means), (N, latent_dim)."""
        outs = [self._encode(variables, jnp.asarray(images[i:i + batch_size]))
                for i in range(0, len(images), batch_size)]
        return np.concatenate([np.asarray(o["mean"] if self.variational else o["z"])
                               for o in outs])

    def decode_images(self, variables: Variables, z: np.ndarray) -> np.ndarray:
        """Images in [0, 1] (NHWC) decoded from latent codes z."""
        return np.asarray(jax.nn.sigmoid(self._decode(variables, jnp.asarray(z))))

    def generate_images(self, variables: Variables, count: int, seed: int) -> np.ndarray:
        """A VAE's `count` prior samples in [0, 1] (NHWC), from noise of key `seed`."""
        if not self.variational:
            raise ConfigError("an autoencoder has no prior to sample; use a *_vae model "
                              "(config.model.name)")
        return self.decode_images(variables,
                                  self._sample_latents(variables, jax.random.key(seed), count))

    def sample(self, variables: Variables, sample_config: ml_collections.ConfigDict,
               workdir: str) -> Any:
        """VAE: `num_samples` prior samples in [0, 1] (NHWC), saved to `output` if set."""
        if not self.variational:
            raise ConfigError("an autoencoder has no prior to sample; use a *_vae model "
                              "(config.model.name) or drop --sample")
        return image_grids.save_samples(
            self.generate_images(variables, sample_config.num_samples, sample_config.seed),
            sample_config, workdir)
