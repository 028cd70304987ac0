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
  head, which continues any line it is shown and so explains symbols as well as sheep). With
  ``elbo`` it decides which drawings are typical (as a typical set is: neither explained much worse
  than most drawings nor much better, by either): the reference of the neighbourhood scores and
  what trimmed training keeps.
- ``hog`` and ``pixels``: the local outlier factor (Breunig et al. 2000) of a drawing's stroke
  directions (HOG) or blurred pixels among the typical drawings (see :mod:`.neighbours`).
- ``elbo``, ``mse`` (the post's summed squared error) and ``features`` (distance to the nearest
  drawings in the encoder's last feature map; Bergman et al. 2020).

The model's likelihoods are read at each drawing's posterior mean: a drawing's score depends on
the drawing and the set it is scored with, not on a random draw of its code.

Planting other drawings among the sheep and training on the mixture: :mod:`.mixtures`; the plot,
gallery and CSV of ``sheep anomalies``: :mod:`.anomaly_outputs`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING

import numpy as np

from ..errors import ConfigError
from ..runs.streaming import Store

if TYPE_CHECKING:  # the torch-side modules load when a score is computed, not when the CLI starts
    from ..core.model import VAE

NEIGHBOURS = 20  # k of the features score
LOF_NEIGHBOURS = 100  # k of the hog and pixels scores' local outlier factor
# A set of fewer drawings is scored among a Yardstick (drawings the model learned from, or drew):
# neighbourhoods of LOF_NEIGHBOURS would span most of it, and a handful's median is no yardstick.
SMALL_SET = 5 * LOF_NEIGHBOURS
TYPICAL = 0.8  # share of the drawings, the most typical, that neighbourhood scores compare with
# Typical by both: per unit of ink from the code alone (symbols are not) and in all (kanji are not).
TYPICALITY = ("code-ink", "elbo")
MAD_TO_SD = 1.4826  # a normal's standard deviation over its median absolute deviation
MEAN_AD_TO_SD = 1.2533  # ... over its mean absolute deviation, sqrt(pi / 2)
CODES = 0  # posterior draws the model's likelihoods are averaged over; 0: read at the posterior mean
# Relative differences this small are float32 rounding, not evidence: the same drawing scored at
# another place in a batch can differ by a unit in the last place (2**-23); this allows eight.
ROUNDING = 2**-20


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

    name = f"{'+'.join(kinds)}@{_codes_tag(samples)}"
    table = store.column(name, len(images_u8), rows, width=len(kinds), desc=f"model ({', '.join(kinds)})")
    return {k: (table if len(kinds) == 1 else table[:, i]) for i, k in enumerate(kinds)}


def _codes_tag(samples: int) -> str:
    """Which codes the likelihoods were read at, in the names of stored columns, so that a column
    computed one way is never reused for another."""
    return "z-mean" if samples == 0 else f"z-{samples}-draws"


def _model_score(kind: str) -> Callable[[VAE, np.ndarray, int, int, Store], np.ndarray]:
    def compute(model: VAE, images_u8: np.ndarray, samples: int, seed: int, store: Store) -> np.ndarray:
        return _model_columns(model, images_u8, (kind,), samples, seed, store)[kind]

    return compute


def _neighbourhood_score(describe: str) -> Callable[[VAE, np.ndarray, int, int, Store], np.ndarray]:
    def compute(model: VAE, images_u8: np.ndarray, samples: int, seed: int, store: Store) -> np.ndarray:
        typical = typical_drawings(model, images_u8, samples, seed, store)
        return _outlier_factor(images_u8, describe, typical, samples, seed, store)

    return compute


def typical_drawings(
    model: VAE,
    images_u8: np.ndarray,
    samples: int = CODES,
    seed: int = 0,
    store: Store | None = None,
    share: float = TYPICAL,
) -> np.ndarray:
    """(N,) bool: the ``share`` of the drawings that neighbourhood scores compare every drawing
    with, and that trimmed training keeps: a typical set (Nalisnick et al. 2019) by the TYPICALITY
    likelihoods, both tails of each left out. Intruders that neighbour each other (many of one
    kind) are left out of it, so they stand out, not hide: those the code explains badly (less ink,
    other shapes), those it explains unusually well per unit of ink (more ink than most, in easy
    strokes) and those that cost far more in all (many more strokes)."""
    return _typical(_model_columns(model, images_u8, TYPICALITY, samples, seed, store or Store()), share)


def _typical(columns: dict[str, np.ndarray], share: float = TYPICAL) -> np.ndarray:
    """The typical set of the model's columns (which hold at least the TYPICALITY ones)."""
    return typical_set(*(columns[k] for k in TYPICALITY), share=share)


def typical_set(*statistics: np.ndarray, share: float = TYPICAL) -> np.ndarray:
    """(N,) bool: the ``share`` of the drawings nearest the typical one by every statistic: ranked
    by the largest of their distances from each statistic's median, in robust spreads (robust_z),
    so that a drawing far out on any one is left out, however many drawings are as far."""
    if not len(statistics[0]):
        return np.zeros(0, bool)
    distance = np.abs(robust_z(statistics[0]))
    for s in statistics[1:]:  # one statistic's distances at a time: a file of millions holds two
        np.maximum(distance, np.abs(robust_z(s)), out=distance)
    return distance <= np.quantile(distance, share)


def _outlier_factor(
    images_u8: np.ndarray, describe: str, typical: np.ndarray, samples: int, seed: int, store: Store
) -> np.ndarray:
    from .descriptors import DESCRIPTORS
    from .neighbours import neighbourhood_scorer

    score = neighbourhood_scorer(images_u8, DESCRIPTORS[describe], LOF_NEIGHBOURS, "lof", seed=seed, eligible=typical)
    # named for its reference, so that columns kept by a version with another one are not reused
    name = f"lof-{describe}@typical-{'+'.join(TYPICALITY)}@{_codes_tag(samples)}"
    return store.column(name, len(images_u8), score, desc=f"neighbours ({describe})")


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
    columns = _model_columns(model, images_u8, ("elbo-ink", *TYPICALITY), samples, seed, store)  # one pass
    typical = _typical(columns)
    parts = [columns["elbo-ink"]]
    parts += [_outlier_factor(images_u8, describe, typical, samples, seed, store) for describe in ("hog", "blurred")]
    total = robust_z(parts[0])
    for part in parts[1:]:  # summed in turn, as np.mean over them would: one z-score at a time in memory
        total += robust_z(part)
    return np.divide(total, len(parts), out=total)


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
            return batched_model_scores(model, part, ("elbo-ink",), CODES, 0, category=label)["elbo-ink"]

        columns.append(store.column(f"elbo-ink@{name}@{_codes_tag(CODES)}", len(images_u8), rows))
    return np.argmin(np.stack(columns, axis=1), axis=1)


LEARNED = "drawings the model learned from"
DRAWN = "drawings the model drew"


@dataclass(frozen=True)
class Yardstick:
    """Drawings a small set is scored among, uint8 (R, 28, 28), and what they are, in words."""

    images: np.ndarray
    what: str = LEARNED


def screen(
    model: VAE, images_u8: np.ndarray, kind: str, store: Store | None = None, reference: Yardstick | None = None
) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None]:
    """What `sheep anomalies` computes: (scores, the category each drawing most resembles or None,
    the reference's scores or None). With a ``reference`` the drawings are scored among its
    drawings (in memory: a small set), so that a handful is judged against typical drawings
    rather than each other."""
    if reference is None:
        return scores(model, images_u8, kind, store=store), resemblance(model, images_u8, store), None
    both = scores(model, np.concatenate([reference.images, images_u8]), kind)
    n = len(reference.images)
    return both[n:], resemblance(model, images_u8, store), both[:n]


def robust_z(values: np.ndarray) -> np.ndarray:
    """(values - median) / (1.4826 * median absolute deviation): spreads from the typical drawing,
    in units that one outlier cannot inflate (1.4826 makes it the standard deviation for a normal).
    Values equal up to rounding count as equal. Where over half are equal the MAD is 0; the mean
    absolute deviation (times 1.2533, the same for a normal) takes its place, and values that are
    all equal are all 0. (N,) float64, from values of any float type; two arrays of N in memory."""
    work = np.array(values, np.float64)  # also the medians' scratch: they reorder it
    centre = np.median(work, overwrite_input=True)
    offset = np.subtract(values, centre, dtype=np.float64)
    deviation = np.abs(offset, out=work)
    near = deviation <= _rounding(values)
    offset[near] = deviation[near] = 0  # copies of the typical drawing are typical
    mean_deviation = np.mean(deviation)  # before the median reorders it
    spread = MAD_TO_SD * np.median(deviation, overwrite_input=True) or MEAN_AD_TO_SD * mean_deviation
    return np.divide(offset, spread, out=offset) if spread > 0 else np.zeros(len(values))


def _rounding(values: np.ndarray) -> float:
    """The largest difference between two of ``values`` that is rounding (see ROUNDING)."""
    return ROUNDING * float(np.max(np.abs([np.min(values), np.max(values)]))) if len(values) else 0.0


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
    samples: int = CODES,
    seed: int = 0,
    store: Store | None = None,
) -> np.ndarray:
    """Anomaly score of every drawing, (N,) float64 (see SCORES). ``samples``: the codes the
    model's likelihoods are read at (0: the posterior mean, the same likelihoods for a drawing
    wherever it is; n: their mean over n posterior draws, from ``seed``, which also seeds the
    neighbourhoods' reference sample). ``store``: keep the costly per-drawing columns in a folder
    as they are computed, so that a killed run continues (default: in memory)."""
    if kind not in SCORES:
        raise ConfigError(f"unknown score {kind!r}; choose {', '.join(SCORES)}")
    if samples < 0:
        raise ValueError(f"samples must be >= 0 (0: the posterior mean), got {samples}")
    from ..core.infer import check_drawings

    check_drawings(images_u8)
    return np.asarray(SCORES[kind].compute(model, images_u8, samples, seed, store or Store()), np.float64)


def threshold_for(
    values: np.ndarray,
    threshold: float | None = None,
    top: int | None = None,
    quantile: float | None = None,
    among: np.ndarray | None = None,
    among_what: str = LEARNED,
) -> tuple[float, str]:
    """The score above which a drawing is flagged, and how it was chosen (default: quantile 0.99,
    of ``among``'s scores when given: those of the ``among_what``)."""
    if threshold is not None:
        return float(threshold), f"score > {threshold:g}"
    if top is not None:
        top = min(max(top, 1), len(values))
        return _just_below(np.sort(values)[-top]), f"top {top}"
    q = 0.99 if quantile is None else quantile
    rule = f"above the {q:g} quantile"
    if among is not None:
        rule += f" of {len(among):,} {among_what}"
    among = values if among is None else among
    if not len(among):
        return 0.0, rule
    cut, top, rounding = float(np.quantile(among, q)), float(among.max()), _rounding(among)
    if top - among.min() <= rounding:  # all equal: none stands out
        cut = top
    elif top - cut <= rounding:  # a tie at the top: flag it, not nothing
        cut = _just_below(top - rounding)
    return cut, rule


def percentiles(values: np.ndarray, among: np.ndarray) -> np.ndarray:
    """(N,) the share of ``among`` scoring lower than each of ``values``, in %: how much less
    typical a drawing is than the drawings it is judged against."""
    return np.searchsorted(np.sort(among), values, side="left") / max(len(among), 1) * 100


def _just_below(value: float) -> float:
    """The largest float below ``value``: a cut that flags ``value`` itself."""
    return float(np.nextafter(value, -np.inf))


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
