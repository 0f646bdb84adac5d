"""A learned mixture-of-Gaussians prior for a VAE's latent, the alternative to N(0, I).

With N(0, I) the KL term has a closed form, but the codes of a well-fitted VAE form separate
clusters (one per kind of image) whose gaps the prior still fills, so prior samples land
between them and decode to blends. A learned mixture of K diagonal Gaussians
(Dilokthanakul et al., 2016; Tomczak & Welling, 2018) can put its mass where the codes are.
Its KL has no closed form and is estimated from the sampled z:
  KL(q || p) = E_q[log q(z|x)] - E_q[log p(z)] ~ -H(q(z|x)) - log p(z),  z ~ q(z|x),
with the entropy of the Gaussian q in closed form, which keeps the estimate's variance low.
"""

from __future__ import annotations

import math

import flax.linen as nn
import jax
import jax.numpy as jnp

LOG_2PI = math.log(2.0 * math.pi)


def gaussian_neg_entropy(logvar_BZ: jax.Array) -> jax.Array:
    """E_q[log q(z)] of a diagonal Gaussian q with log-variances `logvar` (B,), in nats."""
    return -0.5 * jnp.sum(LOG_2PI + 1.0 + logvar_BZ.astype(jnp.float32), axis=-1)


def mixture_log_prob(z_BZ: jax.Array, means_KZ: jax.Array, logvars_KZ: jax.Array,
                     logits_K: jax.Array) -> jax.Array:
    """log sum_k softmax(logits)_k N(z; means_k, diag(exp(logvars_k))) per row of z (B,)."""
    z = z_BZ.astype(jnp.float32)[:, None, :]
    means, logvars = means_KZ[None], logvars_KZ[None]
    per_dim_BKZ = -0.5 * (LOG_2PI + logvars + jnp.square(z - means) * jnp.exp(-logvars))
    return jax.nn.logsumexp(jax.nn.log_softmax(logits_K)[None] + per_dim_BKZ.sum(-1), axis=-1)


class MixturePrior(nn.Module):
    """A learned mixture of `num_components` diagonal Gaussians over a `latent_dim` space.

    Means start as N(0, I) draws (spread where the encoder's codes begin), log-variances at 0
    and weights uniform; all three train with the ELBO.
    """

    num_components: int
    latent_dim: int

    def setup(self):
        shape = (self.num_components, self.latent_dim)
        self.means = self.param("means", nn.initializers.normal(1.0), shape, jnp.float32)
        self.logvars = self.param("logvars", nn.initializers.zeros, shape, jnp.float32)
        self.logits = self.param("logits", nn.initializers.zeros, (self.num_components,),
                                 jnp.float32)

    def log_prob(self, z_BZ: jax.Array) -> jax.Array:
        """log p(z) per example (B,)."""
        return mixture_log_prob(z_BZ, self.means, self.logvars, self.logits)

    def sample(self, rng: jax.Array, count: int) -> jax.Array:
        """`count` draws (count, latent_dim): a component by its weight, then its Gaussian."""
        pick_rng, noise_rng = jax.random.split(rng)
        k = jax.random.categorical(pick_rng, self.logits, shape=(count,))
        eps = jax.random.normal(noise_rng, (count, self.latent_dim), jnp.float32)
        return self.means[k] + jnp.exp(0.5 * self.logvars[k]) * eps
