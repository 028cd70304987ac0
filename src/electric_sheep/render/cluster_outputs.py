"""What ``sheep clusters`` writes: the codes and labels, the scatter, the gallery, the elbow or the
DBSCAN search table, and the numbers as JSON."""

from __future__ import annotations

from pathlib import Path
from typing import Any, get_args

import numpy as np

from ..analysis.latent import (
    ClusterMethod,
    choose_trial,
    dbscan_labels,
    dbscan_sample,
    dbscan_search,
    elbow,
    elbow_k,
    encode,
    eps_range_of,
    finite_rows,
    kmeans,
    kmeans_sample,
    to_plane,
)
from ..core.model import VAE
from ..data.drawings import Drawings
from ..errors import ConfigError
from ..runs.checkpoint import load_model
from ..runs.fileio import ensure_dir, write_csv, write_json, write_npy
from ..wording import counted
from .latent_figures import cluster_gallery, elbow_figure, plot_sample
from .plots import latent_scatter_figure, save_figure


def clusters(
    model: VAE,
    images_u8: np.ndarray,
    out_dir: Path,
    method: ClusterMethod = "kmeans",
    *,
    k: int | None = None,
    k_range: tuple[int, int] = (2, 10),
    eps_range: tuple[float, float] | None = None,
    min_samples_range: tuple[int, int] = (5, 50),
    trials: int = 40,
    n_clusters: int | None = None,
    seed: int = 0,
    progress: bool = True,
    categories: tuple[np.ndarray, list[str]] | None = None,
) -> dict[str, Any]:
    """Cluster the finite codes of ``images_u8`` and write the plots, gallery and numbers.
    ``eps_range`` None: DBSCAN searches a range read off the codes' own distances (eps_range_of).
    ``categories``: each drawing's category and their names (several files), which the clusters
    are compared with."""
    if method not in get_args(ClusterMethod):
        raise ConfigError(f"unknown clustering method {method!r}; choose {' or '.join(get_args(ClusterMethod))}")
    codes = encode(model, images_u8)
    ok = finite_rows(codes)
    # a boolean index copies: a whole split of a large file would be held twice
    codes, images = (codes, images_u8) if ok.all() else (codes[ok], images_u8[ok])
    ensure_dir(out_dir)
    # Only the finite codes, so they line up with the labels (`sheep latent` keeps codes.npy whole).
    codes_path = write_npy(out_dir / f"{method}_codes.npy", codes)
    result: dict[str, Any] = {"method": method, "n": len(codes), "n_nonfinite": int((~ok).sum())}
    result["codes"] = str(codes_path)
    if method == "kmeans":
        labels, info, title = _kmeans_clustering(codes, out_dir, k or n_clusters, k_range, seed, progress)
    else:
        labels, info, title = _dbscan_clustering(
            codes, out_dir, eps_range, min_samples_range, trials, n_clusters, seed, progress
        )
    result.update(info)
    result.update(_write_clusters(out_dir / method, codes, images, labels, title, seed))
    if categories is not None:
        result.update(_against_categories(labels, categories[0] if ok.all() else categories[0][ok], categories[1]))
    write_json(out_dir / f"{method}.json", result)
    return result


def clusters_run(
    run_dir: str | Path,
    drawings: Drawings,
    split: str,
    out_dir: Path,
    method: ClusterMethod = "kmeans",
    *,
    device: Any = "cpu",
    **settings: Any,
) -> dict[str, Any]:
    """What ``sheep clusters`` does: :func:`clusters` of ``split`` of ``drawings`` ("all": every
    drawing) with ``run_dir``'s model on ``device``; ``settings``: :func:`clusters`' keywords."""
    if split != "all":
        drawings.check_split(split)
    images = drawings.images if split == "all" else drawings.split(split)
    model = load_model(run_dir, device)
    return clusters(model, images, out_dir, method, categories=drawings.categories(split), **settings)


def _against_categories(clusters: np.ndarray, categories: np.ndarray, names: list[str]) -> dict[str, Any]:
    """How the clusters divide the categories: each cluster's drawings of each category, and the
    adjusted Rand index of the two partitions (1: the same; about 0: no more alike than chance)."""
    from sklearn.metrics import adjusted_rand_score

    table = {}
    for c in sorted(set(clusters.tolist())):
        counts = np.bincount(categories[clusters == c], minlength=len(names))
        table[int(c)] = {name: int(n) for name, n in zip(names, counts, strict=True)}
    return {"categories": table, "adjusted_rand_index": float(adjusted_rand_score(categories, clusters))}


def _write_clusters(
    prefix: Path, codes: np.ndarray, images: np.ndarray, labels: np.ndarray, title: str, seed: int
) -> dict[str, Any]:
    """The labels, a scatter of the codes' plane coloured by them and a gallery per cluster, as
    files named ``prefix`` + ``_labels.npy``, ``_scatter.png``, ``_gallery.png``."""
    labels_path = write_npy(prefix.with_name(f"{prefix.name}_labels.npy"), labels)
    values, counts = np.unique(labels, return_counts=True)
    sizes = dict(zip(values.tolist(), counts.tolist(), strict=True))
    shown = plot_sample(len(codes))  # the plane is fitted on the codes drawn
    drawn = "" if len(shown) == len(codes) else f" ({len(shown):,} of {len(codes):,} drawings shown)"
    plane, axis = to_plane(codes[shown])
    scatter = latent_scatter_figure(plane, title=title + drawn, labels=labels[shown], axis=axis, sizes=sizes)
    gallery = cluster_gallery(images, labels, seed=seed, title=title)
    return {
        "cluster_sizes": sizes,
        "scatter": str(save_figure(scatter, prefix.with_name(f"{prefix.name}_scatter.png"))),
        "gallery": str(save_figure(gallery, prefix.with_name(f"{prefix.name}_gallery.png"))),
        "labels": str(labels_path),
    }


def _kmeans_clustering(
    codes: np.ndarray, out_dir: Path, k: int | None, k_range: tuple[int, int], seed: int, progress: bool = False
) -> tuple[np.ndarray, dict[str, Any], str]:
    """k-means with k given or chosen by the elbow: (labels, numbers for the JSON, plot title)."""
    fitted = codes[kmeans_sample(len(codes), seed)]
    n = len(np.unique(fitted, axis=0))  # copies of a drawing share a code: a cluster needs a point of its own
    ks = list(range(k_range[0], min(k_range[1], n - 1) + 1))  # more points than clusters, for each k
    if not ks or (k is not None and k > n):
        among = " in the sample k-means fits on" if len(fitted) < len(codes) else ""
        count = counted(len(codes), "drawing") + (f" ({n:,} distinct{among})" if n < len(fitted) else "")
        raise ConfigError(f"k-means needs more drawings than clusters: {count} for k = {k or k_range[0]}")
    wcss = elbow(codes, ks, seed, progress)
    chosen = k or elbow_k(ks, wcss)
    info = {
        "k": chosen,
        "elbow": dict(zip(ks, wcss, strict=True)),
        "elbow_plot": str(save_figure(elbow_figure(ks, wcss, chosen), out_dir / "kmeans_elbow.png")),
        "fitted_on": len(fitted),  # codes the centroids were fitted on; every code takes its nearest
    }
    return kmeans(codes, chosen, seed), info, f"k-means, k = {chosen}"


def _dbscan_clustering(
    codes: np.ndarray,
    out_dir: Path,
    eps_range: tuple[float, float] | None,
    min_samples_range: tuple[int, int],
    trials: int,
    n_clusters: int | None,
    seed: int,
    progress: bool,
) -> tuple[np.ndarray, dict[str, Any], str]:
    """DBSCAN after a random search over its parameters: (labels, numbers for the JSON, title)."""
    eps_range = eps_range or eps_range_of(codes, min_samples_range, seed)
    table = dbscan_search(codes, eps_range, min_samples_range, trials, seed, progress)
    best, rule = choose_trial(table, n_clusters)
    labels = dbscan_labels(codes, best.eps, best.min_samples, seed)
    table_path = write_csv(
        out_dir / "dbscan_search.csv",
        ["eps", "min_samples", "clusters", "noise_fraction", "silhouette"],
        [[t.eps, t.min_samples, t.clusters, t.noise, t.silhouette] for t in table],
    )
    info = {
        "eps": best.eps,
        "min_samples": best.min_samples,
        "clusters": best.clusters,
        "noise_fraction": best.noise,
        "silhouette": best.silhouette,
        "rule": rule,
        "eps_range": list(eps_range),
        "table": str(table_path),
        "searched_on": len(dbscan_sample(len(codes), seed)),  # codes the search and DBSCAN saw
    }
    return labels, info, f"DBSCAN, eps = {best.eps:.3f}, min_samples = {best.min_samples}"
