"""One self-contained HTML report of a run: every image inlined, nothing fetched when opened.

Sections: training curves, the latent space after chosen epochs, generated sheep,
reconstructions, the manifold, clusters with their galleries, anomalies (when ``sheep anomalies``
was run on this run) and the interactive latent explorer.
"""

from __future__ import annotations

import base64
import html
import io
import tempfile
import warnings
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from ..analysis.generate import MANIFOLD_GRID, MANIFOLD_SPAN, draw, dream, manifold, reconstruct
from ..core.model import VAE
from ..data.drawings import Drawings
from ..errors import DataError, SheepWarning
from ..runs import checkpoint as ckpt
from ..runs import run_sources
from ..runs.fileio import read_figure, read_json, write_text
from ..wording import counted
from .cluster_outputs import clusters
from .explorer import STYLE, explorer_html, explorer_payload, explorer_points, png_data_uri
from .latent_figures import FRAME_MS, HOLD_LAST_MS, snapshot_frames, snapshots_figure
from .plots import gif_bytes, grid_image, manifold_figure, plain_text, pyplot, reconstruction_figure, rows_figure

# What the report shows.
SAMPLES = 64  # generated drawings, an 8x8 grid
PER_CATEGORY = 12  # drawings of each category of a class-conditional model
DREAMS, DREAM_FRAMES, DREAM_MS = 4, 48, 100  # the dream animation: ~0.2 MB inlined
RECONSTRUCTIONS = 16  # test drawings beside their reconstructions
CLUSTER_DRAWINGS = 5000  # training drawings clustered: k-means and its elbow stay under seconds
MIN_CLUSTER_DRAWINGS = 3  # an elbow needs k = 2 and more drawings than clusters


def figure_uri(fig) -> str:
    """A matplotlib figure as a PNG data URI (closed afterwards)."""
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100, bbox_inches="tight")
    plt.close(fig)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def file_uri(path: Path, remedy: str) -> str:
    """A PNG figure a command wrote, as a data URI (see :func:`read_figure` for what is refused)."""
    return "data:image/png;base64," + base64.b64encode(read_figure(path, remedy)).decode("ascii")


@plain_text
def curves_figure(history: list[dict[str, Any]]):
    """Loss terms per epoch (left) and the KL weight (right)."""
    plt = pyplot()

    epochs = [r["epoch"] for r in history]
    fig, (ax, bx) = plt.subplots(1, 2, figsize=(11, 3.8), gridspec_kw={"width_ratios": [2, 1]})
    for key, label in (("loss", "training loss"), ("recon", "reconstruction"), ("val_loss", "validation loss (w = 1)")):
        ax.plot(epochs, [r[key] for r in history], label=label)
    ax2 = ax.twinx()
    ax2.plot(epochs, [r["kl"] for r in history], color="#c0392b", ls=":", label="KL (right axis)")
    ax2.set_ylabel("KL (nats)")
    ax.set_xlabel("epoch")
    ax.set_ylabel("loss per drawing")
    ax.set_title("loss terms")
    lines = ax.get_legend_handles_labels()
    lines2 = ax2.get_legend_handles_labels()
    ax.legend(lines[0] + lines2[0], lines[1] + lines2[1], fontsize=8)
    ax.grid(alpha=0.3)
    bx.plot(epochs, [r["kl_weight"] for r in history], color="#8e44ad")
    bx.set_ylim(-0.05, 1.05)
    bx.set_xlabel("epoch")
    bx.set_ylabel("KL weight w")
    bx.set_title("KL annealing")
    bx.grid(alpha=0.3)
    fig.tight_layout()
    return fig


class Section(NamedTuple):
    """One part of the report: its anchor (also its name in the navigation), heading, caption and HTML."""

    anchor: str
    title: str
    caption: str
    body: str

    def html(self) -> str:
        return (
            f"<section id='{self.anchor}'><h2>{html.escape(self.title)}</h2>"
            f"<p class='caption'>{html.escape(self.caption)}</p>{self.body}</section>"
        )


def _img(uri: str, alt: str) -> str:
    return f"<img class='fig' src='{uri}' alt='{html.escape(alt)}'>"


def build_report(
    run_dir: Path,
    out: Path,
    data: str | Path | None = None,
    *,
    epochs: list[int] | None = None,
    seed: int = 0,
    progress: bool = False,
) -> dict[str, Any]:
    """Write the report of ``run_dir`` to ``out``; return the list of sections and the path."""
    config = ckpt.read_config(run_dir)
    model = ckpt.load_model(run_dir)
    try:
        drawings = run_sources.run_data(run_dir, data)
    except DataError as e:
        if data is not None:  # drawings the user named must be there
            raise
        # e.g. the built-in model before `sheep download sheep`: the sections that need drawings are left out, said
        warnings.warn(f"the report leaves out reconstructions and clusters: {e}", SheepWarning, stacklevel=2)
        drawings = None
    points = explorer_points(model, drawings, run_dir)  # (codes, drawings, categories)
    candidates = [
        _training_section(ckpt.read_metrics(run_dir)),
        _snapshots_section(run_dir, epochs),
        _samples_section(model, seed, run_sources.run_subject(run_dir)),
        _reconstructions_section(model, drawings),
        _manifold_section(model, points[0]),
        _clusters_section(model, drawings, seed, progress),
        _anomalies_section(run_dir),
        _explorer_section(model, *points),
    ]
    sections = [section for section in candidates if section is not None]
    title = f"electric-sheep report: {config['model']['preset']} preset, {model.config.latent_dim}-D latent"
    if model.config.categories:
        title += f", class-conditional ({', '.join(model.config.categories)})"
    source = f" · data: {html.escape(', '.join(drawings.files()))}" if drawings is not None else ""
    nav = " · ".join(f"<a href='#{s.anchor}'>{s.anchor}</a>" for s in sections)
    page = (
        f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
        f"<meta name='viewport' content='width=device-width, initial-scale=1'>{STYLE}</head><body><main>"
        f"<h1>{html.escape(title)}</h1><p class='caption'>Run folder: {html.escape(str(run_dir))}{source}</p>"
        f"<nav>{nav}</nav>{''.join(s.html() for s in sections)}</main></body></html>"
    )
    write_text(out, page)
    return {"report": str(out), "sections": [s.anchor for s in sections], "bytes": len(page)}


def _training_section(history: list[dict[str, Any]]) -> Section | None:
    if not history:
        return None
    last = history[-1]
    caption = (
        f"{counted(len(history), 'epoch')}; last epoch: loss {last['loss']:.1f}, "
        f"validation loss {last['val_loss']:.1f}, KL {last['kl']:.2f} nats, KL weight {last['kl_weight']:.2f}, "
        f"{last['images_per_s']:.0f} images/s."
    )
    return Section("training", "Training curves", caption, _img(figure_uri(curves_figure(history)), "training curves"))


def _snapshots_section(run_dir: Path, epochs: list[int] | None) -> Section | None:
    if not ckpt.latent_epochs(run_dir):  # e.g. the built-in model; a damaged file is still an error
        return None
    fig, chosen, available, _ = snapshots_figure(run_dir, epochs)
    frames, all_epochs, _ = snapshot_frames(run_dir)
    saved = len(available)
    shown = f"each of the {saved} saved" if len(all_epochs) == saved else f"{len(all_epochs)} of the {saved} saved"
    caption = (
        f"Codes (z_mean) of the validation drawings after epochs {', '.join(map(str, chosen))}; below, "
        f"after {shown} epochs in turn, on fixed axes."
    )
    animation = gif_uri(frames, FRAME_MS, HOLD_LAST_MS)
    body = _img(figure_uri(fig), "latent space after chosen epochs") + _img(animation, "latent space, epoch by epoch")
    return Section("latent-epochs", "The latent space during training", caption, body)


def _samples_section(model: VAE, seed: int, subject: str | None) -> Section:
    new = "New sheep" if subject == "a sheep" else "New drawings"  # of what the run learned
    body = _img(png_data_uri(grid_image(draw(model, SAMPLES, seed=seed))), new.lower())
    frames = [grid_image(f, ncols=DREAMS, scale=3) for f in dream(model, DREAMS, DREAM_FRAMES, seed)]
    body += _img(gif_uri(frames, DREAM_MS), "the model dreaming")
    prior = "z ~ N(0, I), the prior" if model.prior is None else "the prior fitted to the codes"
    caption = (
        f"{SAMPLES} drawings decoded from random codes of {prior}; below, {DREAMS} dreams "
        "(as sheep dream makes them): drawings along smooth closed paths through the prior."
    )
    if model.config.categories:  # a class-conditional model: what it draws of each category
        rows = {name: draw(model, PER_CATEGORY, seed=seed, category=name) for name in model.config.categories}
        body += _img(figure_uri(rows_figure(rows, "drawn as each category")), "drawn as each category")
        caption += f" Last, {PER_CATEGORY} drawings of each of its categories (sheep draw --category)."
    return Section("samples", new, caption, body)


def gif_uri(frames: list, frame_ms: int, hold_last_ms: int | None = None) -> str:
    """Frames as a looping GIF data URI."""
    data = gif_bytes(frames, frame_ms, frame_ms if hold_last_ms is None else hold_last_ms)
    return "data:image/gif;base64," + base64.b64encode(data).decode("ascii")


def _reconstructions_section(model: VAE, drawings: Drawings | None) -> Section | None:
    if drawings is None:
        return None
    test = drawings.split("test", limit=RECONSTRUCTIONS)
    rows = {"original": test / 255.0, "reconstruction": reconstruct(model, test)}
    body = _img(figure_uri(reconstruction_figure(rows, list(range(len(test))))), "reconstructions")
    caption = "Test drawings (top) and what the model makes of them (bottom)."
    return Section("reconstructions", "Reconstructions", caption, body)


def _manifold_section(model: VAE, codes: np.ndarray) -> Section:
    # The plane of the first two principal directions of the codes for latents above 2-D.
    grid_images = manifold(model, MANIFOLD_GRID, MANIFOLD_SPAN, codes if model.config.latent_dim > 2 else None)
    fig = manifold_figure(grid_images, MANIFOLD_GRID, MANIFOLD_SPAN, model.config.latent_dim)
    caption = f"What the decoder draws {_manifold_span(model.config.latent_dim)}."
    return Section("manifold", "The manifold", caption, _img(figure_uri(fig), "manifold"))


def _manifold_span(latent_dim: int) -> str:
    """Where the manifold's grid lies, in words."""
    span = f"from -{MANIFOLD_SPAN:g} to {MANIFOLD_SPAN:g}"
    if latent_dim == 1:
        return f"along the latent line, {span}"
    if latent_dim == 2:
        return f"across the latent plane, {span} on each axis"
    return f"across the plane of the codes' first two principal directions, {span} standard deviations on each"


def _clusters_section(model: VAE, drawings: Drawings | None, seed: int, progress: bool) -> Section | None:
    if drawings is None or len(drawings.splits["train"]) < MIN_CLUSTER_DRAWINGS:
        return None
    caption = (
        "k-means on the codes of the training drawings, k chosen by the elbow; "
        "each row of the gallery shows real drawings of one cluster."
    )
    return Section("clusters", "Clusters", caption, _clusters_body(model, drawings, seed, progress))


def _anomalies_section(run_dir: Path) -> Section | None:
    """The figures `sheep anomalies` left in the run folder, if it was run."""
    analysis = run_dir / "analysis"
    numbers = analysis / "anomalies.json"
    if not numbers.is_file():
        return None
    plot, gallery = analysis / "anomaly_scores.png", analysis / "anomaly_gallery.png"
    again = "run `sheep anomalies` again"
    for figure in (plot, gallery):
        if not figure.is_file():
            raise DataError(figure, f"is missing; {again}")
    body = (
        _img(file_uri(plot, again), "anomaly scores")
        + "<p class='caption'>The most anomalous drawings:</p>"
        + _img(file_uri(gallery, again), "anomaly gallery")
    )
    try:
        caption = _anomaly_caption(read_json(numbers))
    except (KeyError, TypeError, ValueError) as e:  # a key missing, a value of the wrong type
        raise DataError(numbers, f"is damaged ({type(e).__name__}); run `sheep anomalies` again") from None
    return Section("anomalies", "Anomalies", caption, body)


def _explorer_section(
    model: VAE, codes: np.ndarray, originals: np.ndarray | None, categories: tuple[np.ndarray, list[str]] | None
) -> Section:
    payload = explorer_payload(model, codes, originals, categories=categories)
    caption = (
        "Move the pointer over the plane to see what the decoder draws there; "
        "click a point (an encoded drawing) to see the drawing and its reconstruction."
    )
    return Section("explorer", "Latent explorer", caption, explorer_html(payload))


def _clusters_body(model, drawings, seed: int, progress: bool) -> str:
    images = drawings.split("train", limit=CLUSTER_DRAWINGS)
    categories = drawings.categories("train", limit=CLUSTER_DRAWINGS)
    with tempfile.TemporaryDirectory() as tmp:
        result = clusters(model, images, Path(tmp), "kmeans", seed=seed, progress=progress, categories=categories)
        again = "run `sheep report` again"
        parts = [_img(file_uri(Path(result[key]), again), key) for key in ("elbow_plot", "scatter", "gallery")]
    sizes = ", ".join(f"cluster {c}: {n:,}" for c, n in result["cluster_sizes"].items())
    text = f"k = {result['k']} ({sizes})."
    if "categories" in result:
        mixes = "; ".join(
            f"cluster {c}: " + ", ".join(f"{name} {n:,}" for name, n in counts.items() if n)
            for c, counts in result["categories"].items()
        )
        text += f" Against the categories (adjusted Rand index {result['adjusted_rand_index']:.3f}): {mixes}."
    return f"<p class='caption'>{html.escape(text)}</p>" + "".join(parts)


def _anomaly_caption(r: dict[str, Any]) -> str:
    text = f"Score: {r['score']}; {r['n_flagged']:,} of {counted(r['n'], 'drawing')} flagged ({r['rule']})."
    if "auroc" in r:
        text += (
            f" Planted drawings of another kind: {r['n_planted']:,}; AUROC {r['auroc']:.3f}, average precision "
            f"{r['average_precision']:.3f}, precision at {r['k']} {r['precision_at_k']:.3f}."
        )
    return text
