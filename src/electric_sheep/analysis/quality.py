"""How drawn the drawings look: distances between sets of drawings in a classifier's features,
and the share of pixels that are neither ink nor paper.

- :func:`frechet_distance` (FID; Heusel et al. 2017): the Fréchet distance between Gaussians
  fitted to two sets of feature vectors, ||mu_a - mu_b||^2 + Tr(C_a + C_b - 2 (C_a C_b)^(1/2)).
- :func:`kernel_distance` (KID; Bińkowski et al. 2018): the unbiased squared MMD with the cubic
  polynomial kernel k(x, y) = (x.y / d + 1)^3, which unlike FID has no bias from the set size.
- :func:`grey_share`: Google's bitmaps are anti-aliased lines, grey only at their edges; a
  blurred drawing has many more grey pixels, a thresholded one none.
"""

from __future__ import annotations

import warnings

import numpy as np

GREY = (0.15, 0.85)  # a pixel strictly between these (0 = paper, 1 = ink) is neither


def frechet_distance(a: np.ndarray, b: np.ndarray) -> float:
    """FID between feature sets (N, D) and (M, D)."""
    from scipy import linalg

    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    mu_a, mu_b = a.mean(axis=0), b.mean(axis=0)
    cov_a, cov_b = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    with warnings.catch_warnings():  # features that never fire make the product singular
        warnings.simplefilter("ignore", linalg.LinAlgWarning)
        root = linalg.sqrtm(cov_a @ cov_b)
        if not np.isfinite(root).all():  # nudge both covariances, as pytorch-fid does
            eye = np.eye(len(cov_a)) * 1e-6
            root = linalg.sqrtm((cov_a + eye) @ (cov_b + eye))
    return float(((mu_a - mu_b) ** 2).sum() + np.trace(cov_a + cov_b - 2 * root.real))


def kernel_distance(a: np.ndarray, b: np.ndarray) -> float:
    """KID between feature sets (N, D) and (M, D): unbiased MMD^2, cubic polynomial kernel."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    d = a.shape[1]
    k_aa, k_bb, k_ab = ((x @ y.T / d + 1) ** 3 for x, y in ((a, a), (b, b), (a, b)))
    n, m = len(a), len(b)
    within_a = (k_aa.sum() - np.trace(k_aa)) / (n * (n - 1))
    within_b = (k_bb.sum() - np.trace(k_bb)) / (m * (m - 1))
    return float(within_a + within_b - 2 * k_ab.mean())


def grey_share(images: np.ndarray) -> float:
    """Share of pixels strictly between paper and ink, for uint8 (0-255) or float (0-1) drawings."""
    x = np.asarray(images, np.float64)
    if np.asarray(images).dtype == np.uint8:
        x = x / 255.0
    return float(((x > GREY[0]) & (x < GREY[1])).mean())
