"""The latent space: codes of real drawings, their plane, and their clusters (k-means with the elbow,
DBSCAN by a random search); the pictures are in :mod:`.latent_figures`.

The post plotted z_mean of its training sheep after epochs 5, 10, 15 and 20, then clustered the
plane with k-means (elbow method) and DBSCAN (random search over eps and min_samples) and looked
at the drawings in each cluster: sheep with legs against sheep without.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
from tqdm import tqdm

from ..core.infer import drawings_tensor, encode_means
from ..core.model import VAE
from ..errors import SheepError
from ..runs import checkpoint as ckpt
from ..runs.run_sources import run_data

ClusterMethod = Literal["kmeans", "dbscan"]
SILHOUETTE_SAMPLE = 2000  # codes a DBSCAN trial's silhouette is measured on


def encode(model: VAE, images_u8: np.ndarray) -> np.ndarray:
    """z_mean of each drawing, (N, D) float32."""
    return encode_means(model, drawings_tensor(images_u8))


def validation_codes(model: VAE, run_dir: str | Path) -> np.ndarray | None:
    """Codes (z_mean) of a run's validation drawings: encoded from the data it was trained on, else
    those saved after its last epoch (a run trained on in-memory drawings records no data file)."""
    try:
        return encode(model, run_data(run_dir).split("valid"))
    except SheepError:
        return ckpt.last_latents(run_dir)


def finite_rows(codes: np.ndarray) -> np.ndarray:
    """Boolean mask of codes with no NaN/inf (the post had to drop infinite codes)."""
    return np.isfinite(codes).all(axis=1)


def to_plane(codes: np.ndarray) -> tuple[np.ndarray, str]:
    """2-D view of finite codes: themselves for D <= 2, else their first two principal components
    (with fewer than two distinct codes there are no principal components: their first two dimensions)."""
    if codes.shape[1] <= 2 or len(codes) < 2 or not np.ptp(codes, axis=0).any():
        return codes[:, :2], "z"
    from sklearn.decomposition import PCA

    return PCA(n_components=2, random_state=0).fit_transform(codes), "PC"


# k-means fits its centroids on at most this many codes (a seeded sample) and assigns every code
# to its nearest: a mean over 100,000 codes places ten centroids as well as one over millions, where
# ten restarts for each k of the elbow over all of them take minutes and gigabytes (docs/performance.md).
KMEANS_MAX = 100_000


def kmeans_sample(n: int, seed: int = 0) -> np.ndarray:
    """Which of ``n`` codes k-means fits on: all up to KMEANS_MAX, else a seeded sample."""
    return seeded_sample(n, KMEANS_MAX, seed)


def elbow(codes: np.ndarray, ks: list[int], seed: int = 0, progress: bool = False) -> list[float]:
    """Mean within-cluster sum of squares (k-means inertia / N) for each k, on the codes of
    :func:`kmeans_sample`."""
    codes = codes[kmeans_sample(len(codes), seed)]
    fits = tqdm(ks, desc="k-means elbow", unit="k", disable=not progress, leave=False)
    return [float(_kmeans(k, seed).fit(codes).inertia_ / len(codes)) for k in fits]


def kmeans(codes: np.ndarray, k: int, seed: int = 0) -> np.ndarray:
    """Each code's cluster: the nearest of the centroids k-means (ten restarts) fits on the codes
    of :func:`kmeans_sample`."""
    sample = kmeans_sample(len(codes), seed)
    fit = _kmeans(k, seed).fit(codes[sample])
    return fit.labels_ if len(sample) == len(codes) else fit.predict(codes)  # predict: in chunks


def _kmeans(k: int, seed: int):
    from sklearn.cluster import KMeans

    return KMeans(n_clusters=k, n_init=10, random_state=seed)


@dataclass(frozen=True)
class DBSCANTrial:
    eps: float
    min_samples: int
    clusters: int
    noise: float  # fraction of points labelled noise
    silhouette: float  # on the non-noise points; NaN with fewer than 2 clusters


# The default eps range runs from where this share of the codes are core points at the smallest
# min_samples to where all but this share are at the largest: between "all noise" and "one cluster".
EPS_QUANTILE = 0.05


def eps_range_of(codes: np.ndarray, min_samples_range: tuple[int, int], seed: int = 0) -> tuple[float, float]:
    """An eps search range in the codes' own scale (a latent of 16 dimensions spreads its codes
    several times farther apart than one of 2): from the EPS_QUANTILE quantile of each code's
    distance to its min_samples_range[0]-th nearest code (itself the first, as DBSCAN counts) to
    the 1 - EPS_QUANTILE quantile of its distance to its min_samples_range[1]-th; on the codes
    :func:`dbscan_search` searches on. The k-distances of Ester et al. (1996), read as a range."""
    import faiss

    points = np.ascontiguousarray(codes[dbscan_sample(len(codes), seed)], dtype=np.float32)
    lo, hi = _min_samples_bounds(min_samples_range, len(points))
    index = faiss.IndexFlatL2(points.shape[1])
    index.add(points)
    distances = np.sqrt(np.maximum(index.search(points, hi)[0], 0.0))  # (N, hi), nearest first
    low = float(np.quantile(distances[:, lo - 1], EPS_QUANTILE))
    high = float(np.quantile(distances[:, hi - 1], 1 - EPS_QUANTILE))
    tiny = np.finfo(np.float32).eps * max(1.0, float(np.abs(points).max()))  # copies: distance 0
    return max(low, tiny), max(high, low, tiny)


def _min_samples_bounds(min_samples_range: tuple[int, int], n: int) -> tuple[int, int]:
    """The range kept within the n drawings: a core point needs min_samples drawings around it, and
    more than there are finds nothing."""
    hi = max(1, min(min_samples_range[1], n))
    return min(min_samples_range[0], hi), hi


def dbscan_search(
    codes: np.ndarray,
    eps_range: tuple[float, float],
    min_samples_range: tuple[int, int],
    trials: int = 40,
    seed: int = 0,
    progress: bool = True,
) -> list[DBSCANTrial]:
    """Random search over eps (log-uniform) and min_samples (uniform integers), on the codes of
    :func:`dbscan_sample` (all of them up to DBSCAN_MAX)."""
    from sklearn.cluster import DBSCAN

    codes = codes[dbscan_sample(len(codes), seed)]
    rng = np.random.default_rng(seed)
    lo, hi = _min_samples_bounds(min_samples_range, len(codes))
    results = []
    for _ in tqdm(range(trials), desc="DBSCAN search", disable=not progress, leave=False):
        eps = float(np.exp(rng.uniform(np.log(eps_range[0]), np.log(eps_range[1]))))
        min_samples = int(rng.integers(lo, hi + 1))
        labels = DBSCAN(eps=eps, min_samples=min_samples).fit_predict(codes)
        results.append(_trial(codes, labels, eps, min_samples, seed))
    return results


def _trial(codes: np.ndarray, labels: np.ndarray, eps: float, min_samples: int, seed: int) -> DBSCANTrial:
    from sklearn.metrics import silhouette_score
    from sklearn.utils import check_random_state

    clustered = labels >= 0
    n_clusters = len(set(labels[clustered].tolist()))
    # Sampled: the exact score is O(N^2) in memory and time on 7,400 codes (the sample that
    # silhouette_score's own sample_size would take).
    sample = check_random_state(seed).permutation(int(clustered.sum()))[:SILHOUETTE_SAMPLE]
    points, sampled = codes[clustered][sample], labels[clustered][sample]
    sil = float("nan")  # undefined unless 2 <= clusters < points: one cluster, or every point its own
    if 2 <= len(np.unique(sampled)) < len(sampled):
        sil = float(silhouette_score(points, sampled))
    return DBSCANTrial(eps, min_samples, n_clusters, float(1 - clustered.mean()), sil)


# DBSCAN keeps every code's neighbours at once: where codes crowd within eps that is N^2 indices,
# so past this many it clusters a sample (docs/guide.md, `sheep clusters`).
DBSCAN_MAX = 10_000
SEARCH_CHUNK = 65_536  # codes labelled by their nearest core code at a time


def dbscan_sample(n: int, seed: int = 0) -> np.ndarray:
    """Which of ``n`` codes DBSCAN clusters itself: all up to DBSCAN_MAX, else a seeded sample."""
    return seeded_sample(n, DBSCAN_MAX, seed)


def seeded_sample(n: int, size: int, seed: int = 0) -> np.ndarray:
    """Sorted indices of a seeded sample of ``size`` of ``n`` codes; all of them when n <= size."""
    if n <= size:
        return np.arange(n)
    return np.sort(np.random.default_rng(seed).choice(n, size, replace=False))


def dbscan_labels(codes: np.ndarray, eps: float, min_samples: int, seed: int = 0) -> np.ndarray:
    """DBSCAN's labels of every code. Past DBSCAN_MAX codes, DBSCAN clusters the sample of
    :func:`dbscan_sample`, and each other code takes the cluster of its nearest core code if that
    is within eps, else is noise: how DBSCAN labels a point it did not see (a border point)."""
    from sklearn.cluster import DBSCAN

    sample = dbscan_sample(len(codes), seed)
    fit = DBSCAN(eps=eps, min_samples=min_samples).fit(codes[sample])
    if len(sample) == len(codes):
        return fit.labels_
    labels = np.full(len(codes), -1, dtype=fit.labels_.dtype)
    labels[sample] = fit.labels_
    core = sample[fit.core_sample_indices_]
    unseen = np.ones(len(codes), bool)
    unseen[sample] = False
    rest = np.flatnonzero(unseen)  # a mask: setdiff1d sorts copies of millions of indices
    if len(core) and len(rest):
        import faiss

        index = faiss.IndexFlatL2(codes.shape[1])
        index.add(np.ascontiguousarray(codes[core], dtype=np.float32))
        for start in range(0, len(rest), SEARCH_CHUNK):  # a chunk at a time: millions are not copied at once
            part = rest[start : start + SEARCH_CHUNK]
            squared, nearest = index.search(np.ascontiguousarray(codes[part], dtype=np.float32), 1)
            near = squared[:, 0] <= eps * eps
            labels[part[near]] = labels[core[nearest[near, 0]]]
    return labels


MAX_NOISE = 0.25  # a clustering that calls more than a quarter of the sheep noise explains too little


def best_trial(trials: list[DBSCANTrial], clusters: int | None = None) -> DBSCANTrial:
    """The trial :func:`choose_trial` picks."""
    return choose_trial(trials, clusters)[0]


def choose_trial(trials: list[DBSCANTrial], clusters: int | None = None) -> tuple[DBSCANTrial, str]:
    """The rule, and which branch of it applied: among trials with 2+ clusters (or exactly
    ``clusters``) and at most 25% noise, the highest silhouette; failing that, the trial with the
    least noise among those with 2+ clusters (or the requested count); failing that, the one with
    the least noise."""
    count = f"exactly {clusters} clusters" if clusters is not None else "2+ clusters"

    def wanted(t: DBSCANTrial) -> bool:
        return t.clusters == clusters if clusters is not None else t.clusters >= 2

    good = [t for t in trials if wanted(t) and t.noise <= MAX_NOISE and np.isfinite(t.silhouette)]
    if good:
        return max(good, key=lambda t: t.silhouette), f"highest silhouette among {count} with <= {MAX_NOISE:.0%} noise"
    fallback = [t for t in trials if wanted(t)]
    if fallback:
        return min(fallback, key=lambda t: t.noise), f"none with {count} and <= {MAX_NOISE:.0%} noise: least noise"
    return min(trials, key=lambda t: t.noise), f"no trial found {count}: least noise; widen the ranges or add trials"


def elbow_k(ks: list[int], wcss: list[float]) -> int:
    """The elbow: the k farthest below the straight line from the first to the last point."""
    x, y = np.asarray(ks, float), np.asarray(wcss, float)
    if len(x) < 3:
        return int(x[0])
    xn, yn = (x - x[0]) / (x[-1] - x[0]), (y - y[-1]) / max(y[0] - y[-1], 1e-12)
    return int(x[np.argmax((1 - xn) - yn)])
