"""Fréchet distance of generated images, in the feature space of our own classifier.

FID (Heusel et al., 2017) compares the Gaussian statistics (mean, covariance) of network
features of real and generated images:
    d^2 = |mu_r - mu_g|^2 + tr(S_r) + tr(S_g) - 2 tr((S_r^1/2 S_g S_r^1/2)^1/2).
Instead of a downloaded Inception network, the features are the penultimate layer of a
small CNN that this module trains on the labelled images of the same dataset (a few
hundred steps on CPU), saved in the workdir and reused by later evaluations; a path in
`config.frechet.classifier_path` loads one trained elsewhere. The distance between two
disjoint real sets is reported beside it as the floor a perfect generator would reach.
The classifier and the real images follow `config.frechet.seed`, not the run's `config.seed`,
so runs of different training seeds are measured with the same stick.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
from flax import serialization

from dl_arch.config.errors import ConfigError
from dl_arch.config.fields import Field, Fields

CLASSIFIER_FILE = "frechet_classifier.msgpack"

# `config.frechet`: declared by the tasks that report the metric (gan, autoencoding).
FRECHET_FIELDS: Fields = {
    "enabled": Field(False, "compute the Fréchet distance at the end of the run"),
    "num_classes": Field(0, "classes of the dataset's labels: the feature classifier's head "
                            "(>= 2 when enabled)", low=0),
    "num_samples": Field(2000, "real and generated images compared", low=2),
    "classifier_steps": Field(600, "Adam steps of the feature classifier", low=0),
    "classifier_batch_size": Field(128, "batch size of the feature classifier", low=1),
    "classifier_train_examples": Field(10000, "labelled training images of the classifier",
                                       low=1),
    "learning_rate": Field(3e-3, "Adam step size of the feature classifier", low=0.0,
                           low_open=True),
    "classifier_path": Field("", "saved classifier ('': <workdir>/frechet_classifier.msgpack, "
                                 "trained when absent)"),
    "seed": Field(0, "seed of the classifier and the real images, apart from config.seed so "
                     "runs of different training seeds share one measuring stick"),
}
SMOKE_FRECHET = {"num_samples": 64, "classifier_steps": 30, "classifier_batch_size": 64,
                 "classifier_train_examples": 256}  # seconds on a CPU


def feature_statistics(features_ND: Any) -> tuple[np.ndarray, np.ndarray]:
    """Mean (D,) and unbiased covariance (D, D) of N feature vectors, in float64."""
    f = np.asarray(features_ND, np.float64)
    if f.ndim != 2 or f.shape[0] < 2:
        raise ValueError(f"need an (N >= 2, D) feature matrix, got shape {f.shape}")
    return f.mean(axis=0), np.cov(f, rowvar=False)


def frechet_distance(mu1: Any, sigma1: Any, mu2: Any, sigma2: Any) -> float:
    """Squared Fréchet distance between N(mu1, sigma1) and N(mu2, sigma2).

    tr((S1 S2)^1/2) is computed as the sum of square roots of the eigenvalues of the
    symmetric PSD matrix S1^1/2 S2 S1^1/2 (similar to S1 S2), which avoids the complex
    general matrix square root and stays stable for singular covariances.
    """
    mu1, mu2 = np.asarray(mu1, np.float64), np.asarray(mu2, np.float64)
    s1, s2 = np.asarray(sigma1, np.float64), np.asarray(sigma2, np.float64)
    if mu1.shape != mu2.shape or s1.shape != s2.shape or s1.shape != mu1.shape * 2:
        raise ValueError(f"mismatched statistics: means {mu1.shape}, {mu2.shape}; "
                         f"covariances {s1.shape}, {s2.shape}")
    w1, v1 = np.linalg.eigh((s1 + s1.T) / 2)
    sqrt_s1 = (v1 * np.sqrt(np.clip(w1, 0.0, None))) @ v1.T
    middle = sqrt_s1 @ s2 @ sqrt_s1
    eig = np.linalg.eigvalsh((middle + middle.T) / 2)
    tr_covmean = float(np.sum(np.sqrt(np.clip(eig, 0.0, None))))
    diff = mu1 - mu2
    return float(diff @ diff + np.trace(s1) + np.trace(s2) - 2.0 * tr_covmean)


class FeatureNet(nn.Module):
    """A small CNN classifier whose penultimate activations are the Fréchet features."""

    num_classes: int
    features: tuple[int, ...] = (32, 64)
    width: int = 128

    @nn.compact
    def __call__(self, x_BHWC: jax.Array) -> tuple[jax.Array, jax.Array]:
        """(class logits (B, K), features (B, width)) of images in [0, 1]."""
        h = x_BHWC.astype(jnp.float32) * 2.0 - 1.0
        for i, f in enumerate(self.features):
            h = nn.relu(nn.Conv(f, (3, 3), strides=(2, 2), name=f"conv_{i}")(h))
        h = h.reshape(h.shape[0], -1)
        feats = nn.relu(nn.Dense(self.width, name="features")(h))
        return nn.Dense(self.num_classes, name="classifier")(feats), feats


def train_feature_net(images_NHWC: np.ndarray, labels_N: np.ndarray, num_classes: int,
                      steps: int, batch_size: int, learning_rate: float, seed: int) -> Any:
    """Fits FeatureNet to (images, labels) with Adam and returns its parameters."""
    if num_classes < 2:
        raise ConfigError(
            f"config.frechet.num_classes={num_classes}: the feature classifier needs >= 2 "
            f"classes; use a labelled dataset with several classes"
        )
    net = FeatureNet(num_classes)
    params = net.init(jax.random.key(seed), jnp.asarray(images_NHWC[:1]))["params"]
    opt = optax.adam(learning_rate)
    opt_state = opt.init(params)

    @jax.jit
    def step(params, opt_state, x, y):
        def loss_fn(p):
            logits, _ = net.apply({"params": p}, x)
            return optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()

        grads = jax.grad(loss_fn)(params)
        updates, opt_state = opt.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state

    rng = np.random.default_rng(seed)
    n = len(images_NHWC)
    for _ in range(steps):
        idx = rng.integers(0, n, size=min(batch_size, n))
        params, opt_state = step(params, opt_state, images_NHWC[idx], labels_N[idx])
    return params


def load_examples(dataset_config: Any, split: str, seed: int, count: int, start: int = 0
                  ) -> tuple[np.ndarray, np.ndarray]:
    """`count` (image in [0, 1], label) pairs of a split from index `start`, as numpy arrays.

    A split shorter than `start + count` gives its last `count` examples (or all of them).
    """
    from dl_arch.data.pipeline import make_source, standardize  # data sits beside the loop

    source = make_source(dataset_config, split, seed)
    count = min(count, len(source))
    start = max(0, min(start, len(source) - count))
    examples = [standardize(dict(source[i])) for i in range(start, start + count)]
    images = np.stack([np.asarray(e["image"], np.float32) for e in examples])
    labels = np.asarray([int(np.asarray(e["label"])) if "label" in e else 0 for e in examples], np.int32)
    return images, labels


class FrechetEvaluator:
    """Features and Fréchet distances from a trained FeatureNet."""

    def __init__(self, num_classes: int, params: Any):
        self.net = FeatureNet(num_classes)
        self.params = params
        self._apply = jax.jit(lambda p, x: self.net.apply({"params": p}, x))

    def logits_and_features(self, images_NHWC: np.ndarray, batch_size: int = 256
                            ) -> tuple[np.ndarray, np.ndarray]:
        outs = [self._apply(self.params, jnp.asarray(images_NHWC[i:i + batch_size]))
                for i in range(0, len(images_NHWC), batch_size)]
        return (np.concatenate([np.asarray(o[0]) for o in outs]),
                np.concatenate([np.asarray(o[1]) for o in outs]))

    def distance(self, images_a: np.ndarray, images_b: np.ndarray) -> float:
        """Fréchet distance between two image sets (floats in [0, 1])."""
        sa = feature_statistics(self.logits_and_features(images_a)[1])
        sb = feature_statistics(self.logits_and_features(images_b)[1])
        return frechet_distance(*sa, *sb)

    @classmethod
    def for_config(cls, config: ml_collections.ConfigDict, workdir: str) -> FrechetEvaluator:
        """Loads the classifier from `classifier_path` / the workdir, or trains and saves it."""
        fc = config.frechet
        num_classes = int(fc.num_classes)
        path = fc.classifier_path or (
            os.path.join(workdir, CLASSIFIER_FILE) if workdir else "")
        template = FeatureNet(num_classes).init(
            jax.random.key(0), jnp.zeros((1, *config.model.image_shape), jnp.float32))["params"]
        if path and os.path.exists(path):
            with open(path, "rb") as f:
                try:
                    params = serialization.from_bytes(template, f.read())
                except (ValueError, KeyError) as e:
                    raise ConfigError(
                        f"config.frechet.classifier_path={path} does not hold a FeatureNet for "
                        f"{num_classes} classes and image shape {config.model.image_shape} ({e})"
                    ) from e
            return cls(num_classes, params)
        seed = measuring_seed(config)
        images, labels = load_examples(config.dataset, config.dataset.train_split, seed,
                                       int(fc.classifier_train_examples))
        params = train_feature_net(images, labels, num_classes, int(fc.classifier_steps),
                                   int(fc.classifier_batch_size), float(fc.learning_rate), seed)
        if path:
            os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
            with open(path, "wb") as f:
                f.write(serialization.to_bytes(params))
        return cls(num_classes, params)


def measuring_seed(config: ml_collections.ConfigDict) -> int:
    """Seed of the feature classifier and of the real images it compares: `frechet.seed`."""
    return int(config.frechet.seed)


def frechet_report(config: ml_collections.ConfigDict, workdir: str,
                   generate: Callable[[int], np.ndarray]) -> dict[str, float]:
    """Fréchet distance of `generate(n)` images vs the eval split, plus real-vs-real floor.

    Returns `frechet_distance`, `frechet_real_floor` (train vs eval images) and
    `frechet_classifier_accuracy` (on the eval images, to show the features mean something).
    """
    fc = config.frechet
    n = int(fc.num_samples)
    evaluator = FrechetEvaluator.for_config(config, workdir)
    seed = measuring_seed(config)
    eval_images, eval_labels = load_examples(config.dataset, config.dataset.eval_split, seed, n)
    # the floor: a slice of the training split after the classifier's examples
    train_images, _ = load_examples(config.dataset, config.dataset.train_split, seed,
                                    len(eval_images), start=int(fc.classifier_train_examples))
    fake = np.clip(np.asarray(generate(len(eval_images)), np.float32), 0.0, 1.0)
    logits, _ = evaluator.logits_and_features(eval_images)
    return {
        "frechet_distance": evaluator.distance(eval_images, fake),
        "frechet_real_floor": evaluator.distance(eval_images, train_images),
        "frechet_classifier_accuracy": float(np.mean(logits.argmax(-1) == eval_labels)),
    }


def check_frechet(config: ml_collections.ConfigDict) -> None:
    """Raises ConfigError at task construction, not after training, when the metric is on
    but cannot be measured."""
    fc = config.frechet
    if fc.enabled and fc.num_classes < 2:
        raise ConfigError(f"config.frechet.num_classes={fc.num_classes}: the feature classifier "
                          f"needs >= 2 classes; use a labelled dataset or set "
                          f"config.frechet.enabled=False")


def frechet_config(num_classes: int, smoke: bool = False) -> ml_collections.ConfigDict:
    """A whole `config.frechet` block, enabled, for a config file (smoke: seconds on a CPU)."""
    values = {k: f.default for k, f in FRECHET_FIELDS.items()}
    values.update(enabled=True, num_classes=num_classes, **(SMOKE_FRECHET if smoke else {}))
    return ml_collections.ConfigDict(values)
