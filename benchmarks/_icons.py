"""Line icons of vehicles, buildings and plants as stroke drawings, for the anomaly benchmark's
held-out group (not part of the package).

Tabler Icons (Pawel Kuna, MIT; packaged as `pip install pytablericons`, with `svg.path` to read
them) draws each icon in 2-pixel strokes on a 24x24 grid and files it under a category. Every
outline icon of a category, its crossed-out variants (``-off``) left out, is read stroke by stroke
(each subpath of an SVG path; circles as rings), sampled and rasterised as the raw Quick, Draw!
drawings are, so the icons go among the sheep rasterised by the same code (like with like).
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from importlib.metadata import PackageNotFoundError, files, version

import numpy as np
from _common import rasterised

PACKAGE = "pytablericons"
CATEGORIES = ("Vehicles", "Buildings", "Nature")  # the kinds of drawing the group plants
POINTS_PER_SEGMENT = 8  # a curve segment spans a few pixels at 28x28
POINTS_PER_CIRCLE = 24
SVG = "{http://www.w3.org/2000/svg}"


def icons(category: str) -> np.ndarray:
    """(n, 28, 28) uint8: every outline icon of ``category`` (``-off`` variants left out), rasterised;
    cached per version of the package."""
    try:
        release = version(PACKAGE)
    except PackageNotFoundError:
        raise SystemExit("the icons group needs Tabler's icons: pip install pytablericons svg.path") from None
    return rasterised(f"tabler-{release}-{category.lower()}", lambda: map(_strokes, _icon_files(category)))


def _icon_files(category: str) -> list:
    """The outline icons of ``category``, sorted by name: the category is in each file's header."""
    listed = files(PACKAGE) or []
    outline = sorted((f for f in listed if re.search(r"icons/outline/[a-z0-9-]+\.svg$", str(f))), key=str)
    chosen = [f for f in outline if not str(f).endswith("-off.svg")]
    return [f for f in chosen if re.search(rf"^category: {category}$", f.read_text(), re.MULTILINE)]


def _strokes(svg) -> list[np.ndarray]:
    """One icon's strokes, each an (n, 2) array of (x, y) points: every subpath of its paths (a
    move starts a new stroke) and every circle."""
    from svg.path import Move, parse_path

    t = np.linspace(0.0, 1.0, POINTS_PER_SEGMENT)
    strokes, current = [], []
    for element in ET.parse(svg.locate()).getroot().iter():
        if element.tag == f"{SVG}circle":
            strokes.append(_circle(*(float(element.get(k)) for k in ("cx", "cy", "r"))))
        if element.tag != f"{SVG}path" or element.get("stroke") == "none":  # "none": an invisible frame
            continue
        for segment in parse_path(element.get("d")):
            if isinstance(segment, Move):
                strokes, current = _ended(strokes, current), []
                continue
            current.extend(segment.point(x) for x in t)
        strokes, current = _ended(strokes, current), []
    return strokes


def _ended(strokes: list[np.ndarray], points: list[complex]) -> list[np.ndarray]:
    """``strokes`` with the stroke of ``points`` added, if it has any."""
    if not points:
        return strokes
    p = np.array(points)
    return [*strokes, np.stack([p.real, p.imag], axis=1)]


def _circle(cx: float, cy: float, r: float) -> np.ndarray:
    angle = np.linspace(0.0, 2 * np.pi, POINTS_PER_CIRCLE)
    return np.stack([cx + r * np.cos(angle), cy + r * np.sin(angle)], axis=1)
