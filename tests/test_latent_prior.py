"""The VAE's learned mixture prior: log-density, KL estimate and sampling against numpy."""

from __future__ import annotations

import chex
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from scipy.special import logsumexp
from scipy.stats import norm

from dl_arch.models import autoencoder, latent_prior
from dl_arch.registry import MODELS
from dl_arch.train.loop import build_task


def np_mixture_log_prob(z, means, logvars, logits):
    """log p(z) of a diagonal Gaussian mixture with scipy's normal density, (B,)."""
    log_w = logits - logsumexp(logits)
    per = norm.logpdf(z[:, None, :], means, np.exp(0.5 * logvars)).sum(-1)  # (B, K)
    return logsumexp(log_w + per, axis=1)


def random_mixture(rng, k=3, d=4):
    return rng.normal(size=(k, d)) * 2, rng.normal(size=(k, d)) * 0.5, rng.normal(size=k)


def test_mixture_log_prob_matches_scipy():
    rng = np.random.default_rng(0)
    means, logvars, logits = random_mixture(rng)
    z = rng.normal(size=(6, 4)) * 2
    ours = latent_prior.mixture_log_prob(*(jnp.asarray(a, jnp.float32)
                                           for a in (z, means, logvars, logits)))
    np.testing.assert_allclose(ours, np_mixture_log_prob(z, means, logvars, logits), rtol=1e-5)


def test_kl_estimate_is_unbiased():
    """Averaged over z ~ q, -H(q) - log p(z) equals numpy's E_q[log q(z) - log p(z)] for a
    mixture, and the closed-form KL when the mixture is the one component N(0, I)."""
    rng = np.random.default_rng(1)
    means, logvars, logits = random_mixture(rng)
    mean, logvar = rng.normal(size=(2, 4)), rng.normal(size=(2, 4)) * 0.5
    z = mean + np.exp(0.5 * logvar) * rng.normal(size=(100_000, 2, 4))
    neg_entropy = np.asarray(latent_prior.gaussian_neg_entropy(jnp.asarray(logvar)))

    def estimate(*prior):  # mean over the draws of -H(q) - log p(z), per example (2,)
        log_p = latent_prior.mixture_log_prob(jnp.asarray(z.reshape(-1, 4), jnp.float32),
                                              *(jnp.asarray(a, jnp.float32) for a in prior))
        return (neg_entropy - np.asarray(log_p).reshape(-1, 2)).mean(0)

    ours = estimate(means, logvars, logits)
    log_q = norm.logpdf(z, mean, np.exp(0.5 * logvar)).sum(-1)
    log_p = np_mixture_log_prob(z.reshape(-1, 4), means, logvars, logits).reshape(-1, 2)
    np.testing.assert_allclose(ours, (log_q - log_p).mean(0), rtol=0.01)
    closed = autoencoder.gaussian_kl(jnp.asarray(mean), jnp.asarray(logvar))
    np.testing.assert_allclose(estimate(np.zeros((1, 4)), np.zeros((1, 4)), np.zeros(1)),
                               closed, rtol=0.01)


def test_samples_follow_the_weights_and_the_components():
    prior = latent_prior.MixturePrior(num_components=2, latent_dim=3)
    params = {"params": {"means": jnp.asarray([[-10.0] * 3, [10.0] * 3]),
                         "logvars": jnp.log(jnp.asarray([[0.25] * 3, [4.0] * 3])),
                         "logits": jnp.log(jnp.asarray([0.25, 0.75]))}}
    z = np.asarray(prior.apply(params, jax.random.key(0), 40_000, method="sample"))
    chex.assert_shape(z, (40_000, 3))
    second = z[:, 0] > 0
    np.testing.assert_allclose(second.mean(), 0.75, atol=0.01)
    np.testing.assert_allclose(z[~second].mean(0), -10.0, atol=0.02)
    np.testing.assert_allclose(z[second].std(0), 2.0, rtol=0.02)
    np.testing.assert_allclose(z[~second].std(0), 0.5, rtol=0.02)


def test_vae_with_a_mixture_prior_reports_the_estimated_kl_and_samples_from_it():
    """The task's KL metric is -H(q) - log p(z) at the model's own z, and its prior samples
    decode draws of the mixture (the N(0, I) default keeps the closed form)."""
    config = ml_collections.ConfigDict({
        "seed": 0, "dtype": "float32", "param_dtype": "float32",
        "model": {"name": "dense_vae_tiny", "prior_components": 3},
        "task": {"name": "autoencoding", "reconstruction_loss": "mse"},
        "dataset": {"name": "shapes", "image_size": 8, "channels": 1}})
    task = build_task(config)
    x = jnp.asarray(np.random.default_rng(2).uniform(size=(4, 8, 8, 1)), jnp.float32)
    variables = jax.jit(task.init_variables)(jax.random.key(0), {"image": x})
    prior = variables["params"]["prior"]
    chex.assert_shape([prior["means"], prior["logvars"], prior["logits"]],
                      [(3, 4), (3, 4), (3,)])
    rng = jax.random.key(7)
    _, (metrics, _) = task.loss("all", variables["params"], {}, {"image": x}, rng)
    _, latent_rng, _ = jax.random.split(rng, 3)  # the task's (noise, latent, dropout) keys
    out = task.model.apply(variables, x, train=True, rngs={"latent": latent_rng})
    logvar, z = np.asarray(out["logvar"], np.float64), np.asarray(out["z"], np.float64)
    neg_entropy = -0.5 * np.sum(np.log(2 * np.pi) + 1 + logvar, axis=1)
    kl = neg_entropy - np_mixture_log_prob(z, *(np.asarray(prior[k], np.float64)
                                                for k in ("means", "logvars", "logits")))
    np.testing.assert_allclose(float(metrics["kl"]), kl.mean(), rtol=1e-4)
    draws = task.model.apply(variables, jax.random.key(3), 5, method="sample_latents")
    np.testing.assert_allclose(
        task.generate_images(variables, 5, 3),
        jax.nn.sigmoid(task.model.apply(variables, draws, method="decode")), rtol=1e-6)
    standard = MODELS.get("dense_vae_tiny")()
    v0 = jax.jit(standard.init)({"params": jax.random.key(0), "latent": jax.random.key(1)}, x)
    q = standard.apply(v0, x, method="encode")
    np.testing.assert_allclose(standard.apply(v0, x)["kl"],
                               autoencoder.gaussian_kl(q["mean"], q["logvar"]), rtol=1e-6)
