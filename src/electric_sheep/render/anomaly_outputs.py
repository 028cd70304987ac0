"""What ``sheep anomalies`` writes: the scores plot with its threshold, the gallery of the worst and a
CSV of every score, computed by :func:`.anomaly.screen`."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..runs.fileio import ensure_dir, spreadsheet_text, write_csv, write_json
from .plots import grid_image, plain_text, pyplot, save_figure, save_image

if TYPE_CHECKING:
    from ..core.model import VAE

from ..analysis.anomaly import (
    DEFAULT_SCORE,
    LEARNED,
    SCORES,
    Yardstick,
    detection_metrics,
    percentiles,
    screen,
    threshold_for,
)
from ..runs.streaming import Store

GALLERY_COLUMNS = 8  # the gallery of the worst drawings: 64 of them make a square


PLOT_MAX = 200_000  # dots in the scores plot: every flagged or planted drawing, and a sample of the rest


def _plotted(values: np.ndarray, threshold: float, planted: np.ndarray | None) -> np.ndarray:
    """Indices of the drawings the scores plot shows: all, or past PLOT_MAX the flagged and planted
    ones and a seeded sample of the others."""
    if len(values) <= PLOT_MAX:
        return np.arange(len(values))
    must = (values > threshold) | (planted if planted is not None else False)
    others = np.flatnonzero(~must)
    sample = np.random.default_rng(0).choice(others, min(len(others), PLOT_MAX), replace=False)
    return np.sort(np.concatenate([np.flatnonzero(must), sample]))


REFERENCE_BAND = (5, 95)  # percentiles of the reference's scores shaded behind a small set's
NAMED_TICKS = 20  # up to this many picture files are named along the scores plot's x axis


@plain_text
def scores_figure(
    values: np.ndarray,
    threshold: float,
    rule: str,
    kind: str,
    planted: np.ndarray | None = None,
    among: np.ndarray | None = None,
    names: list[str] | None = None,
    among_what: str = LEARNED,
):
    """Scores in data order with the threshold line; planted drawings in red when known; behind
    them, when ``among`` gives the scores of the ``among_what`` (drawings the model learned from),
    their middle 90% and median: what a handful of drawings is judged against. A few drawings with
    ``names`` (picture files) are named along the x axis."""
    plt = pyplot()
    n, n_flagged = len(values), int((values > threshold).sum())

    fig, ax = plt.subplots(figsize=(11, 4))
    idx = _plotted(values, threshold, planted)
    values = values[idx]
    planted = None if planted is None else planted[idx]
    size = float(np.clip(3000 / max(len(values), 1), 3, 30))  # thousands of dots stay fine; a handful shows
    if planted is None:
        ax.scatter(idx, values, s=size, color="#3b6ea5", label="drawings", linewidths=0)
    else:
        ax.scatter(idx[~planted], values[~planted], s=size, color="#3b6ea5", label="not planted", linewidths=0)
        ax.scatter(idx[planted], values[planted], s=3 * size, color="#c0392b", label="planted", linewidths=0)
    if among is not None and len(among):
        low, median, high = np.percentile(among, [REFERENCE_BAND[0], 50, REFERENCE_BAND[1]])
        learned = f"{len(among):,} {among_what}"
        ax.axhspan(low, high, color="#888888", alpha=0.15, lw=0, label=f"middle 90% of the {learned}")
        ax.axhline(median, color="#888888", ls=":", lw=1, label="their median")
    label = f"threshold {threshold:.4g} ({rule})"
    lo, hi = (float(values.min()), float(values.max())) if len(values) else (threshold, threshold)
    reach = max(hi - lo, abs(hi), abs(lo), 1e-9)  # how far from the scores a line still reads beside them
    if lo - reach <= threshold <= hi + reach:
        ax.axhline(threshold, color="black", ls="--", lw=1, label=label)
    else:  # a line at 1e300 would squash every score onto one row
        side = "above" if threshold > hi else "below"
        ax.plot([], [], color="black", ls="--", lw=1, label=f"{label}, far {side} every score")
    ax.set_xlabel("drawing (data order)")
    ax.xaxis.get_major_locator().set_params(integer=True)  # a handful of drawings: no drawing 0.25
    if names is not None and n <= NAMED_TICKS:
        ax.set_xticks(range(n), names, rotation=30, ha="right", fontsize=8)
    ax.set_ylabel(SCORES[kind].axis, fontsize=8 if len(SCORES[kind].axis) > 50 else None)
    ax.set_title(f"anomaly scores: {n_flagged:,} of {n:,} flagged" + (f" ({len(idx):,} shown)" if len(idx) < n else ""))
    # Beside the axes, not inside: the highest scores, the ones a user looks for, would hide under it.
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1), fontsize=8, markerscale=2)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig


def gallery_image(
    images_u8: np.ndarray,
    values: np.ndarray,
    worst: np.ndarray,
    kind: str,
    planted: np.ndarray | None = None,
    names: list[str] | None = None,
    sources: tuple[np.ndarray, list[str], np.ndarray] | None = None,
):
    """The highest-scoring drawings, highest first, each labelled with its index (or its name,
    e.g. a picture file's; or, of several files, its file's category and its row there) and score.

    Planted drawings (when known) get a red frame, so a glance shows what the detector caught.
    """
    which = f"the highest {kind} score" if len(worst) == 1 else f"the {len(worst)} highest {kind} scores, highest first"
    tag, what = (lambda i: f"#{i}"), "#index"
    if names:
        tag, what = (lambda i: Path(names[i]).stem), "name"
    elif sources is not None:
        tag, what = (lambda i: f"{sources[1][sources[0][i]]} {sources[2][i]}"), "file, row"
    title = f"{which} ({what}, score)"
    if planted is not None:
        title += f"; planted in red: {int(planted[worst].sum())} of {len(worst)}"
    labels = [f"{tag(i)}  {values[i]:.{2 if abs(values[i]) < 100 else 0}f}" for i in worst]
    return grid_image(
        images_u8[worst],
        ncols=GALLERY_COLUMNS,
        title=title,
        labels=labels,
        highlight=planted[worst] if planted is not None else None,
    )


def run_anomalies(
    model: VAE,
    images_u8: np.ndarray,
    out_dir: Path,
    *,
    kind: str = DEFAULT_SCORE,
    planted: np.ndarray | None = None,
    threshold: float | None = None,
    top: int | None = None,
    quantile: float | None = None,
    gallery_size: int = 64,
    names: list[str] | None = None,
    store: Store | None = None,
    sources: tuple[np.ndarray, list[str], np.ndarray] | None = None,
    reference: Yardstick | None = None,
) -> dict[str, Any]:
    """Score, flag, and write the plot, the gallery of the worst and a CSV of every score
    (with a ``name`` column when ``names`` gives one per drawing, e.g. picture files; ``source``
    and ``source_row`` columns when ``sources`` gives each drawing's category, their names and
    each drawing's row in its own file, drawings of several files). ``store``: see :func:`scores`.
    ``reference``: drawings among which the drawings are scored and whose scores set the default
    threshold (see :func:`screen`); the CSV's ``percentile`` column then says what share of them
    score lower than each drawing."""
    if names is not None and len(names) != len(images_u8):
        raise ValueError(f"{len(names)} names for {len(images_u8)} drawings")
    values, resembles, yardstick = screen(model, images_u8, kind, store, reference)
    what = reference.what if reference is not None else LEARNED
    cut, rule = threshold_for(values, threshold, top, quantile, among=yardstick, among_what=what)
    flagged = values > cut
    ensure_dir(out_dir)
    worst = _highest(values, min(gallery_size, int(flagged.sum()) or gallery_size))
    above = None if yardstick is None else percentiles(values, yardstick)
    categories = model.config.categories
    extra = _extra_columns(planted, names, categories, resembles, sources, above)
    csv_path = _write_scores(out_dir / "anomaly_scores.csv", values, flagged, extra)
    figure = scores_figure(values, cut, rule, kind, planted, yardstick, names, what)
    plot = save_figure(figure, out_dir / "anomaly_scores.png")
    gallery = gallery_image(images_u8, values, worst, kind, planted, names, sources)
    gallery = save_image(gallery, out_dir / "anomaly_gallery.png")
    result: dict[str, Any] = {"score": kind, "n": int(len(values)), "threshold": cut, "rule": rule}
    if reference is not None:
        result.update(compared_with=int(len(reference.images)), compared_with_what=reference.what)
    result.update(n_flagged=int(flagged.sum()), **_worst_of(worst[:10], names, above))
    result.update(csv=str(csv_path), plot=str(plot), gallery=str(gallery))
    result.update(_what_was_found(values, flagged, planted, categories, resembles))
    if sources is not None:
        counts = np.bincount(sources[0][flagged], minlength=len(sources[1]))
        result["flagged_by_source"] = {name: int(n) for name, n in zip(sources[1], counts, strict=True)}
    write_json(out_dir / "anomalies.json", result)  # the report picks these numbers up
    return result


def _worst_of(worst: np.ndarray, names: list[str] | None, above: np.ndarray | None) -> dict[str, list]:
    """The highest-scoring drawings' positions, and their names and percentiles where known."""
    found: dict[str, list] = {"worst": worst.tolist()}
    if names is not None:
        found["worst_names"] = [names[i] for i in worst]
    if above is not None:
        found["worst_percentiles"] = [round(float(above[i]), 1) for i in worst]
    return found


def _highest(values: np.ndarray, m: int) -> np.ndarray:
    """Positions of the ``m`` highest values, highest first, ties in order of position: the start of
    ``np.argsort(-values, kind="stable")``, without sorting millions of scores for a gallery."""
    if 0 < m < len(values):
        cut = np.partition(values, len(values) - m)[len(values) - m]  # the m-th highest
        if np.isfinite(cut):
            ties_too = np.flatnonzero(values >= cut)
            return ties_too[np.argsort(-values[ties_too], kind="stable")][:m]
    return np.argsort(-values, kind="stable")[:m]


def _write_scores(path: Path, values: np.ndarray, flagged: np.ndarray, extra: dict[str, Callable[[int], Any]]) -> Path:
    """The CSV of every score, row by row from a generator: millions of rows are written, never held."""
    scored = enumerate(zip(values, flagged, strict=True))
    rows = ([i, f"{v:.6g}", int(f), *(column(i) for column in extra.values())] for i, (v, f) in scored)
    return write_csv(path, ["index", "score", "flagged", *extra], rows)


def _extra_columns(
    planted: np.ndarray | None,
    names: list[str] | None,
    categories: tuple[str, ...],
    resembles: np.ndarray | None,
    sources: tuple[np.ndarray, list[str], np.ndarray] | None,
    above: np.ndarray | None,
) -> dict[str, Callable[[int], Any]]:
    """The CSV's optional columns, each a function of a drawing's index: whether it was planted,
    its file's name, the category it most resembles, the file it came from and its row there,
    and the share of the yardstick's drawings that score lower."""
    extra: dict[str, Callable[[int], Any]] = {}
    if planted is not None:
        extra["planted"] = lambda i: int(planted[i])
    if names is not None:
        extra["name"] = [spreadsheet_text(n) for n in names].__getitem__
    if resembles is not None:
        shown = [spreadsheet_text(c) for c in categories]
        extra["category"] = lambda i: shown[resembles[i]]
    if sources is not None:
        labels, source_names, rows = sources
        files = [spreadsheet_text(f) for f in source_names]
        extra.update(source=lambda i: files[labels[i]], source_row=lambda i: int(rows[i]))
    if above is not None:
        extra["percentile"] = lambda i: f"{above[i]:.1f}"
    return extra


def _what_was_found(
    values: np.ndarray,
    flagged: np.ndarray,
    planted: np.ndarray | None,
    categories: tuple[str, ...],
    resembles: np.ndarray | None,
) -> dict[str, Any]:
    """How many drawings most resemble each category; with planted drawings, how well they were found."""
    found: dict[str, Any] = {}
    if resembles is not None:
        counts = np.bincount(resembles, minlength=len(categories))
        found["resembles"] = {name: int(c) for name, c in zip(categories, counts, strict=True)}
    if planted is not None:
        found.update(detection_metrics(values, planted))
        found["n_planted"] = int(planted.sum())
        found["flagged_planted"] = int((flagged & planted).sum())
    return found
