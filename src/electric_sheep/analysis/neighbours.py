"""How far a drawing lies from the others: k-nearest-neighbour distances and the local outlier
factor (LOF; Breunig et al. 2000), over a faiss index.

Every drawing is compared with a *reference*: the scored drawings themselves, or a seeded sample of
at most ``REFERENCE`` of them when there are more, so that time grows linearly with the number of
drawings and memory stays bounded (a million drawings are streamed against 20,000).
Descriptors are first projected onto their ``DIMS`` principal components, fitted on the reference,
which keeps the search cheap. A drawing that is itself in the reference is not its own neighbour,
and copies of a drawing count once. Samples are chosen by a hash of the drawings' content, so
that the scores do not depend on the order of the file.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import torch

from ..core.hashing import row_hashes

REFERENCE = 20_000  # drawings in the reference sample: a density is estimated well from far fewer
DIMS = 64  # principal components kept; more changed no AUROC by over 0.01 in docs/anomalies.md
PCA_SAMPLE = 2048  # drawings the principal components are fitted on (a sample chosen by content)
PCA_OVERSAMPLE = 10  # extra directions the randomized SVD follows, as scikit-learn's PCA
PCA_ITERATIONS = 8  # power iterations: as close to the exact components as scikit-learn's randomized PCA
BATCH = 4096  # drawings described and searched at a time
DISTANCE_BLOCK = 32 << 20  # bytes of the query x reference distances faiss computes at a time
METHODS = ("lof", "knn")
TINY = 1e-10  # keeps a density finite where distinct points are closer than float32 tells apart


def _faiss():
    """faiss, imported when a neighbourhood score is asked for (it sets up its thread pool)."""
    import faiss

    return faiss


def reference_ids(images_u8: np.ndarray, candidates: np.ndarray, size: int = REFERENCE, seed: int = 0) -> np.ndarray:
    """Sorted indices of the reference drawings among ``candidates`` (sorted indices into
    ``images_u8``): all of them, or the ``size`` distinct drawings whose pixels have the lowest
    seeded hash (the first of any copies). A sample chosen by content is the same whatever order
    the file is in, and a drawing added or removed changes at most one of its members (one drawn
    by position would change them all)."""
    if len(candidates) <= size:
        return candidates
    lowest, chosen = np.zeros(0, np.uint64), np.zeros(0, np.int64)
    for s in batches(len(candidates)):  # the file read a batch at a time, the lowest kept: bounded memory
        hashed = np.concatenate([lowest, row_hashes(np.asarray(images_u8[candidates[s]]), seed)])
        keep = _one_of_each(hashed)[:size]  # those kept so far come first: the first of any copies
        lowest, chosen = hashed[keep], np.concatenate([chosen, candidates[s]])[keep]
    return np.sort(chosen)


class Neighbourhood:
    """The reference's points in a faiss index, with each point's distance to its k-th nearest
    other and its local reachability density (LOF's lrd)."""

    def __init__(self, points: np.ndarray, k: int, reference: np.ndarray | None = None) -> None:
        """``points``: (N, D) float32; ``reference``: the sorted indices of those that are indexed
        (default: all). Every point's k nearest in the reference are found in one search
        (``neighbours``): one call costs less than two for the reference and the rest. Copies of
        a point are indexed once: a drawing repeated more than k times would otherwise have an
        infinite density (Breunig et al. count distinct neighbours for the same reason). ``k``
        shrinks to R - 1 for tiny references of R distinct points; with fewer than two, every
        score is 0."""
        reference = np.arange(len(points)) if reference is None else reference
        indexed = _rows(points[reference])
        hashed = row_hashes(indexed, 0)
        distinct = np.sort(_one_of_each(hashed))
        indexed, hashed = indexed[distinct], hashed[distinct]
        self.k = min(k, len(indexed) - 1)
        self.index = _faiss().IndexFlatL2(indexed.shape[1])
        self.index.add(indexed)
        self._order = np.argsort(hashed)
        self._sorted_hashes = hashed[self._order]
        self.neighbours = self._search(points)
        own_dist, own_idx = (part[reference[distinct]] for part in self.neighbours)
        self.k_distance = own_dist[:, -1] if self.k > 0 else np.zeros(len(indexed))
        self.density = self._density(own_dist, own_idx) if self.k > 0 else np.ones(len(indexed))

    def places(self, points: np.ndarray) -> np.ndarray:
        """(B,) each point's place in the index where it is one of its points (or a copy), else -1."""
        hashed = row_hashes(_rows(points), 0)
        at = np.minimum(np.searchsorted(self._sorted_hashes, hashed), len(self._sorted_hashes) - 1)
        return np.where(self._sorted_hashes[at] == hashed, self._order[at], -1)

    def _search(self, points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Distances (B, k) and reference indices (B, k) of each point's k nearest, skipping the
        point itself (or its copy) where it is in the reference."""
        shape = (len(points), max(self.k, 0))
        if self.k < 1:
            return np.zeros(shape), np.zeros(shape, dtype=np.int64)
        # k + 1 found: a point of the reference finds itself among them.
        sq, idx = _faiss_search(self.index, _rows(points), self.k + 1)
        is_self = idx == self.places(points)[:, None]
        drop = np.where(is_self.any(axis=1), is_self.argmax(axis=1), self.k)  # else the farthest
        keep = np.ones_like(idx, dtype=bool)
        keep[np.arange(len(idx)), drop] = False
        return np.sqrt(np.maximum(sq[keep], 0)).reshape(shape), idx[keep].reshape(shape)

    def _density(self, dist: np.ndarray, idx: np.ndarray) -> np.ndarray:
        """Local reachability density: 1 / mean reachability distance to the k nearest."""
        reach = np.maximum(dist, self.k_distance[idx])
        return 1.0 / (reach.mean(axis=1) + TINY)

    def score(self, method: str, neighbours: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
        """(B,) scores from each point's k nearest (distances, indices), by ``method``:
        "lof": the neighbours' mean density over the point's own, ~1 inside a cluster and larger
        the sparser a point's surroundings are compared with its neighbours'; "knn": the mean
        distance to the k nearest."""
        dist, idx = neighbours
        if self.k < 1:  # one distinct drawing: no neighbourhood to compare with
            return np.zeros(len(dist))
        if method == "knn":
            return dist.mean(axis=1)
        return self.density[idx].mean(axis=1) / self._density(dist, idx)

    def score_points(self, method: str, points: np.ndarray) -> np.ndarray:
        return self.score(method, self._search(points))


def _faiss_search(index: Any, points: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """``index.search``, its blocks of distances spanning the whole reference (and as many queries
    as DISTANCE_BLOCK holds). faiss updates each query's nearest so far once per block: in its
    default blocks of 1,024 reference points, a search of 20,000 revisits them 20 times, from memory."""
    settings = _faiss().cvar  # faiss's own, for the whole process: put back as they were
    before = settings.distance_compute_blas_database_bs, settings.distance_compute_blas_query_bs
    settings.distance_compute_blas_database_bs = index.ntotal
    settings.distance_compute_blas_query_bs = max(1, DISTANCE_BLOCK // (np.float32().nbytes * index.ntotal))
    try:
        return index.search(points, k)
    finally:
        settings.distance_compute_blas_database_bs, settings.distance_compute_blas_query_bs = before


def _rows(points: np.ndarray) -> np.ndarray:
    """``points`` as faiss takes them: C-contiguous float32."""
    return np.ascontiguousarray(points, dtype=np.float32)


def _content_sample(rows: np.ndarray, size: int, seed: int) -> np.ndarray:
    """Positions of a seeded sample of at most ``size`` of ``rows``, chosen and ordered by the hash
    of each row's bytes: the same rows in the same order whatever order they come in."""
    if len(rows) <= size:
        return np.arange(len(rows))
    return np.argsort(row_hashes(rows, seed), kind="stable")[:size]


def _first_copies(rows: np.ndarray) -> np.ndarray:
    """Sorted positions of the first copy of each distinct row of ``rows``, copies told by their hash."""
    return np.sort(_one_of_each(row_hashes(rows, 0)))


def _one_of_each(hashed: np.ndarray) -> np.ndarray:
    """Positions of the first of each distinct value of ``hashed``, in increasing order of the values."""
    order = np.argsort(hashed, kind="stable")  # equal values side by side, the first of them first
    return order[np.r_[True, hashed[order[1:]] != hashed[order[:-1]]][: len(order)]]


def batches(n: int, size: int = BATCH) -> Iterator[slice]:
    yield from (slice(i, min(i + size, n)) for i in range(0, n, size))


def neighbourhood_scores(
    images_u8: np.ndarray, describe: Callable[[np.ndarray], np.ndarray], k: int, method: str = "lof", **options: Any
) -> np.ndarray:
    """Score each drawing, (N,) float64, by its neighbourhood among the reference drawings in the
    space ``describe`` maps them to (uint8 (B, 28, 28) -> (B, D) float32), streamed in batches.
    ``options``: those of :func:`neighbourhood_scorer`."""
    return neighbourhood_scorer(images_u8, describe, k, method, **options)(0, len(images_u8))


def neighbourhood_scorer(
    images_u8: np.ndarray,
    describe: Callable[[np.ndarray], np.ndarray],
    k: int,
    method: str = "lof",
    dims: int | None = DIMS,
    seed: int = 0,
    eligible: np.ndarray | None = None,
    reference_size: int | None = None,
) -> Callable[[int, int], np.ndarray]:
    """:func:`neighbourhood_scores` of drawings start to stop, as ``score(start, stop)``: the
    reference is described and indexed once, here; each call then reads only its own drawings.

    ``method``: "lof" (local outlier factor) or "knn" (mean distance to the k nearest).
    ``dims``: principal components kept (None: the descriptors as they are).
    ``eligible``: (N,) bool, the drawings the reference is drawn from (default: all of them);
    ``reference_size``: at most this many of them, a seeded sample chosen by content (None:
    REFERENCE; :func:`reference_ids`). A set no
    larger than that is described and searched whole, here; a larger one streams.
    """
    n = len(images_u8)
    if method not in METHODS:
        raise ValueError(f"unknown neighbourhood method {method!r}; choose {', '.join(METHODS)}")
    reference_size = REFERENCE if reference_size is None else reference_size
    candidates = np.arange(n) if eligible is None else np.flatnonzero(eligible)
    ref = reference_ids(images_u8, candidates, reference_size, seed)
    if len(ref) < 2:  # no neighbourhood to compare with
        return lambda start, stop: np.zeros(stop - start)
    if n <= reference_size:  # a set no larger than a reference: every drawing in one search
        return _whole_set_scorer(images_u8, describe, k, method, dims, seed, ref)
    return _streaming_scorer(images_u8, describe, k, method, dims, seed, ref)


def _whole_set_scorer(
    images_u8: np.ndarray, describe: Callable, k: int, method: str, dims: int | None, seed: int, ref: np.ndarray
) -> Callable[[int, int], np.ndarray]:
    """Every drawing described, projected and searched at once; ``score`` slices the result."""
    described = describe(np.asarray(images_u8))
    hood = Neighbourhood(_projection(described[ref], dims, seed)(described), k, ref)
    every = hood.score(method, hood.neighbours)
    return lambda start, stop: every[start:stop]


def _streaming_scorer(
    images_u8: np.ndarray, describe: Callable, k: int, method: str, dims: int | None, seed: int, ref: np.ndarray
) -> Callable[[int, int], np.ndarray]:
    """The reference indexed now; ``score`` describes and searches the others of its slice, in batches."""
    described = describe(np.asarray(images_u8[ref]))
    project = _projection(described, dims, seed)
    hood = Neighbourhood(project(described), k)
    own = hood.score(method, hood.neighbours)  # the reference's own neighbours are known already

    def score(start: int, stop: int) -> np.ndarray:
        ids = np.arange(start, stop)
        at = np.minimum(np.searchsorted(ref, ids), len(ref) - 1)
        in_ref = ref[at] == ids
        out = np.empty(len(ids))
        out[in_ref] = own[at[in_ref]]
        rest = np.flatnonzero(~in_ref)
        for s in batches(len(rest)):
            points = project(describe(np.asarray(images_u8[ids[rest[s]]])))
            out[rest[s]] = hood.score_points(method, points)
        return out

    return score


def _projection(reference: np.ndarray, dims: int | None, seed: int) -> Callable[[np.ndarray], np.ndarray]:
    """Centre and project onto the first ``dims`` principal components of (a sample of) the
    reference, plus one coordinate for the distance from that subspace: a drawing unlike the
    reference differs there most, and a projection alone would hide it. Copies count once here
    too: axes fitted to a repeated drawing would set its copies apart from the rest."""
    reference = _rows(reference)
    distinct = _first_copies(reference)
    reference = reference[distinct] if len(distinct) < len(reference) else reference  # indexing copies every row
    if dims is None or dims >= min(reference.shape):
        return lambda x: x
    sample = torch.from_numpy(reference[_content_sample(reference, PCA_SAMPLE, seed)])
    centre = sample.mean(dim=0)
    axes = _principal_axes(sample - centre, dims, seed)

    def project_batch(x: np.ndarray) -> torch.Tensor:
        centred = torch.from_numpy(np.asarray(x, np.float32)) - centre
        z = centred @ axes
        # the axes are orthonormal: what the projection leaves out is |x|^2 - |z|^2
        off = (centred.pow(2).sum(dim=1) - z.pow(2).sum(dim=1)).clamp_min(0).sqrt()
        return torch.cat([z, off[:, None]], dim=1)

    def project(x: np.ndarray) -> np.ndarray:  # a batch at a time: the reference's centred copies are large
        out = np.empty((len(x), dims + 1), np.float32)
        for s in batches(len(x)):
            out[s] = project_batch(x[s])
        return out

    return project


def _principal_axes(centred: torch.Tensor, dims: int, seed: int) -> torch.Tensor:
    """(D, dims) leading right singular vectors of ``centred`` (N, D) by a seeded randomized SVD
    (Halko et al. 2011, algorithm 5.1): ``torch.svd_lowrank``'s steps and random start, with a
    cheaper orthonormalisation."""
    wide = centred.shape[0] < centred.shape[1]
    tall = centred.T if wide else centred  # as svd_lowrank: the range of the tall side is found
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        start = torch.randn(tall.shape[1], dims + PCA_OVERSAMPLE)
    basis = _orthonormal(tall @ start)
    for _ in range(PCA_ITERATIONS):
        basis = _orthonormal(tall @ _orthonormal(tall.T @ basis))
    left, _, right = torch.linalg.svd(basis.T @ tall, full_matrices=False)
    return (basis @ left if wide else right.T)[:, :dims]


def _orthonormal(y: torch.Tensor) -> torch.Tensor:
    """An orthonormal basis of the columns of ``y`` (N, q) by Cholesky QR: the same span as a
    Householder QR's, for a q x q factorisation instead of an N x q one (the power iterations'
    cost). The Gram matrix is factorised in float64, where its condition number is no danger;
    columns that are not independent (duplicate drawings) fall back to Householder."""
    y64 = y.double()
    lower, failed = torch.linalg.cholesky_ex(y64.T @ y64)
    if failed:
        return torch.linalg.qr(y).Q
    return torch.linalg.solve_triangular(lower, y64.T, upper=False).T.float()
