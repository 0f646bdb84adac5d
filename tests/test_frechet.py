"""Fréchet distance against scipy's matrix square root; the `frechet` evaluator and its
classifier (trained by the Trainer, saved, loaded back)."""

from __future__ import annotations

import chex
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest
import scipy.linalg

from dl_arch.evaluators import frechet_classifier
from dl_arch.evaluators.base import EvalContext, write_report
from dl_arch.evaluators.examples import load_examples
from dl_arch.evaluators.frechet import Frechet, frechet_section
from dl_arch.evaluators.frechet_distance import feature_statistics, frechet_distance
from dl_arch.registry import MODELS


def scipy_frechet(mu1, s1, mu2, s2) -> float:
    """The textbook formula with scipy's general matrix square root of S1 S2."""
    covmean = scipy.linalg.sqrtm(s1 @ s2)
    return float(np.sum((mu1 - mu2) ** 2) + np.trace(s1) + np.trace(s2)
                 - 2.0 * np.trace(covmean).real)


def random_stats(rng: np.random.Generator, n: int, d: int, shift: float = 0.0):
    mix = rng.normal(size=(d, d))
    x = rng.normal(size=(n, d)) @ mix + shift
    return feature_statistics(x)


@pytest.mark.parametrize("n,d", [(200, 5), (500, 16), (40, 8)])
def test_matches_scipy_sqrtm(n, d):
    rng = np.random.default_rng(n + d)
    a = random_stats(rng, n, d)
    b = random_stats(rng, n, d, shift=0.3)
    ours = frechet_distance(*a, *b)
    ref = scipy_frechet(*a, *b)
    np.testing.assert_allclose(ours, ref, rtol=1e-6, atol=1e-8)


def test_singular_covariances_match_scipy():
    # fewer samples than dimensions: rank-deficient covariances, as with small eval sets
    rng = np.random.default_rng(1)
    a = feature_statistics(rng.normal(size=(6, 10)))
    b = feature_statistics(rng.normal(size=(6, 10)) + 1.0)
    np.testing.assert_allclose(frechet_distance(*a, *b), scipy_frechet(*a, *b),
                               rtol=1e-5, atol=1e-6)


def test_closed_forms():
    rng = np.random.default_rng(2)
    mu, sigma = random_stats(rng, 300, 6)
    assert abs(frechet_distance(mu, sigma, mu, sigma)) < 1e-8
    shift = rng.normal(size=6)
    np.testing.assert_allclose(frechet_distance(mu, sigma, mu + shift, sigma),
                               np.sum(shift**2), rtol=1e-8)
    # 1-D Gaussians: (m1 - m2)^2 + (s1 - s2)^2
    np.testing.assert_allclose(
        frechet_distance(np.array([1.0]), np.array([[4.0]]),
                         np.array([-0.5]), np.array([[0.25]])),
        1.5**2 + (2.0 - 0.5) ** 2, rtol=1e-12)


def test_feature_statistics_match_numpy_and_reject_bad_input():
    x = np.random.default_rng(3).normal(size=(50, 4))
    mu, sigma = feature_statistics(x)
    np.testing.assert_allclose(mu, x.mean(0))
    np.testing.assert_allclose(sigma, (x - mu).T @ (x - mu) / 49)
    with pytest.raises(ValueError, match="feature matrix"):
        feature_statistics(np.zeros((1, 4)))
    with pytest.raises(ValueError, match="mismatched"):
        frechet_distance(mu, sigma, mu[:2], sigma[:2, :2])


def test_classifier_model_gives_logits_and_its_features():
    """The registered model: logits by default (a classification task trains it as it is),
    and (logits, features) with `with_features`, the logits a Dense map of the features."""
    model = MODELS.get("frechet_classifier")(num_classes=3)
    x = jax.random.uniform(jax.random.key(0), (2, 16, 16, 1))
    variables = jax.jit(model.init)(jax.random.key(1), x)
    assert set(variables["params"]) == {"conv_0", "conv_1", "features", "classifier"}
    logits, feats = model.apply(variables, x, with_features=True)
    chex.assert_shape([logits, feats], [(2, 3), (2, 128)])
    np.testing.assert_array_equal(model.apply(variables, x), logits)
    head = jax.tree.map(np.asarray, variables["params"]["classifier"])
    np.testing.assert_allclose(logits, np.asarray(feats) @ head["kernel"] + head["bias"],
                               rtol=1e-5, atol=1e-6)
    assert float(jnp.min(feats)) >= 0.0  # ReLU features


class NoiseTask:
    """A stand-in generator: the same uniform noise images whatever the seed (recorded)."""

    generates_images = True

    def __init__(self, shape=(16, 16, 1)):
        self.images = np.random.default_rng(1).uniform(size=(200, *shape)).astype(np.float32)
        self.seeds: list[int] = []

    def generate_images(self, variables, count, seed):
        self.seeds.append(seed)
        return self.images[:count]


def shapes_config() -> ml_collections.ConfigDict:
    c = ml_collections.ConfigDict()
    c.seed = 0
    c.task = ml_collections.ConfigDict({"name": "gan"})
    c.dataset = ml_collections.ConfigDict({
        "name": "shapes", "image_size": 16, "channels": 1, "num_classes": 3, "noise": 0.0,
        "train_split": "train", "eval_split": "test", "num_eval_examples": 96})
    c.frechet = frechet_section(num_classes=3, smoke=True)
    c.frechet.classifier_steps = 100
    c.frechet.classifier_train_examples = 512
    c.frechet.num_samples = 96
    c.frechet.noise_seed = 5
    return c


def context(workdir: str) -> EvalContext:
    return EvalContext(variables={}, metrics={}, batch={}, step=3, final=True, workdir=workdir,
                       eval_batches=lambda: [])


def test_classifier_config_is_a_plain_classification_run_on_the_first_examples():
    """The Trainer's config: the registered model on the run's dataset, only its first
    classifier_train_examples training images, unaugmented, seeded by frechet.seed."""
    config = shapes_config()
    config.seed, config.frechet.seed = 3, 11
    c = frechet_classifier.classifier_config(config)
    assert (c.task.name, c.model.name, c.model.num_classes) == ("classification",
                                                                "frechet_classifier", 3)
    assert c.dataset.num_train_examples == 512 and c.dataset.augment == ()
    assert (c.seed, c.num_train_steps, c.batch_size) == (11, 100, 64)
    assert c.optimizer.learning_rate == config.frechet.learning_rate


def test_evaluator_trains_saves_and_orders_distances(tmp_path):
    config = shapes_config()
    task = NoiseTask()
    evaluator = Frechet(config, task)
    report = evaluator(context(str(tmp_path)))
    assert task.seeds == [5]  # the generated images' noise follows frechet.noise_seed
    s = report.scalars
    assert s["frechet_classifier_accuracy"] > 0.6  # 3 classes: chance is 1/3
    assert 0 < s["frechet_real_floor"] < s["frechet_distance"]
    images, labels = load_examples(config.dataset, "test", 0, 96)
    logits, feats = evaluator.features(images)
    assert feats.shape == (96, 128)
    np.testing.assert_allclose(s["frechet_classifier_accuracy"],
                               np.mean(logits.argmax(-1) == labels))
    np.testing.assert_allclose(
        s["frechet_distance"],
        frechet_distance(*feature_statistics(feats), *feature_statistics(
            evaluator.features(task.images[:96])[1])), rtol=1e-9)
    # the loop writes the newly trained classifier into the workdir ...
    write_report(report, 3, True, str(tmp_path), None)
    saved = tmp_path / "frechet_classifier.npz"
    assert saved.exists()
    # ... where a later evaluation (a resumed run) loads it back instead of training again
    again = Frechet(config, task)
    second = again(context(str(tmp_path)))
    assert not second.arrays
    np.testing.assert_allclose(again.features(images)[1], feats, rtol=1e-6)
    assert second.scalars == pytest.approx(s, rel=1e-6)
    # classifier_path measures with another run's classifier
    config.frechet.classifier_path = str(saved)
    shared = Frechet(config, task)(context(""))
    assert not shared.arrays and shared.scalars == pytest.approx(s, rel=1e-6)


def test_bad_classifier_path_and_task_fail_in_one_line(tmp_path):
    config = shapes_config()
    config.frechet.classifier_path = str(tmp_path / "missing.npz")
    with pytest.raises(ValueError, match="config.frechet.classifier_path"):
        Frechet(config, NoiseTask())
    wrong = tmp_path / "wrong.npz"
    np.savez(wrong, **{"features/kernel": np.zeros((3, 3))})
    config.frechet.classifier_path = str(wrong)
    with pytest.raises(ValueError, match="config.frechet.classifier_path"):
        Frechet(config, NoiseTask())(context(""))
    config.frechet.classifier_path = ""
    config.frechet.num_classes = 1
    with pytest.raises(ValueError, match="config.frechet.num_classes"):
        Frechet(config, NoiseTask())
    config.frechet.num_classes = 3
    with pytest.raises(ValueError, match="needs a task with generate_images"):
        Frechet(config, object())
    blind = NoiseTask()
    blind.generates_images = False
    with pytest.raises(ValueError, match="draws no images"):
        Frechet(config, blind)


def test_measuring_stick_follows_frechet_seed_not_the_training_seed():
    """Runs of different training seeds are scored by the same classifier on the same real
    images; only `frechet.seed` changes the stick. Without a workdir nothing is loaded and
    the report carries the classifier it trained."""
    def report(training_seed: int, frechet_seed: int) -> dict[str, float]:
        config = shapes_config()
        config.frechet.classifier_steps = 20
        config.seed, config.frechet.seed = training_seed, frechet_seed
        out = Frechet(config, NoiseTask())(context(""))
        assert set(out.arrays) == {"frechet_classifier"}
        return out.scalars

    same = report(0, 0)
    assert report(7, 0) == same
    other = report(0, 7)
    assert other["frechet_real_floor"] != same["frechet_real_floor"]
    assert other["frechet_distance"] != same["frechet_distance"]


def test_the_feature_classifier_overfits_one_batch():
    """The frechet_classifier model, in the Trainer's classification run, fits one batch."""
    from dl_arch.testing import overfit_one_batch

    c = frechet_classifier.classifier_config(shapes_config()).to_dict()
    c["batch_size"] = 32
    history, _ = overfit_one_batch(ml_collections.ConfigDict(c), steps=120)
    assert history[-1]["loss"] < 0.1 * history[0]["loss"], (history[0], history[-1])
    assert history[-1]["accuracy"] == 1.0
