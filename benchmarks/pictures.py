"""How well pictures of drawings read: the 23 real Quick, Draw! sheep of ``raw/sheep.ndjson``
drawn as pictures (drawing-app exports and simulated phone photos under uneven light), each
compared with the same strokes rendered by `electric_sheep.data.raster.render`.

Prints, per kind of picture, the pixel correlation with the stroke rendering (min / median over
the 23 sheep), the ink as a share of the rendering's, and milliseconds per picture; then the time
for one 24-megapixel photo.

    python benchmarks/pictures.py [--seed 0]

A photo is simulated as reflectance (paper 230, ink 25 grey levels) times light, plus Gaussian
grain, saved as JPEG (quality 85). The light: even; "soft", falling to 40% across the page; "hard",
a sharp shadow at 45% over half the page (at a random angle); "deep", the same at 30%; "stripe", a
pen's shadow, a band 12% of the page wide at 50%; "corner", a blurred shadow at 45% over a corner;
"table", the sheet with a shaded corner lying on a dark table that fills the picture's border.
Then photos out of focus (a Gaussian blur of 3 px), chalk on a blackboard, and phone photos (2400
and 4000 px wide) of fine pens under a hard shadow.
"""

from __future__ import annotations

import argparse
import io
import json
import time
from collections.abc import Callable

import numpy as np
from _common import SHARED
from PIL import Image, ImageDraw
from scipy import ndimage

from electric_sheep.data.pictures import picture_to_bitmap
from electric_sheep.data.raster import ink_strokes_to_strokes, render

PAPER, INK = 230.0, 25.0  # grey levels of a photographed sheet and pencil line in full light
PAGE = (800, 600)  # photo size in pixels (width, height)
BOARD, CHALK = 40.0, 210.0  # grey levels of a photographed blackboard and chalk line


def strokes_of_sheep() -> list[list[np.ndarray]]:
    path = SHARED / "quickdraw" / "raw" / "sheep.ndjson"
    if not path.is_file():
        raise SystemExit(f"benchmark data not found: {path} (the benchmarks read ../shared/data)")
    with open(path, encoding="utf-8") as f:
        return [ink_strokes_to_strokes(json.loads(line)["drawing"]) for line in f if line.strip()]


def drawn(strokes, size=PAGE, pen=4, mode="L", paper=255, ink=0, fill=0.7) -> Image.Image:
    """The strokes drawn centred on a page, their longer side ``fill`` of the page's longer side."""
    pts = np.concatenate(strokes)
    lo, extent = pts.min(axis=0), pts.max(axis=0) - pts.min(axis=0)
    scale = fill * max(size) / extent.max()
    offset = (np.asarray(size) - extent * scale) / 2
    img = Image.new(mode, size, paper)
    pen_ = ImageDraw.Draw(img)
    for s in strokes:
        pen_.line(((s - lo) * scale + offset).ravel().tolist(), fill=ink, width=pen)
    return img


def light(kind: str, height: int, width: int, rng: np.random.Generator) -> np.ndarray:
    """Share of the light reaching each pixel, (height, width)."""
    side = max(height, width)
    yy, xx = np.mgrid[0:height, 0:width] / side
    angle = rng.uniform(0, 2 * np.pi)
    across = np.cos(angle) * (xx - width / side / 2) + np.sin(angle) * (yy - height / side / 2)
    if kind == "soft":
        t = (across - across.min()) / (across.max() - across.min())
        return 1.0 - 0.6 * t
    if kind in ("hard", "deep"):
        return np.where(across > rng.uniform(-0.1, 0.1), 0.45 if kind == "hard" else 0.3, 1.0)
    if kind == "stripe":
        return np.where(np.abs(across - rng.uniform(-0.2, 0.2)) < 0.06, 0.5, 1.0)
    if kind in ("corner", "table"):
        return 1.0 - 0.55 * ndimage.gaussian_filter(((xx < 0.5) & (yy < 0.4)).astype(float), 20)
    return np.ones((height, width))


def jpeg(grey: np.ndarray) -> Image.Image:
    buf = io.BytesIO()
    Image.fromarray(np.clip(grey, 0, 255).astype(np.uint8)).save(buf, "JPEG", quality=85)
    return Image.open(io.BytesIO(buf.getvalue()))


def photo(strokes, kind: str, grain: float, rng: np.random.Generator, size=PAGE, pen=4, blur=0.0) -> Image.Image:
    """A simulated photo of the strokes drawn in pencil on paper, out of focus by ``blur`` px."""
    reflect = np.asarray(drawn(strokes, size, pen), dtype=np.float64) / 255.0  # 1 paper, 0 ink
    grey = (INK + (PAPER - INK) * reflect) * light(kind, *reflect.shape, rng)
    if blur:
        grey = ndimage.gaussian_filter(grey, blur)
    grey += rng.normal(0, grain, grey.shape)
    if kind == "table":  # the sheet on a dark table, which fills the picture's border
        table = 60.0 + rng.normal(0, 6, (size[1] + 200, size[0] + 200))
        table[100:-100, 100:-100] = grey
        grey = table
    return jpeg(grey)


def blackboard(strokes, rng: np.random.Generator) -> Image.Image:
    """A simulated photo of the strokes in chalk (210 grey levels) on a blackboard (40), the
    light on the chalk falling to 40% across the board, grain 8."""
    chalk = 1.0 - np.asarray(drawn(strokes, PAGE, 4), dtype=np.float64) / 255.0  # 1 chalk, 0 board
    grey = BOARD + (CHALK - BOARD) * chalk * light("soft", *chalk.shape, rng) + rng.normal(0, 8, chalk.shape)
    return jpeg(grey)


def compare(sheep, make: Callable[[list[np.ndarray]], Image.Image]) -> tuple[np.ndarray, np.ndarray, float]:
    corr, ink, seconds = [], [], 0.0
    for strokes in sheep:
        reference = render(strokes).astype(np.float64)
        picture = make(strokes)
        t0 = time.perf_counter()
        bitmap = picture_to_bitmap(picture)
        seconds += time.perf_counter() - t0
        if bitmap is None:  # read as blank: the worst outcome
            corr.append(0.0), ink.append(0.0)
            continue
        corr.append(np.corrcoef(reference.ravel(), bitmap.ravel().astype(np.float64))[0, 1])
        ink.append(bitmap.mean() / reference.mean())
    return np.asarray(corr), np.asarray(ink), seconds / len(sheep)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    rng = np.random.default_rng(args.seed)
    sheep = strokes_of_sheep()
    cases: list[tuple[str, Callable]] = [
        ("export 800 px, pen 3", lambda s: drawn(s, (800, 600), 3)),
        ("export 300 px, pen 1", lambda s: drawn(s, (300, 225), 1)),
        ("export 1200 px, marker 25", lambda s: drawn(s, (1200, 900), 25)),
        ("export, transparent", lambda s: drawn(s, (600, 450), 4, "RGBA", (0, 0, 0, 0), (0, 0, 0, 255))),
        ("export, white on black", lambda s: drawn(s, (600, 450), 4, paper=0, ink=255)),
    ]
    for kind in ("even", "soft", "hard", "deep", "stripe", "corner", "table"):
        for grain in (4, 20, 30):
            cases.append((f"photo, {kind} light, grain {grain}", lambda s, k=kind, g=grain: photo(s, k, g, rng)))
    for kind in ("hard", "deep"):  # out of focus: a Gaussian blur of 3 px
        cases.append((f"photo, {kind} light, blur 3, grain 10", lambda s, k=kind: photo(s, k, 10, rng, blur=3)))
    cases.append(("photo, blackboard, soft, grain 8", lambda s: blackboard(s, rng)))
    for size, pen in (((4000, 3000), 8), ((4000, 3000), 3), ((2400, 1800), 2)):  # phone photos, fine pens
        name = f"photo {size[0]} px, pen {pen}, hard, grain 10"
        cases.append((name, lambda s, z=size, p=pen: photo(s, "hard", 10, rng, size=z, pen=p)))
    print(f"{len(sheep)} real Quick, Draw! sheep per row; correlation with the stroke rendering, ink share")
    print(f"{'picture':36s} {'corr min':>8s} {'median':>7s} {'ink min':>8s} {'max':>5s} {'ms/pic':>7s}")
    for name, make in cases:
        corr, ink, seconds = compare(sheep, make)
        shares = f"{ink.min():7.0%} {ink.max():6.0%}"
        print(f"{name:36s} {corr.min():8.3f} {np.median(corr):7.3f} {shares} {seconds * 1e3:7.0f}")
    big = photo(sheep[0], "hard", 8, rng, size=(6000, 4500), pen=20)
    t0 = time.perf_counter()
    bitmap = picture_to_bitmap(big)
    seconds = time.perf_counter() - t0
    corr = np.corrcoef(render(sheep[0]).ravel().astype(float), bitmap.ravel().astype(float))[0, 1]
    print(f"one 24-megapixel photo (6000x4500, hard shadow, grain 8): {seconds:.2f} s, correlation {corr:.3f}")


if __name__ == "__main__":
    main()
