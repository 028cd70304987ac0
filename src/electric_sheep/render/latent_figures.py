"""Pictures of the latent space: the map of a set's codes, the snapshots over training (a figure
and an animation), the elbow curve and the gallery of each cluster's drawings."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import numpy as np

from ..analysis import latent
from ..core.model import VAE
from ..data.drawings import Drawings
from ..errors import DataError, SheepError, SheepWarning
from ..runs import checkpoint as ckpt
from ..runs.fileio import ensure_dir
from ..runs.run_sources import streamed_job
from ..runs.streaming import Shard, stream_rows
from ..wording import counted
from .plots import category_labels, latent_scatter_figure, plain_text, pyplot, save_figure

TITLE_INCHES = 0.6  # above a cluster gallery's rows
GALLERY_CLUSTERS = 30  # rows of a cluster gallery: more is a picture nobody can take in
PLOT_MAX = 100_000  # codes drawn in the scatter; more only hide each other (a seeded sample)


def latent_run(
    run_dir: str | Path,
    drawings: Drawings,
    split: str,
    out_dir: str | Path,
    *,
    device: Any = "cpu",
    progress: bool = True,
) -> dict[str, Any] | None:
    """What ``sheep latent`` does: encode ``split`` of ``drawings`` ("all": every drawing) with
    ``run_dir``'s model on ``device`` into ``out_dir`` and map the codes (:func:`latent_map`). Under
    torchrun each process encodes its share and the first maps them; None in the others."""
    from ..data.sources import split_view

    shard = Shard.from_env()
    return latent_map(
        ckpt.load_model(run_dir, device),
        split_view(drawings, split),  # read as encoding needs it: a whole category never in memory
        Path(out_dir),
        title=f"{split} drawings of {drawings.name()}",
        job=streamed_job(run_dir, drawings, split),
        progress=progress and shard.main,
        shard=shard,
        categories=drawings.categories(split),
    )


def latent_map(
    model: VAE,
    images_u8: np.ndarray,
    out_dir: Path,
    title: str = "latent space",
    *,
    job: dict | None = None,
    progress: bool = False,
    shard: Shard = Shard(),
    categories: tuple[np.ndarray, list[str]] | None = None,
) -> dict[str, Any] | None:
    """Encode every drawing into ``out_dir/codes.npy`` (streamed chunk by chunk; a killed run of
    the same ``job`` continues), save the scatter; count and leave out non-finite codes. Under
    torchrun (``shard``) every process encodes its share, and only the first plots and returns.
    ``categories``: each drawing's category and their names (several files), to colour the scatter by."""
    ensure_dir(out_dir)
    codes_path = out_dir / "codes.npy"
    width = model.config.latent_dim

    def encoded(start: int, stop: int) -> np.ndarray:
        return latent.encode(model, np.asarray(images_u8[start:stop]))

    job = job or {}
    codes = stream_rows(
        len(images_u8), encoded, codes_path, width=width, job=job, desc="encoding", progress=progress, shard=shard
    )
    if not shard.main:
        return None
    ok = latent.finite_rows(codes)
    shown = np.flatnonzero(ok)[plot_sample(int(ok.sum()))]
    what = f"{ok.sum():,} drawings" if len(shown) == ok.sum() else f"{len(shown):,} of {ok.sum():,} drawings"
    labels, names = category_labels(categories, shown)
    sizes = None if categories is None else dict(enumerate(np.bincount(categories[0][ok]).tolist()))
    plot = _scatter(np.asarray(codes[shown]), f"{title} ({what})", out_dir / "latent.png", labels, names, sizes)
    result = {
        "n": int(len(codes)),
        "n_plotted": int(len(shown)),
        "n_nonfinite": int((~ok).sum()),
        "latent_dim": int(width),
        "codes": str(codes_path),
        "plot": str(plot),
    }
    if categories is not None:
        counts = np.bincount(categories[0], minlength=len(categories[1]))
        result["categories"] = {name: int(n) for name, n in zip(categories[1], counts, strict=True)}
    return result


def plot_sample(n: int) -> np.ndarray:
    """Which of ``n`` codes a scatter draws: all up to PLOT_MAX, else a seeded sample (sorted)."""
    return latent.seeded_sample(n, PLOT_MAX)


def _scatter(
    codes: np.ndarray,
    title: str,
    path: Path,
    labels: np.ndarray | None = None,
    names: dict[int, str] | None = None,
    sizes: dict[int, int] | None = None,
) -> Path:
    """The codes on their plane (see :func:`to_plane`), coloured by ``labels`` named ``names`` when
    given (``sizes``: each label's count among all the codes, when these are a sample), saved as ``path``."""
    plane, axis = latent.to_plane(codes)
    figure = latent_scatter_figure(plane, title=title, labels=labels, label_names=names, axis=axis, sizes=sizes)
    return save_figure(figure, path)


POST_EPOCHS = (5, 10, 15, 20)  # the epochs whose latent space the blog post showed


@plain_text
def snapshots_figure(run_dir: Path, epochs: list[int] | None = None):
    """The validation codes saved after the chosen epochs of a run, side by side in one figure.

    Returns (figure, epochs shown, epochs available, non-finite codes left out). Epochs that
    were not saved are skipped, with a :class:`SheepWarning` when they were asked for (``None``
    asks for the post's, where the run has two or more of them: one panel shows no change); with
    none of them, up to four are spread over the run.
    """
    plt = pyplot()

    available = ckpt.latent_epochs(run_dir)
    if not available:
        raise DataError(run_dir, "has no saved latent codes (latents/epoch_NNN.npy); train it with `sheep train`")
    asked = list(POST_EPOCHS) if epochs is None else epochs
    chosen = [e for e in asked if e in available]
    if not chosen or (epochs is None and len(chosen) < 2):
        chosen = _spread(available, 4)
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
        ok = latent.finite_rows(codes)
        dropped += int((~ok).sum())
        plane, axis = latent.to_plane(codes[ok])
        labels, names = _categories_of(run_dir, ok)
        latent_scatter_figure(plane, f"after epoch {epoch}", labels, names, ax=ax, axis=axis)
    fig.suptitle("validation drawings in the latent space during training")
    return fig, chosen, available, dropped


def _categories_of(run_dir: Path, kept: np.ndarray) -> tuple[np.ndarray | None, dict[int, str] | None]:
    """(the category of each saved code ``kept``, their names) for a run of several files, else Nones."""
    return category_labels(ckpt.latent_categories(run_dir, len(kept)), kept)


def snapshots(run_dir: Path, epochs: list[int] | None, out: Path, animation: Path | None = None) -> dict[str, Any]:
    """Write :func:`snapshots_figure` to ``out``; with ``animation``, every saved epoch there too
    (:func:`snapshots_animation`)."""
    fig, chosen, available, dropped = snapshots_figure(run_dir, epochs)
    path = save_figure(fig, out)
    result = {"epochs": chosen, "available": available, "n_nonfinite": dropped, "plot": str(path)}
    if animation is not None:
        animated = snapshots_animation(run_dir, animation)
        result.update(animation=animated["animation"], animation_epochs=animated["epochs"])
    return result


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
    planes, axes, kept = _snapshot_planes(run_dir, epochs)
    dropped = sum(int((~ok).sum()) for ok in kept)
    lo, hi = _frame_limits(planes)
    weights = _kl_weights(run_dir)
    trained = max([*epochs, *(e for e in weights if isinstance(e, int))])  # codes may not be saved every epoch
    frames = []
    for epoch, plane, axis, ok in zip(epochs, planes, axes, kept, strict=True):
        title = f"validation codes after epoch {epoch} of {trained}"
        if isinstance(weights.get(epoch), int | float):  # what drives the change: the KL weight
            title += f"\n(KL weight {weights[epoch]:.2f})"
        frames.append(figure_image(_frame(plt, plane, axis, title, (lo, hi), _categories_of(run_dir, ok))))
    return frames, epochs, dropped


def _snapshot_planes(run_dir: Path, epochs: list[int]) -> tuple[list[np.ndarray], list[str], list[np.ndarray]]:
    """Each epoch's finite codes on their plane, principal directions signed as the previous
    epoch's; (planes, axis names, which codes each kept)."""
    planes, axes, kept, previous = [], [], [], None
    for epoch in epochs:
        codes = ckpt.load_latents(run_dir, epoch)
        ok = latent.finite_rows(codes)
        plane, axis = latent.to_plane(codes[ok])
        if axis == "PC" and previous is not None and len(previous) == len(plane):
            plane = _agree_in_sign(plane, previous)
        planes.append(plane)
        axes.append(axis)
        kept.append(ok)
        previous = plane
    return planes, axes, kept


@plain_text
def _frame(
    plt,
    plane: np.ndarray,
    axis: str,
    title: str,
    limits: tuple[np.ndarray, np.ndarray],
    categories: tuple[np.ndarray | None, dict[int, str] | None] = (None, None),
):
    """One frame of the animation: the scatter on the axes every frame shares, coloured by
    ``categories`` (a run of several files)."""
    lo, hi = limits
    fig, ax = plt.subplots(figsize=(5, 5))
    latent_scatter_figure(plane, title, *categories, ax=ax, axis=axis)
    ax.set_xlim(lo[0], hi[0])
    if len(lo) > 1:  # (a 1-D latent is spread along y by drawing index)
        ax.set_ylim(lo[1], hi[1])
    return fig


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


@plain_text
def cluster_gallery(
    images_u8: np.ndarray,
    labels: np.ndarray,
    per_cluster: int = 12,
    seed: int = 0,
    title: str = "drawings of each cluster",
):
    """A figure with one row per cluster (noise last): real drawings side by side; of more than
    GALLERY_CLUSTERS clusters, the largest."""
    plt = pyplot()

    from .plots import grid_image

    rng = np.random.default_rng(seed)
    ids, total = _gallery_clusters(labels)
    if len(ids) - (-1 in ids) < total:
        title += f" (the {GALLERY_CLUSTERS} largest of {total} clusters)"
    height = 1.25 * len(ids) + TITLE_INCHES
    fig, axes = plt.subplots(len(ids), 1, figsize=(per_cluster * 0.9, height), squeeze=False)
    for ax, c in zip(axes[:, 0], ids, strict=True):
        members = np.flatnonzero(labels == c)
        pick = np.sort(rng.choice(members, size=min(per_cluster, len(members)), replace=False))
        ax.imshow(np.asarray(grid_image(images_u8[pick], ncols=per_cluster, scale=1)), cmap="gray", vmin=0, vmax=255)
        name = "noise" if c < 0 else f"cluster {c}"
        ax.set_title(f"{name}: {counted(len(members), 'drawing')}", fontsize=9, loc="left")
        ax.axis("off")
    fig.suptitle(title, y=1 - 0.1 / height, va="top")  # a tenth of an inch from the top, however tall
    fig.tight_layout()  # which leaves the title its room
    return fig


def _gallery_clusters(labels: np.ndarray) -> tuple[list[int], int]:
    """(the clusters a gallery shows, in order, noise last; how many clusters there are)."""
    ids, sizes = np.unique(labels, return_counts=True)
    clusters = [(int(c), int(n)) for c, n in zip(ids, sizes, strict=True) if c >= 0]
    largest = sorted(clusters, key=lambda cn: (-cn[1], cn[0]))[:GALLERY_CLUSTERS]
    return sorted(c for c, _ in largest) + ([-1] if (ids < 0).any() else []), len(clusters)


@plain_text
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
