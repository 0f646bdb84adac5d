"""GAN training as two phases of the shared loop: the discriminator, then the generator.

The loop runs `loss("discriminator", ...)` and updates only `params["discriminator"]` with
its optimiser, then `loss("generator", ...)` with the updated parameters and updates only
`params["generator"]`, inside one jitted step. Losses (logits l = D(x)):
  discriminator: -log sigmoid(l_real) - log(1 - sigmoid(l_fake)) = softplus(-l_real) +
                 softplus(l_fake), real and fake scored as separate BatchNorm batches
                 (config.task.real_label < 1: one-sided label smoothing of the real term;
                 config.task.r1_gamma > 0 adds R1 = gamma/2 E_real ||dD/dx||^2, Mescheder
                 et al., 2018, which keeps D from growing steep where the real images lie);
  generator (non-saturating): -log sigmoid(l_fake) = softplus(-l_fake).
Real images in [0, 1] are mapped to the generator's tanh range [-1, 1].
config.task.discriminator_steps = k: the Trainer updates D k times per step (`steps_per_phase`;
on the same real batch, fresh noise each time) before G's update, as WGAN and SN-GAN train
their critic; D's train metrics are those of its last update.
config.task.class_weight = w > 0 (with config.model.num_classes = K, D's class head) adds a
class signal to both losses: D also learns to classify the real images, + w CE(labels); G
is pushed towards images that this head classifies confidently and, over the batch,
evenly, + w (E_z H(p(y|G(z))) - H(E_z p(y|G(z)))) (the generator's term of CatGAN,
Springenberg, 2016). G stays unconditional; the labels only train D's head, which is what
makes D look at the geometry that tells the classes apart.
Metrics: d_loss, g_loss, d_real_accuracy (real scored real), d_fake_accuracy (fake scored
fake), and mean D probabilities. Evaluators: `gan_samples` (a fixed noise batch, comparable
across steps, and latent interpolation strips) and, listed in config.evaluators, `frechet`.
With config.ema_decay > 0 the loop keeps an average of the weights (Yazıcı et al., 2019:
it smooths the oscillation of the game) and evaluation uses it (config.eval_with_ema): the
pictures, and the eval metrics of the averaged D against the averaged G. The running
BatchNorm statistics belong to the live G, so the averaged G draws with its own "standing"
statistics (Brock et al., 2019): the mean of its per-batch statistics over
config.task.standing_stats_batches noise batches, re-estimated at every drawing.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from dl_arch.config.errors import ConfigError
from dl_arch.config.fields import Field
from dl_arch.registry import register_task
from dl_arch.tasks import image_grids
from dl_arch.tasks.base import Batch, MetricTotals, Task, Variables, build_model, masked_mean_pair
from dl_arch.tasks.classification import cross_entropy
from dl_arch.train.compile_options import model_jit

DISCRIMINATOR, GENERATOR = "discriminator", "generator"


def to_tanh_range(images: jax.Array) -> jax.Array:
    """[0, 1] -> [-1, 1]."""
    return images.astype(jnp.float32) * 2.0 - 1.0


def from_tanh_range(images: Any) -> Any:
    """[-1, 1] -> [0, 1]."""
    return (images + 1.0) * 0.5


def discriminator_loss(real_logits_B: jax.Array, fake_logits_B: jax.Array,
                       real_label: float = 1.0) -> jax.Array:
    """Binary cross-entropy of D with real = `real_label` and fake = 0, per example (B,).

    real_label < 1 is one-sided label smoothing (Salimans et al., 2016): D is not rewarded
    for ever more confident real scores, which keeps it from overpowering G.
    """
    real = real_label * jax.nn.softplus(-real_logits_B) + (1.0 - real_label) * jax.nn.softplus(
        real_logits_B)
    return real + jax.nn.softplus(fake_logits_B)


def generator_loss(fake_logits_B: jax.Array) -> jax.Array:
    """Non-saturating generator loss -log D(G(z)) per example (B,)."""
    return jax.nn.softplus(-fake_logits_B)


def class_entropies(class_logits_BK: jax.Array) -> tuple[jax.Array, jax.Array]:
    """(mean entropy of each p(y|x), entropy of the batch's mean p(y|x)), in nats.

    Low mean entropy: every image is confidently one class; high entropy of the mean: the
    batch spreads over the classes. G minimises the first minus the second.
    """
    p_BK = jax.nn.softmax(class_logits_BK, axis=-1)
    conditional = -jnp.mean(jnp.sum(p_BK * jax.nn.log_softmax(class_logits_BK, axis=-1), -1))
    marginal = jnp.sum(jax.scipy.special.entr(jnp.mean(p_BK, axis=0)))
    return conditional, marginal


@register_task("gan")
class GANTask(Task):
    """DCGAN-style adversarial training; `params = {"generator", "discriminator"}`."""

    phases = (DISCRIMINATOR, GENERATOR)
    evaluators = ("gan_samples",)
    generates_images = True  # `generate_images` draws from noise (the frechet evaluator's need)
    fields = {
        "real_label": Field(1.0, "D's target for real images: < 1 is one-sided label smoothing "
                                 "(1: off, 0.9: usual)", low=0.5, high=1.0, low_open=True),
        "standing_stats_batches": Field(16, "noise batches for the BatchNorm statistics of G's "
                                            "average when config.ema_decay > 0 (0: the live G's "
                                            "running statistics)", low=0),
        "discriminator_steps": Field(1, "D updates per G update (1: the paper)", low=1),
        "r1_gamma": Field(0.0, "weight of D's R1 gradient penalty on real images (0: off)",
                          low=0.0),
        "class_weight": Field(0.0, "weight of D's class loss on real labels and G's "
                                   "class-confidence term (0: off; needs model.num_classes)",
                              low=0.0),
    }
    sections = {"sample": image_grids.IMAGE_SAMPLE_FIELDS}

    def __init__(self, config: ml_collections.ConfigDict):
        super().__init__(config)
        self.model = build_model(config.model, config)
        for method in ("generate", "discriminate"):
            if not hasattr(self.model, method):
                raise ConfigError(f"config.model.name='{config.model.name}' has no `{method}`; "
                                  f"the gan task needs a generator/discriminator model (dcgan*)")
        self.latent_dim = int(self.model.latent_dim)
        tc = config.task
        self.real_label = tc.real_label
        # the variables evaluation hands over hold G's average, whose statistics are its own
        self.standing_batches = (tc.standing_stats_batches
                                 if config.ema_decay > 0 and config.eval_with_ema else 0)
        self.r1_gamma = tc.r1_gamma
        self.class_weight = tc.class_weight
        if self.class_weight > 0 and not getattr(self.model, "num_classes", 0):
            raise ConfigError(f"config.task.class_weight={self.class_weight} needs a class head "
                              f"on D: set config.model.num_classes to the dataset's classes")
        self._generate = model_jit(lambda v, z: self.model.apply(v, z, method="generate"))
        # momentum 0: a train-mode call returns exactly the batch's statistics
        exact = self.model.clone(bn_momentum=0.0)
        self._batch_stats = model_jit(lambda v, z: exact.apply(
            v, z, train=True, method="generate", mutable=["batch_stats"])[1]["batch_stats"])

    @property
    def steps_per_phase(self) -> dict[str, int]:
        """k = config.task.discriminator_steps D updates (one optimiser state), then one of G."""
        return {DISCRIMINATOR: self.config.task.discriminator_steps, GENERATOR: 1}

    def noise(self, rng: jax.Array, batch_size: int) -> jax.Array:
        """Generator input z ~ N(0, I), (B, latent_dim)."""
        return jax.random.normal(rng, (batch_size, self.latent_dim), jnp.float32)

    # ----- pure functions -----
    def init_variables(self, rng: jax.Array, batch: Batch) -> Variables:
        z = jnp.zeros((batch["image"].shape[0], self.latent_dim), jnp.float32)
        return dict(self.model.init({"params": rng}, z, train=False))

    def picture_variables(self, variables: Variables, sample_seed: int,
                          batch_size: int = 256) -> Variables:
        """The variables that draw pictures. When they hold G's weight average (config.ema_decay
        > 0 and config.eval_with_ema), G's BatchNorm statistics become the average's standing
        ones: the mean over `standing_stats_batches` noise batches of the statistics each batch
        gives the averaged weights in training mode. The noise keys follow `sample_seed`, so
        pictures stay comparable across steps."""
        if self.standing_batches == 0:
            return variables
        # keys sample_seed + 3, + 4, ...: clear of the samples' (+ 0) and interpolations' (+ 1)
        per_batch = [self._batch_stats(variables, self.noise(
            jax.random.key(sample_seed + 3 + i), batch_size)) for i in range(self.standing_batches)]
        standing = jax.tree.map(lambda *s: np.mean(np.stack(s), axis=0),
                                *[b[GENERATOR] for b in per_batch])
        return {**variables, "batch_stats": {**variables["batch_stats"], GENERATOR: standing}}

    def _apply(self, params: Any, stats: Any, x: jax.Array, method: str, **kwargs: Any
               ) -> tuple[Any, Any]:
        """A train-mode call that returns the updated batch statistics."""
        out, new = self.model.apply({"params": params, "batch_stats": stats}, x, train=True,
                                    method=method, mutable=["batch_stats"], **kwargs)
        return out, new["batch_stats"]

    def _discriminate(self, params: Any, stats: Any, x: jax.Array
                      ) -> tuple[jax.Array, jax.Array | None, Any]:
        """D's logits, its class logits (None when class_weight is 0), its new statistics."""
        if self.class_weight == 0:
            logits, stats = self._apply(params, stats, x, "discriminate")
            return logits, None, stats
        (logits, classes), stats = self._apply(params, stats, x, "discriminate",
                                               with_classes=True)
        return logits, classes, stats

    def _score_real(self, params: Any, stats: Any, real: jax.Array
                    ) -> tuple[jax.Array, jax.Array | None, Any, jax.Array]:
        """`_discriminate` of the real batch, and per example the squared norm of the gradient
        of D's (summed) logits with respect to the image, R1's integrand."""
        def summed(x):
            logits, classes, new_stats = self._discriminate(params, stats, x)
            return jnp.sum(logits), (logits, classes, new_stats)

        grad, (logits, classes, stats) = jax.grad(summed, has_aux=True)(real)
        return logits, classes, stats, jnp.sum(jnp.square(grad), axis=tuple(range(1, grad.ndim)))

    def loss(self, phase: str, params: Any, mutable: Variables, batch: Batch,
             rng: jax.Array) -> tuple[jax.Array, tuple[dict[str, jax.Array], Variables]]:
        if phase not in self.phases:
            raise ValueError(f"unknown GAN phase '{phase}'; phases are {self.phases}")
        real = to_tanh_range(batch["image"])
        # D's and G's noise differ even if the loop hands both the same key
        z = self.noise(jax.random.fold_in(rng, int(phase == GENERATOR)), real.shape[0])
        stats = mutable["batch_stats"]
        fake, stats = self._apply(params, stats, z, "generate")
        if phase == DISCRIMINATOR:
            fake = jax.lax.stop_gradient(fake)
            if self.r1_gamma > 0:
                real_logits, real_classes, stats, grad_sq = self._score_real(params, stats, real)
            else:
                real_logits, real_classes, stats = self._discriminate(params, stats, real)
            fake_logits, _, stats = self._discriminate(params, stats, fake)
            d_loss = jnp.mean(discriminator_loss(real_logits, fake_logits, self.real_label))
            loss = d_loss
            metrics = {
                "d_loss": d_loss,
                "d_real_accuracy": jnp.mean((real_logits > 0).astype(jnp.float32)),
                "d_fake_accuracy": jnp.mean((fake_logits < 0).astype(jnp.float32)),
                "d_real_prob": jnp.mean(jax.nn.sigmoid(real_logits)),
                "d_fake_prob": jnp.mean(jax.nn.sigmoid(fake_logits)),
            }
            if self.r1_gamma > 0:  # R1: D kept flat on the real data
                metrics["r1_grad_sq"] = jnp.mean(grad_sq)
                loss = loss + 0.5 * self.r1_gamma * metrics["r1_grad_sq"]
            if real_classes is not None:  # D's class head learns the real labels
                labels = self._labels(batch)
                metrics["d_class_loss"] = jnp.mean(cross_entropy(real_classes, labels))
                metrics["d_class_accuracy"] = jnp.mean(
                    (jnp.argmax(real_classes, -1) == labels).astype(jnp.float32))
                loss = loss + self.class_weight * metrics["d_class_loss"]
        else:
            fake_logits, fake_classes, stats = self._discriminate(params, stats, fake)
            g_loss = jnp.mean(generator_loss(fake_logits))
            loss = g_loss
            metrics = {"g_loss": g_loss,
                       "g_fools_d": jnp.mean((fake_logits > 0).astype(jnp.float32))}
            if fake_classes is not None:  # each sample clearly one class, the batch all classes
                conditional, marginal = class_entropies(fake_classes)
                metrics |= {"g_class_entropy": conditional, "g_class_marginal_entropy": marginal}
                loss = loss + self.class_weight * (conditional - marginal)
        return loss, (metrics, {**mutable, "batch_stats": stats})

    @staticmethod
    def _labels(batch: Batch) -> jax.Array:
        if "label" not in batch:
            raise ConfigError("config.task.class_weight > 0 needs labelled images (a 'label' "
                              "field); use a labelled dataset or set class_weight = 0")
        return batch["label"].astype(jnp.int32)

    def eval_metrics(self, variables: Variables, batch: Batch) -> MetricTotals:
        real = to_tanh_range(batch["image"])
        mask = batch["_mask"] if "_mask" in batch else jnp.ones(real.shape[:1], jnp.float32)
        z = self.noise(jax.random.key(0), real.shape[0])  # fixed: comparable across evals
        fake = self.model.apply(variables, z, method="generate")
        fake_logits = self.model.apply(variables, fake, method="discriminate")
        real_logits = self.model.apply(variables, real, method="discriminate",
                                       with_classes=self.class_weight > 0)
        totals = {}
        if self.class_weight > 0:
            real_logits, real_classes = real_logits
            totals["d_class_accuracy"] = masked_mean_pair(
                jnp.argmax(real_classes, -1) == self._labels(batch), mask)
        return totals | {
            "d_loss": masked_mean_pair(discriminator_loss(real_logits, fake_logits), mask),
            "g_loss": masked_mean_pair(generator_loss(fake_logits), mask),
            "d_real_accuracy": masked_mean_pair(real_logits > 0, mask),
            "d_fake_accuracy": masked_mean_pair(fake_logits < 0, mask),
        }

    # ----- host side -----
    def draw(self, picture_vars: Variables, z: Any, batch_size: int = 256) -> np.ndarray:
        """Images in [0, 1] (NHWC) of latent codes z, from `picture_variables`."""
        outs = [np.asarray(self._generate(picture_vars, jnp.asarray(z[i:i + batch_size])))
                for i in range(0, len(z), batch_size)]
        return from_tanh_range(np.concatenate(outs))

    def generate_images(self, variables: Variables, count: int, seed: int) -> np.ndarray:
        """`count` generated images in [0, 1] (NHWC) from noise of key `seed`."""
        return self.draw(self.picture_variables(variables, seed),
                         self.noise(jax.random.key(seed), count))

    def sample(self, variables: Variables, sample_config: ml_collections.ConfigDict,
               workdir: str) -> Any:
        """`num_samples` generated images in [0, 1] (NHWC), saved to `output` if set."""
        return image_grids.save_samples(
            self.generate_images(variables, sample_config.num_samples, sample_config.seed),
            sample_config, workdir)
