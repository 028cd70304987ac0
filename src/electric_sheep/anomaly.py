"""Anomaly detection: which drawings are probably not sheep.

Scores, per drawing, higher = more anomalous (the registry ``SCORES`` says what each is for):

- ``combined`` (default): the mean of three that look at a drawing in different ways, each as a
  robust z-score (spreads from the typical drawing): ``elbo-ink``, ``hog`` and ``pixels``. A
  score that reads only the likelihood misses intruders the model generalises to, one that reads
  only neighbours misses intruders that are many and alike; standardised evidence from any of the
  three counts, so it holds whether intruders carry less ink than a sheep or more.
- ``elbo-ink``: the negative ELBO per unit of ink. Raw errors grow with the ink, so a simple
  drawing of another kind would look more sheep-like than an elaborate sheep; per unit of ink the
  question is "how badly is each stroke explained?".
- ``code-ink``: the same with every pixel drawn from the code alone (the decoder without its pixel
  head, which continues any line it is shown and so explains symbols as well as sheep). It decides
  which drawings are typical: the reference of the neighbourhood scores, and what trimmed training
  keeps.
- ``hog`` and ``pixels``: the local outlier factor (Breunig et al. 2000) of a drawing's stroke
  directions (HOG) or blurred pixels among the typical drawings (see :mod:`.neighbours`).
- ``elbo``, ``mse`` (the post's summed squared error) and ``features`` (distance to the nearest
  drawings in the encoder's last feature map; Bergman et al. 2020).

``train_on_mixture`` is the honest case, a model trained on the contaminated drawings themselves,
made robust by trimming (train, set aside the drawings the first model finds least typical, train a
fresh model on the rest). ``mix`` plants drawings of another kind among the sheep, with labels, so
that AUROC, average precision and precision at the number planted can be measured.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from .errors import ConfigError, SheepWarning
from .fileio import ensure_dir, write_csv, write_json, write_npy
from .plots import grid_image, pyplot, save_figure, save_image
from .streaming import Store

if TYPE_CHECKING:  # the torch-side modules load when a score is computed, not when the CLI starts
    from .model import VAE, ModelConfig

NEIGHBOURS = 20  # k of the features score
LOF_NEIGHBOURS = 100  # k of the hog and pixels scores' local outlier factor
TYPICAL = 0.8  # share of the drawings that neighbourhood scores compare with
TRIM = 0.2  # share set aside by trimmed training
TRIM_SCORE = "code-ink"  # what trimmed training sets aside by: it finds groups of intruders
GALLERY_COLUMNS = 8  # the gallery of the worst drawings: 64 of them make a square


@dataclass(frozen=True)
class Score:
    """One anomaly score (higher = more anomalous): how it is computed and what it is for."""

    # (model, uint8 images, samples, seed, store) -> (N,); the store keeps the costly columns
    compute: Callable[[VAE, np.ndarray, int, int, Store], np.ndarray]
    axis: str  # the scores plot's y axis
    purpose: str  # one line for --help and README


def _model_columns(
    model: VAE, images_u8: np.ndarray, kinds: tuple[str, ...], samples: int, seed: int, store: Store
) -> dict[str, np.ndarray]:
    """The model's scores ``kinds`` of every drawing, from one pass over them, kept in ``store``."""
    from .model_scores import batched_model_scores

    def rows(start: int, stop: int) -> np.ndarray:
        values = batched_model_scores(model, np.asarray(images_u8[start:stop]), kinds, samples, seed)
        return np.stack([values[k] for k in kinds], axis=1)

    table = store.column("+".join(kinds), len(images_u8), rows, width=len(kinds))
    return {k: (table if len(kinds) == 1 else table[:, i]) for i, k in enumerate(kinds)}


def _model_score(kind: str) -> Callable[[VAE, np.ndarray, int, int, Store], np.ndarray]:
    def compute(model: VAE, images_u8: np.ndarray, samples: int, seed: int, store: Store) -> np.ndarray:
        return _model_columns(model, images_u8, (kind,), samples, seed, store)[kind]

    return compute


def _neighbourhood_score(describe: str) -> Callable[[VAE, np.ndarray, int, int, Store], np.ndarray]:
    def compute(model: VAE, images_u8: np.ndarray, samples: int, seed: int, store: Store) -> np.ndarray:
        code_ink = _model_columns(model, images_u8, ("code-ink",), samples, seed, store)["code-ink"]
        return _outlier_factor(images_u8, describe, _typical(code_ink), seed, store)

    return compute


def typical_drawings(model: VAE, images_u8: np.ndarray, samples: int = 1, seed: int = 0) -> np.ndarray:
    """(N,) bool: the TYPICAL share of the drawings whose code explains them best (lowest
    code-ink), the reference that neighbourhood scores compare every drawing with. Intruders that
    neighbour each other (many of one kind) are left out of it, so they stand out, not hide."""
    return _typical(_model_score("code-ink")(model, images_u8, samples, seed, Store()))


def _typical(code_ink: np.ndarray) -> np.ndarray:
    return code_ink <= np.quantile(code_ink, TYPICAL) if len(code_ink) else np.zeros(0, bool)


def _outlier_factor(images_u8: np.ndarray, describe: str, typical: np.ndarray, seed: int, store: Store) -> np.ndarray:
    from .descriptors import DESCRIPTORS
    from .neighbours import neighbourhood_scorer

    score = neighbourhood_scorer(images_u8, DESCRIPTORS[describe], LOF_NEIGHBOURS, "lof", seed=seed, eligible=typical)
    return store.column(f"lof-{describe}", len(images_u8), score)


def _features(model: VAE, images_u8: np.ndarray, samples: int, seed: int, store: Store) -> np.ndarray:
    from .model_scores import unit_features
    from .neighbours import neighbourhood_scorer

    score = neighbourhood_scorer(images_u8, partial(unit_features, model), NEIGHBOURS, "knn", seed=seed)
    return store.column("features", len(images_u8), score)


def _combined(model: VAE, images_u8: np.ndarray, samples: int, seed: int, store: Store) -> np.ndarray:
    """The mean of elbo-ink and the hog and pixels outlier factors (against one typical
    reference), each as a robust z-score among the drawings scored."""
    if not len(images_u8):
        return np.zeros(0)
    both = _model_columns(model, images_u8, ("elbo-ink", "code-ink"), samples, seed, store)  # one pass
    typical = _typical(both["code-ink"])
    parts = [both["elbo-ink"]]
    parts += [_outlier_factor(images_u8, describe, typical, seed, store) for describe in ("hog", "blurred")]
    return np.mean([robust_z(p) for p in parts], axis=0)


def resemblance(model: VAE, images_u8: np.ndarray, store: Store | None = None) -> np.ndarray | None:
    """For a class-conditional model, the category each drawing most resembles: (N,) the index of
    the one whose label explains it best (lowest elbo-ink); None for any other model."""
    if not model.config.categories:
        return None
    from .model_scores import batched_model_scores

    store, columns = store or Store(), []
    for label, name in enumerate(model.config.categories):

        def rows(start: int, stop: int, label: int = label) -> np.ndarray:
            part = np.asarray(images_u8[start:stop])
            return batched_model_scores(model, part, ("elbo-ink",), 1, 0, category=label)["elbo-ink"]

        columns.append(store.column(f"elbo-ink@{name}", len(images_u8), rows))
    return np.argmin(np.stack(columns, axis=1), axis=1)


def screen(
    model: VAE, images_u8: np.ndarray, kind: str, store: Store | None = None
) -> tuple[np.ndarray, np.ndarray | None]:
    """(scores, the category each drawing most resembles or None): what `sheep anomalies` computes."""
    return scores(model, images_u8, kind, store=store), resemblance(model, images_u8, store)


def robust_z(values: np.ndarray) -> np.ndarray:
    """(values - median) / (1.4826 * median absolute deviation): spreads from the typical drawing,
    in units that one outlier cannot inflate (1.4826 makes it the standard deviation for a normal)."""
    centre = np.median(values)
    spread = 1.4826 * np.median(np.abs(values - centre))
    return (values - centre) / max(spread, np.finfo(float).tiny)


SCORES: dict[str, Score] = {
    "combined": Score(
        _combined,
        "mean robust z-score of elbo-ink, hog and pixels",
        "the mean of elbo-ink, hog and pixels, each in spreads from the typical drawing: holds whether "
        "intruders carry less ink than a sheep or more",
    ),
    "elbo-ink": Score(
        _model_score("elbo-ink"),
        "negative ELBO per unit of ink (nats)",
        "how badly the model explains each stroke",
    ),
    "code-ink": Score(
        _model_score("code-ink"),
        "negative ELBO per unit of ink, pixels from the code alone (nats)",
        "how little of each stroke the drawing's code explains (the decoder without its pixel head)",
    ),
    "hog": Score(
        _neighbourhood_score("hog"),
        f"local outlier factor of its stroke directions (HOG, k = {LOF_NEIGHBOURS})",
        "how unusual its stroke directions are among its nearest drawings",
    ),
    "pixels": Score(
        _neighbourhood_score("blurred"),
        f"local outlier factor of its blurred pixels (k = {LOF_NEIGHBOURS})",
        "how unusual its shape is among its nearest drawings",
    ),
    "elbo": Score(
        _model_score("elbo"),
        "negative ELBO (nats)",
        "the negative ELBO: high for more ink or detail than a sheep",
    ),
    "mse": Score(
        _model_score("mse"),
        "summed squared error",
        "the post's summed squared reconstruction error",
    ),
    "features": Score(
        _features,
        f"mean distance to {NEIGHBOURS} nearest (unit-length encoder features)",
        "distance to the nearest drawings in what the encoder sees",
    ),
}
DEFAULT_SCORE = "combined"


def scores(
    model: VAE,
    images_u8: np.ndarray,
    kind: str = DEFAULT_SCORE,
    samples: int = 1,
    seed: int = 0,
    store: Store | None = None,
) -> np.ndarray:
    """Anomaly score of every drawing, (N,) float64 (see SCORES). ``store``: keep the costly
    per-drawing columns in a folder as they are computed, so that a killed run continues (default:
    in memory)."""
    if kind not in SCORES:
        raise ConfigError(f"unknown score {kind!r}; choose {', '.join(SCORES)}")
    from .infer import check_drawings

    check_drawings(images_u8)
    return SCORES[kind].compute(model, images_u8, samples, seed, store or Store())


def train_on_mixture(
    images_u8: np.ndarray,
    val_u8: np.ndarray,
    model_cfg: ModelConfig,
    run_dir: str | Path,
    *,
    epochs: int,
    trim: float = TRIM,
    seed: int = 0,
    progress: bool = True,
    log: Callable[[str], None] = print,
    **overrides: Any,
) -> VAE:
    """The honest case: train on contaminated drawings, robustly, and return the model.

    Trimmed training (a trimmed-likelihood estimator in two stages): stage 1 trains on every
    drawing; the ``trim`` share it finds least typical (TRIM_SCORE) is set aside, and stage 2
    trains a fresh model on the rest. Trained on everything, a model learns to explain the
    intruders too, and they stop standing out. ``trim=0`` trains once. Stage 1 is kept in
    ``run_dir/stage1``, the kept mask in ``run_dir/kept.npy``; ``run_dir`` itself is the stage-2
    run. ``overrides`` are further
    :class:`~electric_sheep.train.TrainConfig` fields (batch_size, kl_start, ...).
    """
    from .checkpoint import load_model
    from .train import make_train_config, train

    if not 0 <= trim < 1:
        raise ConfigError(f"trim must be in [0, 1), got {trim:g}")
    run_dir = Path(run_dir)
    cfg = make_train_config(model_cfg.preset, epochs=epochs, seed=seed, **overrides)
    info = {"source": None, "note": "anomaly mixture", "n_train": int(len(images_u8))}
    first_dir = run_dir / "stage1" if trim > 0 else run_dir
    if trim > 0:
        log(f"stage 1 of 2: training on all {len(images_u8)} drawings")
    train(images_u8, val_u8, model_cfg, cfg, first_dir, data_info=info, progress=progress, log=log)
    first = load_model(first_dir)
    if trim == 0:
        return first
    values = scores(first, images_u8, TRIM_SCORE)
    kept = values <= np.quantile(values, 1 - trim)
    write_npy(run_dir / "kept.npy", kept)
    log(f"stage 2 of 2: training a fresh model on the {int(kept.sum())} least anomalous ({1 - trim:.0%})")
    info.update(n_train=int(kept.sum()), trim=trim)
    train(images_u8[kept], val_u8, model_cfg, cfg, run_dir, data_info=info, progress=progress, log=log)
    return load_model(run_dir)


@dataclass
class Mixture:
    """Sheep with planted drawings of another kind, shuffled; ``planted`` marks the intruders."""

    images: np.ndarray  # (N, 28, 28) uint8
    planted: np.ndarray  # (N,) bool
    source_index: np.ndarray  # (N,) index into the sheep (planted False) or the others (True)


def mixture_run(
    images_u8: np.ndarray,
    val_u8: np.ndarray,
    model_cfg: ModelConfig,
    out_dir: str | Path,
    *,
    epochs: int,
    trim: float = TRIM,
    seed: int = 0,
    progress: bool = True,
    log: Callable[[str], None] = print,
) -> VAE:
    """:func:`train_on_mixture` into ``out_dir/mixture_run``: trained in a temporary folder beside
    it, which replaces it only when done, so Ctrl-C or an error keeps an earlier call's run."""
    import shutil
    import tempfile

    out_dir = Path(out_dir)
    ensure_dir(out_dir)
    tmp = Path(tempfile.mkdtemp(prefix=".mixture_run-", dir=out_dir))
    try:
        model = train_on_mixture(
            images_u8, val_u8, model_cfg, tmp, epochs=epochs, trim=trim, seed=seed, progress=progress, log=log
        )
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    target = out_dir / "mixture_run"
    old = target.rename(tmp.with_name(tmp.name + "-old")) if target.exists() else None
    tmp.rename(target)  # a moment with no mixture_run, never one with neither run on disk
    if old is not None:
        shutil.rmtree(old)
    return model


def warn_renderers_differ() -> None:
    """Google's renderer and ours differ slightly: mixed, a detector could find the renderer rather
    than the drawing."""
    warnings.warn(
        "mixing Google-rendered bitmaps with strokes rasterised here: the scores may partly tell the two "
        "renderers apart rather than the drawings (mix like with like)",
        SheepWarning,
        stacklevel=2,
    )


def mix(sheep_u8: np.ndarray, other_u8: np.ndarray, fraction: float, seed: int = 0) -> Mixture:
    """Drop ``fraction`` x (number of sheep) drawings of ``other_u8`` among the sheep and shuffle.

    When ``other_u8`` holds fewer, all of them are used and a warning says so.
    """
    if not 0 < fraction <= 1:
        raise ConfigError(f"the --mix fraction must be in (0, 1], got {fraction:g}")
    rng = np.random.default_rng(seed)
    wanted = max(1, int(round(fraction * len(sheep_u8))))
    n_other = min(wanted, len(other_u8))
    if n_other < wanted:
        warnings.warn(
            f"asked for {wanted} planted drawings ({fraction:g} of {len(sheep_u8)}) but the other data "
            f"holds only {len(other_u8)}: planting {n_other}",
            SheepWarning,
            stacklevel=2,
        )
    chosen = np.sort(rng.choice(len(other_u8), size=n_other, replace=False))
    images = np.concatenate([sheep_u8, other_u8[chosen]])
    planted = np.concatenate([np.zeros(len(sheep_u8), bool), np.ones(n_other, bool)])
    source = np.concatenate([np.arange(len(sheep_u8)), chosen])
    order = rng.permutation(len(images))
    return Mixture(np.ascontiguousarray(images[order]), planted[order], source[order])


def threshold_for(
    values: np.ndarray, threshold: float | None = None, top: int | None = None, quantile: float | None = None
) -> tuple[float, str]:
    """The score above which a drawing is flagged, and how it was chosen (default: quantile 0.99)."""
    if threshold is not None:
        return float(threshold), f"score > {threshold:g}"
    if top is not None:
        top = min(max(top, 1), len(values))
        return float(np.sort(values)[-top]) - 1e-12, f"top {top}"
    q = 0.99 if quantile is None else quantile
    return float(np.quantile(values, q)), f"above the {q:g} quantile"


def detection_metrics(values: np.ndarray, planted: np.ndarray) -> dict[str, float]:
    """AUROC, average precision, and precision among the top-k scores with k = number planted."""
    from sklearn.metrics import average_precision_score, roc_auc_score

    k = int(planted.sum())
    top = np.argsort(-values, kind="stable")[:k]
    return {
        "auroc": float(roc_auc_score(planted, values)),
        "average_precision": float(average_precision_score(planted, values)),
        "precision_at_k": float(planted[top].mean()) if k else float("nan"),
        "k": k,
    }


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


def scores_figure(values: np.ndarray, threshold: float, rule: str, kind: str, planted: np.ndarray | None = None):
    """Scores in data order with the threshold line; planted drawings in red when known."""
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
        ax.scatter(idx[~planted], values[~planted], s=size, color="#3b6ea5", label="sheep", linewidths=0)
        ax.scatter(idx[planted], values[planted], s=3 * size, color="#c0392b", label="planted", linewidths=0)
    ax.axhline(threshold, color="black", ls="--", lw=1, label=f"threshold {threshold:.1f} ({rule})")
    ax.set_xlabel("drawing (data order)")
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
):
    """The highest-scoring drawings, highest first, each labelled with its index (or its name,
    e.g. a picture file's) and score.

    Planted drawings (when known) get a red frame, so a glance shows what the detector caught.
    """
    title = f"the {len(worst)} highest {kind} scores, highest first ({'name' if names else '#index'} score)"
    if planted is not None:
        title += f"; planted in red: {int(planted[worst].sum())} of {len(worst)}"
    labels = [
        f"{Path(names[i]).stem if names else f'#{i}'}  {values[i]:.{2 if abs(values[i]) < 100 else 0}f}" for i in worst
    ]
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
) -> dict[str, Any]:
    """Score, flag, and write the plot, the gallery of the worst and a CSV of every score
    (with a ``name`` column when ``names`` gives one per drawing, e.g. picture files).
    ``store``: see :func:`scores`."""
    values, resembles = screen(model, images_u8, kind, store)
    cut, rule = threshold_for(values, threshold, top, quantile)
    flagged = values > cut
    ensure_dir(out_dir)
    worst = np.argsort(-values, kind="stable")[: min(gallery_size, int(flagged.sum()) or gallery_size)]
    if names is not None and len(names) != len(values):
        raise ValueError(f"{len(names)} names for {len(values)} drawings")
    categories = model.config.categories
    rows = (  # a generator: millions of rows are written, never held
        [i, f"{v:.6g}", int(f)]
        + ([int(planted[i])] if planted is not None else [])
        + ([names[i]] if names is not None else [])
        + ([categories[resembles[i]]] if resembles is not None else [])
        for i, (v, f) in enumerate(zip(values, flagged, strict=True))
    )
    header = ["index", "score", "flagged"] + (["planted"] if planted is not None else []) + (["name"] if names else [])
    csv_path = write_csv(out_dir / "anomaly_scores.csv", header + (["category"] if resembles is not None else []), rows)
    plot = save_figure(scores_figure(values, cut, rule, kind, planted), out_dir / "anomaly_scores.png")
    gallery = save_image(gallery_image(images_u8, values, worst, kind, planted, names), out_dir / "anomaly_gallery.png")
    result: dict[str, Any] = {
        "score": kind,
        "n": int(len(values)),
        "threshold": cut,
        "rule": rule,
        "n_flagged": int(flagged.sum()),
        "worst": worst[:10].tolist(),
        **({"worst_names": [names[i] for i in worst[:10]]} if names is not None else {}),
        "csv": str(csv_path),
        "plot": str(plot),
        "gallery": str(gallery),
    }
    if resembles is not None:  # how many drawings most resemble each category
        counts = np.bincount(resembles, minlength=len(categories))
        result["resembles"] = {name: int(c) for name, c in zip(categories, counts, strict=True)}
    if planted is not None:
        result.update(detection_metrics(values, planted))
        result["n_planted"] = int(planted.sum())
        result["flagged_planted"] = int((flagged & planted).sum())
    write_json(out_dir / "anomalies.json", result)  # the report picks these numbers up
    return result
