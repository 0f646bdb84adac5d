"""Fréchet distance against scipy's matrix square root, and the feature classifier."""

from __future__ import annotations

import os

import ml_collections
import numpy as np
import pytest
import scipy.linalg

from dl_arch.tasks import frechet


def scipy_frechet(mu1, s1, mu2, s2) -> float:
    """The textbook formula with scipy's general matrix square root of S1 S2."""
    covmean = scipy.linalg.sqrtm(s1 @ s2)
    return float(np.sum((mu1 - mu2) ** 2) + np.trace(s1) + np.trace(s2)
                 - 2.0 * np.trace(covmean).real)


def random_stats(rng: np.random.Generator, n: int, d: int, shift: float = 0.0):
    mix = rng.normal(size=(d, d))
    x = rng.normal(size=(n, d)) @ mix + shift
    return frechet.feature_statistics(x)


@pytest.mark.parametrize("n,d", [(200, 5), (500, 16), (40, 8)])
def test_matches_scipy_sqrtm(n, d):
    rng = np.random.default_rng(n + d)
    a = random_stats(rng, n, d)
    b = random_stats(rng, n, d, shift=0.3)
    ours = frechet.frechet_distance(*a, *b)
    ref = scipy_frechet(*a, *b)
    np.testing.assert_allclose(ours, ref, rtol=1e-6, atol=1e-8)


def test_singular_covariances_match_scipy():
    # fewer samples than dimensions: rank-deficient covariances, as with small eval sets
    rng = np.random.default_rng(1)
    a = frechet.feature_statistics(rng.normal(size=(6, 10)))
    b = frechet.feature_statistics(rng.normal(size=(6, 10)) + 1.0)
    np.testing.assert_allclose(frechet.frechet_distance(*a, *b), scipy_frechet(*a, *b),
                               rtol=1e-5, atol=1e-6)


def test_closed_forms():
    rng = np.random.default_rng(2)
    mu, sigma = random_stats(rng, 300, 6)
    assert abs(frechet.frechet_distance(mu, sigma, mu, sigma)) < 1e-8
    shift = rng.normal(size=6)
    np.testing.assert_allclose(frechet.frechet_distance(mu, sigma, mu + shift, sigma),
                               np.sum(shift**2), rtol=1e-8)
    # 1-D Gaussians: (m1 - m2)^2 + (s1 - s2)^2
    np.testing.assert_allclose(
        frechet.frechet_distance(np.array([1.0]), np.array([[4.0]]),
                                 np.array([-0.5]), np.array([[0.25]])),
        1.5**2 + (2.0 - 0.5) ** 2, rtol=1e-12)


def test_feature_statistics_match_numpy_and_reject_bad_input():
    x = np.random.default_rng(3).normal(size=(50, 4))
    mu, sigma = frechet.feature_statistics(x)
    np.testing.assert_allclose(mu, x.mean(0))
    np.testing.assert_allclose(sigma, (x - mu).T @ (x - mu) / 49)
    with pytest.raises(ValueError, match="feature matrix"):
        frechet.feature_statistics(np.zeros((1, 4)))
    with pytest.raises(ValueError, match="mismatched"):
        frechet.frechet_distance(mu, sigma, mu[:2], sigma[:2, :2])


def shapes_config(workdir_path: str = "") -> ml_collections.ConfigDict:
    c = ml_collections.ConfigDict()
    c.seed = 0
    c.dataset = ml_collections.ConfigDict({
        "name": "shapes", "image_size": 16, "channels": 1, "num_classes": 3, "noise": 0.0,
        "train_split": "train", "eval_split": "test", "num_eval_examples": 96})
    c.model = ml_collections.ConfigDict({"image_shape": (16, 16, 1)})
    c.frechet = frechet.frechet_config(num_classes=3, smoke=True)
    c.frechet.classifier_steps = 100
    c.frechet.classifier_train_examples = 512
    c.frechet.num_samples = 96
    c.frechet.classifier_path = workdir_path
    return c


def test_classifier_learns_saves_and_orders_distances(tmp_path):
    config = shapes_config()
    evaluator = frechet.FrechetEvaluator.for_config(config, str(tmp_path))
    assert os.path.exists(tmp_path / frechet.CLASSIFIER_FILE)
    images, labels = frechet.load_examples(config.dataset, "test", 0, 96)
    logits, feats = evaluator.logits_and_features(images)
    assert feats.shape == (96, 128)
    assert np.mean(logits.argmax(-1) == labels) > 0.6  # 3 classes: chance is 1/3

    noise = np.random.default_rng(0).uniform(size=images.shape).astype(np.float32)
    report = frechet.frechet_report(config, str(tmp_path), lambda n: noise[:n])
    assert report["frechet_real_floor"] < report["frechet_distance"]
    # the saved classifier is loaded back, not retrained: same features
    again = frechet.FrechetEvaluator.for_config(config, str(tmp_path))
    np.testing.assert_allclose(again.logits_and_features(images)[1], feats, rtol=1e-6)


def test_one_class_dataset_is_rejected():
    with pytest.raises(ValueError, match="config.frechet.num_classes"):
        frechet.train_feature_net(np.zeros((4, 8, 8, 1), np.float32), np.zeros(4, np.int32),
                                  1, 1, 4, 1e-3, 0)


def test_measuring_stick_follows_frechet_seed_not_the_training_seed(tmp_path):
    """Runs of different training seeds are scored by the same classifier on the same real
    images; only `frechet.seed` changes the stick."""
    noise = np.random.default_rng(1).uniform(size=(96, 16, 16, 1)).astype(np.float32)

    def report(training_seed: int, frechet_seed: int) -> dict[str, float]:
        config = shapes_config()
        config.frechet.classifier_steps = 20
        config.seed, config.frechet.seed = training_seed, frechet_seed
        return frechet.frechet_report(config, "", lambda n: noise[:n])

    same = report(0, 0)
    assert report(7, 0) == same
    other = report(0, 7)
    assert other["frechet_real_floor"] != same["frechet_real_floor"]
    assert other["frechet_distance"] != same["frechet_distance"]
