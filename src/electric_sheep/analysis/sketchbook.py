"""What ``sheep app`` computes, without the web page: a drawing made on a canvas, as the model
sees it, remembers it and judges it; dreams decoded from a chosen point; interpolations.

Everything here takes and returns arrays (and Pillow images for the map), so the Gradio page in
:mod:`electric_sheep.render.app` only wires inputs to these functions.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from ..core.model import VAE
from ..data.raster import render
from ..errors import DataError, SheepError
from ..render.plots import CATEGORY_COLOURS
from ..runs.fileio import read_npy
from .anomaly import percentiles, resemblance, scores, threshold_for
from .generate import decode_codes, interpolate, manifold_axes, prior_codes, reconstruct
from .latent import encode

SCORE = "elbo-ink"  # per drawing, so one sketch is judged alone; `combined` compares drawings with each other
NEIGHBOURS = 6  # real drawings shown beside a sketch
REFERENCE_LIMIT = 4000  # drawings of the run's data kept for the map, the percentiles and neighbours
MAX_SKETCH_CHARS = 1_000_000  # a sketch sent as longer JSON (some 50,000 points) is refused, not parsed
MIN_INK_SPAN = 8  # a drawing whose points fit in a box this small (canvas pixels) is a dot, not a drawing
MAP_PX = 360  # side of the map picture
SPAN = 3.0  # the dream sliders' least half-range, in standard deviations along the map's axes


@dataclass
class Reference:
    """A model and the drawings it is compared with: their codes, 2-D map points and scores."""

    model: VAE
    images: np.ndarray | None  # (N, 28, 28) uint8, or None when the run has no data to show
    codes: np.ndarray  # (N, D)
    centre: np.ndarray  # (D,) and axes (2, D): the map's plane (the latent plane itself for D = 2)
    axes: np.ndarray
    scores: np.ndarray  # (N,), higher = less typical
    threshold: float
    rule: str
    span: float = SPAN  # the dream sliders' half-range: at least SPAN, wide enough for the prior's codes
    background: Image.Image | None = field(default=None, repr=False)  # the map's dots, drawn once
    subject: str | None = "a sheep"  # what the model learned to draw ("a cat"); None: not known
    categories: tuple[np.ndarray, list[str]] | None = None  # of drawings of several files: each one's, names

    @cached_property
    def plane(self) -> np.ndarray:
        """The reference codes on the map, (N, 2)."""
        return self.to_plane(self.codes)

    def view(self, margin: float = 0.08) -> tuple[np.ndarray, np.ndarray]:
        """The map's corners: the codes' extent and a margin, at least the sliders' range."""
        lo, hi = np.minimum(self.plane.min(axis=0), -self.span), np.maximum(self.plane.max(axis=0), self.span)
        pad = (hi - lo) * margin
        return lo - pad, hi + pad

    def to_plane(self, codes: np.ndarray) -> np.ndarray:
        """(N, D) codes -> (N, 2) coordinates on the map, in units of its axes."""
        solved, *_ = np.linalg.lstsq(self.axes.T.astype(np.float64), (codes - self.centre).T, rcond=None)
        return solved.T

    def from_plane(self, point: tuple[float, float]) -> np.ndarray:
        """A point of the map -> its (D,) code."""
        return (self.centre + point[0] * self.axes[0] + point[1] * self.axes[1]).astype(np.float32)


def make_reference(
    model: VAE, images: np.ndarray | None, saved_codes: np.ndarray | None = None, saved_scores: np.ndarray | None = None
) -> Reference:
    """Encode and score ``images`` (at most REFERENCE_LIMIT of them). Without images (the built-in
    model ships no drawings) the map shows ``saved_codes`` and percentiles come from
    ``saved_scores``, the scores of the same held-out drawings; failing those, from drawings
    decoded from the prior."""
    if images is not None:
        images = np.ascontiguousarray(images[:REFERENCE_LIMIT])
        codes, values = encode(model, images), scores(model, images, SCORE)
    prior = prior_codes(model, 1000, seed=0)
    if images is None:
        codes = saved_codes if saved_codes is not None else prior
        values = saved_scores if saved_scores is not None else scores(model, _as_u8(decode_codes(model, prior)), SCORE)
    centre, axes = manifold_axes(model.config.latent_dim, codes)
    threshold, rule = threshold_for(values)
    ref = Reference(model, images, codes, centre, axes, values, threshold, rule)
    # The prior's codes spread wider than the codes' means on the map: "surprise me" stays in range.
    ref.span = max(SPAN, float(np.ceil(np.quantile(np.abs(ref.to_plane(prior)), 0.999))))
    return ref


class SketchProblem(SheepError):
    """A sketch that is not a drawing to look at (empty, a dot, too large): said in the page."""


def sketch_bitmap(sketch: str | None, subject: str | None = "a sheep") -> np.ndarray:
    """A sketch, as the page sends it (JSON strokes ``[[[x, y], ...], ...]`` in canvas pixels, y
    down), as the 28x28 uint8 drawing the model sees: rendered by the same rasteriser as the
    stroke files; a :class:`SketchProblem` saying what is wrong otherwise."""
    strokes = _strokes(sketch)
    points = np.concatenate(strokes) if strokes else np.zeros((0, 2))
    if len(points) == 0:
        raise SketchProblem(f"the canvas is empty: draw {subject or 'something'}")
    if (points.max(axis=0) - points.min(axis=0)).max() < MIN_INK_SPAN:
        raise SketchProblem(f"that is a single dot: draw {subject or 'more'}")
    return render(strokes)


def stroke_count(sketch: str | None) -> int:
    """How many strokes a sketch has, read as :func:`sketch_bitmap` reads it."""
    return len(_strokes(sketch))


def _strokes(sketch: str | None) -> list[np.ndarray]:
    if not sketch:
        return []
    if len(sketch) > MAX_SKETCH_CHARS:
        raise SketchProblem("the drawing is too large to look at here: clear it and draw again")
    try:
        strokes = [np.asarray(stroke, np.float64).reshape(-1, 2) for stroke in json.loads(sketch)]
    except (ValueError, TypeError, RecursionError, OverflowError):  # not JSON of numbers, or a 400-digit one
        raise SketchProblem("the page sent a drawing that could not be read: clear it and draw again") from None
    if not all(np.isfinite(s).all() for s in strokes):
        raise SketchProblem("the page sent a drawing that could not be read: clear it and draw again")
    return [s for s in strokes if len(s)]


@dataclass
class Verdict:
    """What the model makes of one drawing."""

    bitmap: np.ndarray  # (28, 28) uint8, as the model sees it
    reconstruction: np.ndarray  # (28, 28) float in [0, 1]
    score: float
    percentile: float  # share of the reference drawings with a lower score, in %
    sheep_like: bool  # at or below the reference's threshold
    point: np.ndarray  # (2,) on the map
    neighbours: np.ndarray | None  # (NEIGHBOURS, 28, 28) uint8 real drawings nearest in code space
    resembles: str | None = None  # of a class-conditional model: the category whose label explains it best

    def summary(self, threshold: float, rule: str, subject: str | None = "a sheep") -> str:
        """In words, of a model that learned to draw ``subject`` (None: its drawings, unnamed)."""
        like = subject or "the drawings it learned from"
        verdict = f"looks like {like}" if self.sheep_like else f"does not look like {like}"
        closest = f"; the category it is closest to: {self.resembles}" if self.resembles else ""
        return (
            f"{verdict}: score {self.score:.3f} ({SCORE}), less typical than {self.percentile:.0f}% "
            f"of the reference drawings; flagged above {threshold:.3f} ({rule}){closest}"
        )


def judge(ref: Reference, bitmap: np.ndarray) -> Verdict:
    """Reconstruct, score, place on the map and find the nearest real drawings of one drawing."""
    batch = np.array(bitmap[None])  # a writable copy: torch warns about read-only arrays
    code = encode(ref.model, batch)[0]
    score = float(scores(ref.model, batch, SCORE)[0])
    near = None
    if ref.images is not None:
        nearest = np.argsort(((ref.codes - code) ** 2).sum(axis=1), kind="stable")[:NEIGHBOURS]
        near = ref.images[nearest]
    resembles = resemblance(ref.model, batch)
    return Verdict(
        bitmap,
        reconstruct(ref.model, batch)[0],  # as `sheep reconstruct` draws it
        score,
        float(percentiles(np.array([score]), ref.scores)[0]),
        score <= ref.threshold,
        ref.to_plane(code[None])[0],
        near,
        None if resembles is None else ref.model.config.categories[resembles[0]],
    )


def dream_at(ref: Reference, point: tuple[float, float]) -> np.ndarray:
    """The drawing decoded at a point of the map, (28, 28) in [0, 1]."""
    return decode_one(ref, ref.from_plane(point))


def sample_code(ref: Reference, temperature: float, seed: int) -> np.ndarray:
    """A code (D,) sampled from the model's prior at ``temperature``."""
    return prior_codes(ref.model, 1, temperature, seed)[0]


def decode_one(ref: Reference, code: np.ndarray) -> np.ndarray:
    """One code's drawing, (28, 28) in [0, 1]: one sampling with the same noise for every code, so
    that a point moved on the map moves its drawing only as much as its code."""
    return decode_codes(ref.model, code[None])[0]


def path_between(ref: Reference, start: np.ndarray, end: np.ndarray, steps: int) -> np.ndarray:
    """Two drawings and the decodings along the line between their codes, (steps + 2, 28, 28)."""
    between = interpolate(ref.model, start, end, steps)
    return np.concatenate([start[None] / 255.0, between, end[None] / 255.0])


def map_image(ref: Reference, point: np.ndarray | None = None) -> Image.Image:
    """The reference drawings' codes on the map (blue dots; of several files, each in its
    category's colour, named in the bottom left corner), and ``point`` as a red cross (at the edge when it
    lies outside the view)."""
    if ref.background is None:
        ref.background = Image.new("RGB", (MAP_PX, MAP_PX), "white")
        draw = ImageDraw.Draw(ref.background)
        labels, names = ref.categories if ref.categories is not None else (None, [])
        for i, (x, y) in enumerate(_pixels(ref, ref.plane)):
            colour = (120, 150, 190) if labels is None else CATEGORY_COLOURS[labels[i] % len(CATEGORY_COLOURS)]
            draw.ellipse((x - 1.5, y - 1.5, x + 1.5, y + 1.5), fill=colour)
        for c, name in enumerate(names):  # bottom left: the page's label covers the top left
            colour, y = CATEGORY_COLOURS[c % len(CATEGORY_COLOURS)], MAP_PX - 18 - 12 * (len(names) - 1 - c)
            draw.ellipse((6, y + 2, 12, y + 8), fill=colour)
            draw.text((16, y), name, fill=colour)
    img = ref.background.copy()
    if point is not None:
        (x, y), r = np.clip(_pixels(ref, point[None])[0], 0, MAP_PX - 1), 8
        draw = ImageDraw.Draw(img)
        draw.line((x - r, y - r, x + r, y + r), fill=(192, 57, 43), width=3)
        draw.line((x - r, y + r, x + r, y - r), fill=(192, 57, 43), width=3)
    return img


def map_point(ref: Reference, pixel: tuple[float, float]) -> np.ndarray:
    """The map coordinates of a pixel of :func:`map_image` (the inverse of its drawing)."""
    lo, hi = ref.view()
    unit = np.array([pixel[0], MAP_PX - 1 - pixel[1]], np.float64) / (MAP_PX - 1)
    return lo + unit * (hi - lo)


def _pixels(ref: Reference, plane: np.ndarray) -> np.ndarray:
    """Map coordinates -> picture pixels, y up."""
    lo, hi = ref.view()
    unit = (plane - lo) / (hi - lo)
    return np.column_stack([unit[:, 0] * (MAP_PX - 1), (1 - unit[:, 1]) * (MAP_PX - 1)])


def _as_u8(images: np.ndarray) -> np.ndarray:
    return (np.clip(images, 0, 1) * 255 + 0.5).astype(np.uint8)


REFERENCE_SCORES = "reference_scores.npy"  # the built-in model's held-out drawings' scores


def load_reference(run_dir: str | Path, data: str | Path | None = None) -> Reference:
    """The model of ``run_dir`` and the drawings to compare with (the training split): DATA, else
    the run's own data, else the downloaded ``sheep`` category (what the built-in model learned
    from), else the codes and scores the run saved of its validation drawings, without drawings."""
    from ..runs.checkpoint import last_latents, load_model
    from ..runs.run_sources import learned_drawings, run_subject

    model = load_model(run_dir)
    drawings = learned_drawings(run_dir, data)
    if drawings is not None:
        ref = make_reference(model, drawings.split("train", limit=REFERENCE_LIMIT))
        ref.categories = drawings.categories("train", limit=REFERENCE_LIMIT)  # several files: the map's colours
    else:
        ref = make_reference(model, None, last_latents(run_dir), _saved_scores(Path(run_dir) / REFERENCE_SCORES))
    ref.subject = run_subject(run_dir)
    return ref


def _saved_scores(path: Path) -> np.ndarray | None:
    """The scores a run saved for the app, or None when it saved none."""
    if not path.is_file():
        return None
    values = read_npy(path, "array of scores")
    if values.ndim != 1 or not np.isfinite(values).all():
        raise DataError(path, f"holds {values.shape} values, not a list of finite scores")
    return values
