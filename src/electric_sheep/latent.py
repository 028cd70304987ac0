"""The latent space: codes of real drawings, scatter plots, snapshots over training, clusters.

The post plotted z_mean of its training sheep after epochs 5, 10, 15 and 20, then clustered the
plane with k-means (elbow method) and DBSCAN (random search over eps and min_samples) and looked
at the drawings in each cluster: sheep with legs against sheep without.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, get_args

import numpy as np
import torch
from tqdm import tqdm

from . import checkpoint as ckpt
from .errors import ConfigError, DataError, SheepError, SheepWarning
from .fileio import ensure_dir, write_csv, write_json, write_npy
from .infer import encode_means
from .model import VAE
from .plots import latent_scatter_figure, pyplot, save_figure
from .streaming import Shard, stream_rows

ClusterMethod = Literal["kmeans", "dbscan"]


def encode(model: VAE, images_u8: np.ndarray) -> np.ndarray:
    """z_mean of each drawing, (N, D) float32."""
    return encode_means(model, torch.from_numpy(np.ascontiguousarray(images_u8)))


def validation_codes(model: VAE, run_dir: str | Path) -> np.ndarray | None:
    """Codes (z_mean) of a run's validation drawings: encoded from the data it was trained on, else
    those saved after its last epoch (a run trained on in-memory drawings records no data file)."""
    try:
        return encode(model, ckpt.run_data(run_dir).split("valid"))
    except SheepError:
        return ckpt.last_latents(run_dir)


def finite_rows(codes: np.ndarray) -> np.ndarray:
    """Boolean mask of codes with no NaN/inf (the post had to drop infinite codes)."""
    return np.isfinite(codes).all(axis=1)


def to_plane(codes: np.ndarray) -> tuple[np.ndarray, str]:
    """2-D view of finite codes: themselves for D <= 2, else their first two principal components
    (with fewer than two codes there are no principal components: their first two dimensions)."""
    if codes.shape[1] <= 2 or len(codes) < 2:
        return codes[:, :2], "z"
    from sklearn.decomposition import PCA

    return PCA(n_components=2, random_state=0).fit_transform(codes), "PC"


PLOT_MAX = 100_000  # codes drawn in the scatter; more only hide each other (a seeded sample)


def latent_map(
    model: VAE,
    images_u8: np.ndarray,
    out_dir: Path,
    title: str = "latent space",
    *,
    job: dict | None = None,
    progress: bool = False,
    shard: Shard = Shard(),
) -> dict[str, Any] | None:
    """Encode every drawing into ``out_dir/codes.npy`` (streamed chunk by chunk; a killed run of
    the same ``job`` continues), save the scatter; count and leave out non-finite codes. Under
    torchrun (``shard``) every process encodes its share, and only the first plots and returns."""
    ensure_dir(out_dir)
    codes_path = out_dir / "codes.npy"
    width = model.config.latent_dim

    def encoded(start: int, stop: int) -> np.ndarray:
        return encode(model, np.asarray(images_u8[start:stop]))

    job = job or {}
    codes = stream_rows(
        len(images_u8), encoded, codes_path, width=width, job=job, desc="encoding", progress=progress, shard=shard
    )
    if not shard.main:
        return None
    ok = finite_rows(codes)
    shown = np.flatnonzero(ok)
    if len(shown) > PLOT_MAX:
        shown = np.sort(np.random.default_rng(0).choice(shown, PLOT_MAX, replace=False))
    plane, axis = to_plane(np.asarray(codes[shown]))
    what = f"{ok.sum():,} drawings" if len(shown) == ok.sum() else f"{len(shown):,} of {ok.sum():,} drawings"
    fig = latent_scatter_figure(plane, title=f"{title} ({what})")
    _name_axes(fig.axes[0], axis)
    plot = save_figure(fig, out_dir / "latent.png")
    return {
        "n": int(len(codes)),
        "n_plotted": int(len(shown)),
        "n_nonfinite": int((~ok).sum()),
        "latent_dim": int(width),
        "codes": str(codes_path),
        "plot": str(plot),
    }


def _name_axes(ax, axis: str) -> None:
    """Label a scatter of :func:`to_plane`'s output: latent dims (the default labels) or PCs."""
    if axis == "PC":
        ax.set_xlabel("first principal component")
        ax.set_ylabel("second principal component")


POST_EPOCHS = (5, 10, 15, 20)  # the epochs whose latent space the blog post showed


def snapshots_figure(run_dir: Path, epochs: list[int] | None = None):
    """The validation codes saved after the chosen epochs of a run, side by side in one figure.

    Returns (figure, epochs shown, epochs available, non-finite codes left out). Epochs that
    were not saved are skipped, with a :class:`SheepWarning` when they were asked for (``None``
    asks for the post's, where the run has them); with none of them, up to four are spread over
    the run.
    """
    plt = pyplot()

    available = ckpt.latent_epochs(run_dir)
    if not available:
        raise DataError(run_dir, "has no saved latent codes (latents/epoch_NNN.npy); train it with `sheep train`")
    asked = list(POST_EPOCHS) if epochs is None else epochs
    chosen = [e for e in asked if e in available] or _spread(available, 4)
    missing = [e for e in asked if e not in available]
    if missing and epochs is not None:  # say so: a figure without the epoch asked for must not pass for it
        warnings.warn(
            f"{run_dir}: no codes saved after epoch(s) {', '.join(map(str, missing))} (saved: "
            f"{_epochs_text(available)}); showing {', '.join(map(str, chosen))}",
            SheepWarning,
            stacklevel=3,
        )
    fig, axes = plt.subplots(1, len(chosen), figsize=(4.2 * len(chosen), 4.2), squeeze=False)
    dropped = 0
    for ax, epoch in zip(axes[0], chosen, strict=True):
        codes = ckpt.load_latents(run_dir, epoch)
        ok = finite_rows(codes)
        dropped += int((~ok).sum())
        plane, axis = to_plane(codes[ok])
        latent_scatter_figure(plane, title=f"after epoch {epoch}", ax=ax)
        _name_axes(ax, axis)
    fig.suptitle("validation drawings in the latent space during training")
    return fig, chosen, available, dropped


def snapshots(run_dir: Path, epochs: list[int] | None, out: Path) -> dict[str, Any]:
    """Write :func:`snapshots_figure` to ``out``."""
    fig, chosen, available, dropped = snapshots_figure(run_dir, epochs)
    path = save_figure(fig, out)
    return {"epochs": chosen, "available": available, "n_nonfinite": dropped, "plot": str(path)}


FRAME_MS = 400  # one saved epoch per frame of the animation
HOLD_LAST_MS = 2000  # the trained state stays on screen before the loop starts again
MAX_FRAMES = 60  # a long run shows 60 epochs spread over it (~0.1 s and ~8 kB a frame)


def snapshot_frames(run_dir: Path) -> tuple[list, list[int], int]:
    """Every saved epoch's validation codes (at most MAX_FRAMES epochs, spread over the run) as one
    picture each, on the same axes, so that played in turn they show the codes spreading out, then
    gathering towards the prior as the KL weight rises. Returns (Pillow images, epochs, non-finite
    codes left out).

    Codes with more than two dims are projected on each epoch's own first two principal
    components, signed to agree with the previous frame (a principal direction's sign is
    arbitrary, and a flip would make the cloud jump).
    """
    from .plots import figure_image

    plt = pyplot()
    epochs = _spread(ckpt.latent_epochs(run_dir), MAX_FRAMES)
    if not epochs:
        raise DataError(run_dir, "has no saved latent codes (latents/epoch_NNN.npy); train it with `sheep train`")
    planes, axes, dropped, previous = [], [], 0, None
    for epoch in epochs:
        codes = ckpt.load_latents(run_dir, epoch)
        ok = finite_rows(codes)
        dropped += int((~ok).sum())
        plane, axis = to_plane(codes[ok])
        if axis == "PC" and previous is not None and len(previous) == len(plane):
            plane = _agree_in_sign(plane, previous)
        planes.append(plane)
        axes.append(axis)
        previous = plane
    lo, hi = _frame_limits(planes)
    weights = _kl_weights(run_dir)
    trained = max([*epochs, *(e for e in weights if isinstance(e, int))])  # codes may not be saved every epoch
    frames = []
    for epoch, plane, axis in zip(epochs, planes, axes, strict=True):
        fig, ax = plt.subplots(figsize=(5, 5))
        title = f"validation codes after epoch {epoch} of {trained}"
        if isinstance(weights.get(epoch), int | float):  # what drives the change: the KL weight
            title += f"\n(KL weight {weights[epoch]:.2f})"
        latent_scatter_figure(plane, title=title, ax=ax)
        _name_axes(ax, axis)
        ax.set_xlim(lo[0], hi[0])
        if len(lo) > 1:  # (a 1-D latent is spread along y by drawing index)
            ax.set_ylim(lo[1], hi[1])
        frames.append(figure_image(fig))
    return frames, epochs, dropped


def snapshots_animation(run_dir: Path, out: Path) -> dict[str, Any]:
    """Write :func:`snapshot_frames` to ``out`` as a looping GIF, one saved epoch per frame."""
    from .plots import save_animation

    frames, epochs, dropped = snapshot_frames(run_dir)
    path = save_animation(frames, out, FRAME_MS, HOLD_LAST_MS)
    return {"epochs": epochs, "n_nonfinite": dropped, "animation": str(path)}


def _agree_in_sign(plane: np.ndarray, previous: np.ndarray) -> np.ndarray:
    """Flip each principal axis of ``plane`` whose codes point against the same drawings' ``previous``."""
    return plane * np.where(np.sum(plane * previous, axis=0) < 0, -1.0, 1.0)


def _kl_weights(run_dir: Path) -> dict[Any, Any]:
    """Epoch -> KL weight from the run's metrics, for the frame titles; empty if they are unreadable."""
    try:
        return {row.get("epoch"): row.get("kl_weight") for row in ckpt.read_metrics(run_dir) if isinstance(row, dict)}
    except SheepError:
        return {}


def _frame_limits(planes: list[np.ndarray], margin: float = 0.05) -> tuple[np.ndarray, np.ndarray]:
    """Axis limits that hold the central 99% of the codes of every frame (a few far-out codes
    would otherwise squeeze the cloud into a corner), with a small margin."""
    both = np.concatenate(planes)  # (frames * N, 1 or 2)
    if len(both) == 0:
        return -np.ones(both.shape[1]), np.ones(both.shape[1])
    lo, hi = np.percentile(both, 0.5, axis=0), np.percentile(both, 99.5, axis=0)
    pad = np.maximum(hi - lo, 1e-6) * margin
    return lo - pad, hi + pad


def _epochs_text(epochs: list[int]) -> str:
    """A sorted list of epochs in few words: "1-20" when it has no gaps, else the numbers."""
    if epochs == list(range(epochs[0], epochs[-1] + 1)) and len(epochs) > 2:
        return f"{epochs[0]}-{epochs[-1]}"
    return ", ".join(map(str, epochs))


def _spread(values: list[int], k: int) -> list[int]:
    """Up to k values evenly spread over a sorted list (first and last included)."""
    if len(values) <= k:
        return values
    return [values[round(i * (len(values) - 1) / (k - 1))] for i in range(k)]


# --------------------------------------------------------------------------- clustering


def elbow(codes: np.ndarray, ks: list[int], seed: int = 0) -> list[float]:
    """Mean within-cluster sum of squares (k-means inertia / N) for each k."""
    from sklearn.cluster import KMeans

    return [float(KMeans(n_clusters=k, n_init=10, random_state=seed).fit(codes).inertia_ / len(codes)) for k in ks]


def kmeans(codes: np.ndarray, k: int, seed: int = 0) -> np.ndarray:
    from sklearn.cluster import KMeans

    return KMeans(n_clusters=k, n_init=10, random_state=seed).fit_predict(codes)


@dataclass(frozen=True)
class DBSCANTrial:
    eps: float
    min_samples: int
    clusters: int
    noise: float  # fraction of points labelled noise
    silhouette: float  # on the non-noise points; NaN with fewer than 2 clusters


def dbscan_search(
    codes: np.ndarray,
    eps_range: tuple[float, float],
    min_samples_range: tuple[int, int],
    trials: int = 40,
    seed: int = 0,
    progress: bool = True,
) -> list[DBSCANTrial]:
    """Random search over eps (log-uniform) and min_samples (uniform integers)."""
    from sklearn.cluster import DBSCAN

    rng = np.random.default_rng(seed)
    # A core point needs min_samples drawings around it: more than there are finds nothing.
    hi = max(2, min(min_samples_range[1], len(codes)))
    lo = min(min_samples_range[0], hi)
    results = []
    for _ in tqdm(range(trials), desc="DBSCAN search", disable=not progress, leave=False):
        eps = float(np.exp(rng.uniform(np.log(eps_range[0]), np.log(eps_range[1]))))
        min_samples = int(rng.integers(lo, hi + 1))
        labels = DBSCAN(eps=eps, min_samples=min_samples).fit_predict(codes)
        results.append(_trial(codes, labels, eps, min_samples, seed))
    return results


def _trial(codes: np.ndarray, labels: np.ndarray, eps: float, min_samples: int, seed: int) -> DBSCANTrial:
    from sklearn.metrics import silhouette_score

    clustered = labels >= 0
    n_clusters = len(set(labels[clustered].tolist()))
    sil = float("nan")
    if n_clusters >= 2:
        # Sampled: the exact score is O(N^2) in memory and time on 7,400 codes.
        sil = float(
            silhouette_score(
                codes[clustered], labels[clustered], sample_size=min(2000, int(clustered.sum())), random_state=seed
            )
        )
    return DBSCANTrial(eps, min_samples, n_clusters, float(1 - clustered.mean()), sil)


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


def cluster_gallery(
    images_u8: np.ndarray,
    labels: np.ndarray,
    per_cluster: int = 12,
    seed: int = 0,
    title: str = "drawings of each cluster",
):
    """A figure with one row per cluster (noise last): real drawings side by side."""
    plt = pyplot()

    from .plots import grid_image

    rng = np.random.default_rng(seed)
    ids = sorted(set(labels.tolist()), key=lambda c: (c < 0, c))
    fig, axes = plt.subplots(len(ids), 1, figsize=(per_cluster * 0.9, 1.25 * len(ids) + 0.6), squeeze=False)
    for ax, c in zip(axes[:, 0], ids, strict=True):
        members = np.flatnonzero(labels == c)
        pick = np.sort(rng.choice(members, size=min(per_cluster, len(members)), replace=False))
        ax.imshow(np.asarray(grid_image(images_u8[pick], ncols=per_cluster, scale=1)), cmap="gray", vmin=0, vmax=255)
        ax.set_title(f"{'noise' if c < 0 else f'cluster {c}'}: {len(members)} drawings", fontsize=9, loc="left")
        ax.axis("off")
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def elbow_figure(ks: list[int], wcss: list[float], chosen: int):
    plt = pyplot()

    fig, ax = plt.subplots(figsize=(5.5, 4))
    ax.plot(ks, wcss, "o-", color="#3b6ea5")
    ax.axvline(chosen, color="#c0392b", ls="--", label=f"k = {chosen}")
    ax.set_xlabel("number of clusters k")
    ax.set_ylabel("mean within-cluster sum of squares")
    ax.set_title("k-means elbow curve")
    ax.legend()
    ax.grid(alpha=0.3)
    return fig


def elbow_k(ks: list[int], wcss: list[float]) -> int:
    """The elbow: the k farthest below the straight line from the first to the last point."""
    x, y = np.asarray(ks, float), np.asarray(wcss, float)
    if len(x) < 3:
        return int(x[0])
    xn, yn = (x - x[0]) / (x[-1] - x[0]), (y - y[-1]) / max(y[0] - y[-1], 1e-12)
    return int(x[np.argmax((1 - xn) - yn)])


def clusters(
    model: VAE,
    images_u8: np.ndarray,
    out_dir: Path,
    method: ClusterMethod = "kmeans",
    *,
    k: int | None = None,
    k_range: tuple[int, int] = (2, 10),
    eps_range: tuple[float, float] = (0.02, 1.0),
    min_samples_range: tuple[int, int] = (5, 50),
    trials: int = 40,
    n_clusters: int | None = None,
    seed: int = 0,
    progress: bool = True,
) -> dict[str, Any]:
    """Cluster the finite codes of ``images_u8`` and write the plots, gallery and numbers."""
    if method not in get_args(ClusterMethod):
        raise ConfigError(f"unknown clustering method {method!r}; choose {' or '.join(get_args(ClusterMethod))}")
    codes = encode(model, images_u8)
    ok = finite_rows(codes)
    codes, images = codes[ok], images_u8[ok]
    plane, _ = to_plane(codes)
    ensure_dir(out_dir)
    # Only the finite codes, so they line up with the labels (`sheep latent` keeps codes.npy whole).
    codes_path = write_npy(out_dir / f"{method}_codes.npy", codes)
    result: dict[str, Any] = {
        "method": method,
        "n": int(len(codes)),
        "n_nonfinite": int((~ok).sum()),
        "codes": str(codes_path),
    }
    if method == "kmeans":
        labels, info, title = _kmeans_clustering(codes, out_dir, k or n_clusters, k_range, seed)
    else:
        labels, info, title = _dbscan_clustering(
            codes, out_dir, eps_range, min_samples_range, trials, n_clusters, seed, progress
        )
    result.update(info)
    write_npy(out_dir / f"{method}_labels.npy", labels)
    sizes = {int(c): int((labels == c).sum()) for c in sorted(set(labels.tolist()))}
    scatter = save_figure(latent_scatter_figure(plane, title=title, labels=labels), out_dir / f"{method}_scatter.png")
    gallery = save_figure(cluster_gallery(images, labels, seed=seed, title=title), out_dir / f"{method}_gallery.png")
    result.update(
        {
            "cluster_sizes": sizes,
            "scatter": str(scatter),
            "gallery": str(gallery),
            "labels": str(out_dir / f"{method}_labels.npy"),
        }
    )
    write_json(out_dir / f"{method}.json", result)
    return result


def _kmeans_clustering(
    codes: np.ndarray, out_dir: Path, k: int | None, k_range: tuple[int, int], seed: int
) -> tuple[np.ndarray, dict[str, Any], str]:
    """k-means with k given or chosen by the elbow: (labels, numbers for the JSON, plot title)."""
    n = len(codes)
    ks = list(range(k_range[0], min(k_range[1], n - 1) + 1))  # more drawings than clusters, for each k
    if not ks or (k is not None and k > n):
        raise ConfigError(f"k-means needs more drawings than clusters: {n} drawings for k = {k or k_range[0]}")
    wcss = elbow(codes, ks, seed)
    chosen = k or elbow_k(ks, wcss)
    info = {
        "k": chosen,
        "elbow": dict(zip(ks, wcss, strict=True)),
        "elbow_plot": str(save_figure(elbow_figure(ks, wcss, chosen), out_dir / "kmeans_elbow.png")),
    }
    return kmeans(codes, chosen, seed), info, f"k-means, k = {chosen}"


def _dbscan_clustering(
    codes: np.ndarray,
    out_dir: Path,
    eps_range: tuple[float, float],
    min_samples_range: tuple[int, int],
    trials: int,
    n_clusters: int | None,
    seed: int,
    progress: bool,
) -> tuple[np.ndarray, dict[str, Any], str]:
    """DBSCAN after a random search over its parameters: (labels, numbers for the JSON, title)."""
    from sklearn.cluster import DBSCAN

    table = dbscan_search(codes, eps_range, min_samples_range, trials, seed, progress)
    best, rule = choose_trial(table, n_clusters)
    labels = DBSCAN(eps=best.eps, min_samples=best.min_samples).fit_predict(codes)
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
        "table": str(table_path),
    }
    return labels, info, f"DBSCAN, eps = {best.eps:.3f}, min_samples = {best.min_samples}"
