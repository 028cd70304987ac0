"""One self-contained HTML report of a run: every image inlined, nothing fetched when opened.

Sections: training curves, the latent space after chosen epochs, generated sheep,
reconstructions, the manifold, clusters with their galleries, anomalies (when ``sheep anomalies``
was run on this run) and the interactive latent explorer.
"""

from __future__ import annotations

import base64
import html
import io
import json
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from . import checkpoint as ckpt
from .errors import DataError
from .explorer import STYLE, explorer_html, explorer_payload, png_data_uri
from .fileio import write_text
from .generate import draw, manifold, reconstruct
from .latent import clusters, encode, snapshots_figure
from .plots import grid_image, manifold_figure, pyplot, reconstruction_figure


def figure_uri(fig) -> str:
    """A matplotlib figure as a PNG data URI (closed afterwards)."""
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100, bbox_inches="tight")
    plt.close(fig)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def file_uri(path: Path) -> str:
    return "data:image/png;base64," + base64.b64encode(path.read_bytes()).decode("ascii")


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


def _section(title: str, caption: str, body: str, anchor: str) -> str:
    return (
        f"<section id='{anchor}'><h2>{html.escape(title)}</h2><p class='caption'>{html.escape(caption)}</p>"
        f"{body}</section>"
    )


def _img(uri: str, alt: str) -> str:
    return f"<img class='fig' src='{uri}' alt='{html.escape(alt)}'>"


def build_report(
    run_dir: Path,
    out: Path,
    data: str | Path | None = None,
    *,
    epochs: tuple[int, ...] = (5, 10, 15, 20),
    seed: int = 0,
    progress: bool = False,
) -> dict[str, Any]:
    """Write the report of ``run_dir`` to ``out``; return the list of sections and the path."""
    config = ckpt.read_config(run_dir)
    model = ckpt.load_model(run_dir)
    history = ckpt.read_metrics(run_dir)
    try:
        drawings = ckpt.run_data(run_dir, data)
    except DataError:
        drawings = None  # e.g. the built-in model without DATA: sections that need drawings say so
    sections: list[str] = []
    names: list[str] = []

    def add(anchor: str, title: str, caption: str, body: str) -> None:
        sections.append(_section(title, caption, body, anchor))
        names.append(anchor)

    if history:
        last = history[-1]
        add(
            "training",
            "Training curves",
            f"{len(history)} epochs; last epoch: loss {last['loss']:.1f}, validation loss {last['val_loss']:.1f}, "
            f"KL {last['kl']:.2f} nats, KL weight {last['kl_weight']:.2f}, {last['images_per_s']:.0f} images/s.",
            _img(figure_uri(curves_figure(history)), "training curves"),
        )
    try:
        fig, chosen, _, _ = snapshots_figure(run_dir, list(epochs))
        add(
            "latent-epochs",
            "The latent space during training",
            f"Codes (z_mean) of the validation drawings after epochs {', '.join(map(str, chosen))}.",
            _img(figure_uri(fig), "latent space after chosen epochs"),
        )
    except DataError:
        pass
    samples = draw(model, 64, seed=seed)
    add(
        "samples",
        "New sheep",
        "64 drawings decoded from random codes z ~ N(0, I), the prior.",
        _img(png_data_uri(grid_image(samples)), "generated sheep"),
    )
    if drawings is not None:
        test = drawings.split("test", limit=16)
        rows = {"original": test / 255.0, "reconstruction": reconstruct(model, test)}
        add(
            "reconstructions",
            "Reconstructions",
            "Test drawings (top) and what the model makes of them (bottom).",
            _img(figure_uri(reconstruction_figure(rows, list(range(len(test))))), "reconstructions"),
        )
    codes = _codes(model, drawings, run_dir)
    grid_images = manifold(model, 20, 3.0, codes if model.config.latent_dim > 2 else None)
    add(
        "manifold",
        "The manifold",
        "What the decoder draws across the latent plane, from -3 to 3 on each axis.",
        _img(figure_uri(manifold_figure(grid_images, 20, 3.0, model.config.latent_dim)), "manifold"),
    )
    if drawings is not None:
        add(
            "clusters",
            "Clusters",
            "k-means on the codes of the training drawings, k chosen by the elbow; "
            "each row of the gallery shows real drawings of one cluster.",
            _clusters_body(model, drawings, seed, progress),
        )
    anomalies = run_dir / "analysis" / "anomalies.json"
    if anomalies.is_file():
        add(
            "anomalies",
            "Anomalies",
            _anomaly_caption(json.loads(anomalies.read_text())),
            _img(file_uri(run_dir / "analysis" / "anomaly_scores.png"), "anomaly scores")
            + "<p class='caption'>The most anomalous drawings:</p>"
            + _img(file_uri(run_dir / "analysis" / "anomaly_gallery.png"), "anomaly gallery"),
        )
    originals = drawings.split("valid", limit=600) if drawings is not None else None
    add(
        "explorer",
        "Latent explorer",
        "Move the pointer over the plane to see what the decoder draws there; "
        "click a blue point (an encoded drawing) to see the drawing and its reconstruction.",
        explorer_html(explorer_payload(model, codes if codes is not None else np.zeros((0, 2)), originals)),
    )
    title = f"electric-sheep report: {config['model']['preset']} preset, {model.config.latent_dim}-D latent"
    nav = " · ".join(f"<a href='#{n}'>{n}</a>" for n in names)
    page = (
        f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
        f"<meta name='viewport' content='width=device-width, initial-scale=1'>{STYLE}</head><body><main>"
        f"<h1>{html.escape(title)}</h1><p class='caption'>Run folder: {html.escape(str(run_dir))}"
        f"{' · data: ' + html.escape(str(drawings.source)) if drawings is not None else ''}</p>"
        f"<nav>{nav}</nav>{''.join(sections)}</main></body></html>"
    )
    write_text(out, page)
    return {"report": str(out), "sections": names, "bytes": len(page)}


def _codes(model, drawings, run_dir: Path) -> np.ndarray | None:
    """Codes for the explorer and PCA: the validation drawings, else the run's last saved codes."""
    if drawings is not None:
        return encode(model, drawings.split("valid", limit=600))
    saved = sorted((run_dir / ckpt.LATENTS).glob("epoch_*.npy"))
    return np.load(saved[-1]) if saved else None


def _clusters_body(model, drawings, seed: int, progress: bool) -> str:
    with tempfile.TemporaryDirectory() as tmp:
        result = clusters(model, drawings.split("train", limit=5000), Path(tmp), "kmeans", seed=seed, progress=progress)
        parts = [_img(file_uri(Path(result[key])), key) for key in ("elbow_plot", "scatter", "gallery")]
    sizes = ", ".join(f"cluster {c}: {n}" for c, n in result["cluster_sizes"].items())
    return f"<p class='caption'>k = {result['k']} ({sizes}).</p>" + "".join(parts)


def _anomaly_caption(r: dict[str, Any]) -> str:
    text = f"Score: {r['score']}; {r['n_flagged']} of {r['n']} drawings flagged ({r['rule']})."
    if "auroc" in r:
        text += (
            f" {r['n_planted']} drawings of another kind were planted: AUROC {r['auroc']:.3f}, average precision "
            f"{r['average_precision']:.3f}, precision at {r['k']} {r['precision_at_k']:.3f}."
        )
    return text
