"""Real kanji as stroke drawings, for the anomaly benchmark's held-out group (not part of the package).

KanjiVG (Ulrich Apel and contributors, CC BY-SA 3.0; `pip install kanjivg svg.path`) gives every
kanji's strokes as SVG paths in the order they are written. Each stroke's curve is sampled and
rasterised as the raw Quick, Draw! drawings are, so the kanji go among the Aaron sheep, rasterised
by the same code (like with like).
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from importlib.metadata import PackageNotFoundError, files

import numpy as np
from _common import rasterised

CJK = (0x4E00, 0x9FFF)  # the unified ideographs: kanji, not kana, digits or letters
POINTS_PER_SEGMENT = 8  # a Bezier segment of a stroke spans a few pixels at 28x28
SVG_PATH = "{http://www.w3.org/2000/svg}path"


def kanji(n: int = 1000, seed: int = 0) -> np.ndarray:
    """(n, 28, 28) uint8: ``n`` kanji drawn at random (``seed``) from KanjiVG, rasterised; cached."""

    def drawings():
        svgs = _kanji_files()
        chosen = np.sort(np.random.default_rng(seed).choice(len(svgs), size=n, replace=False))
        return (_strokes(svgs[i]) for i in chosen)

    return rasterised(f"kanjivg-{n}-{seed}", drawings)


def _kanji_files() -> list:
    """KanjiVG's files of the unified ideographs, without its variant forms (``-Kaisho`` ...)."""
    try:
        listed = files("kanjivg") or []
    except PackageNotFoundError:
        raise SystemExit("the kanji group needs KanjiVG: pip install kanjivg svg.path") from None
    codes = {f: re.fullmatch(r"kanji/([0-9a-f]{5})\.svg", str(f)) for f in listed}
    return sorted((f for f, m in codes.items() if m and CJK[0] <= int(m[1], 16) <= CJK[1]), key=str)


def _strokes(svg) -> list[np.ndarray]:
    """One kanji's strokes, each an (n, 2) array of (x, y) points along its SVG path."""
    from svg.path import Move, parse_path

    t = np.linspace(0.0, 1.0, POINTS_PER_SEGMENT)
    strokes = []
    for element in ET.parse(svg.locate()).getroot().iter(SVG_PATH):
        segments = [s for s in parse_path(element.get("d")) if not isinstance(s, Move)]
        points = np.array([s.point(x) for s in segments for x in t])
        strokes.append(np.stack([points.real, points.imag], axis=1))
    return strokes
