"""The Fréchet distance between two Gaussians fitted to feature vectors (FID's formula).

FID (Heusel et al., 2017) compares the mean and covariance of network features of real
and generated images:
    d^2 = |mu_r - mu_g|^2 + tr(S_r) + tr(S_g) - 2 tr((S_r^1/2 S_g S_r^1/2)^1/2).
"""

from __future__ import annotations

from typing import Any

import numpy as np


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
