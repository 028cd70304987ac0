"""Pictures of drawings (photos, scans, drawing apps) to 28x28 bitmaps like Google's.

The ink is found (paper and ink levels, grain, shadows, stray marks), fitted into the same canvas as
the strokes of :mod:`.raster`, brought to the same line width and box-filtered the same way.
"""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageFilter

from .raster import RasterConfig

MIN_CONTRAST = 32  # grey levels between paper and ink below which a picture counts as blank
GRAIN = 2  # median step between neighbouring paper pixels (grey levels) above which a picture is denoised
PHOTO_SIDE = 3000  # a grainy picture (photo, scan) is read on a box-reduced copy at most 3,000 px wide
STANDS_OUT = 5.0  # grain stands out from the paper beside it less than 5 times as far as that paper from the page
STRAY = 0.003  # a group of marks with under 0.3% of the ink, outside the larger groups' box, is a stray...
STRAY_SIDE = 128  # ... marks closer than about 1/128 of the picture to each other form a group
SPECK = 4  # in a grainy picture, a group of touching ink pixels with at most this many past halfway is grain
WEAK = 0.25  # a pixel this share of the way from the paper to the ink is ink where it touches ink (hysteresis) ...
NOISE_MARGIN = 4.0  # ... and stands out from the paper by 4 times its grain, so that grain never reaches it
FAINT_LINE = 6 * SPECK  # in a grainy picture, a group of so many such pixels is a faint line even with no darker one
FLAT = 0.5  # share of the border at exactly the paper's grey level above which the paper is a drawing app's
SHADOW_WINDOW = 20  # the paper's level is read over windows of 1/20 of the picture's longer side (5%:
# wider than a marker's line in a photo of a page, narrower than a pen's shadow) ...
SHADOW_SIDE = 256  # ... on a box-reduced copy at most 256 px wide: fast on a 24-megapixel photo
SHADOW_STEPS = 4  # a shadow spreads back at most 4 windows from where it survived
SHADE = 0.25  # paper this share of the way from the brightest paper to the ink is shaded: correct the light


def picture_to_bitmap(picture: Image.Image, config: RasterConfig = RasterConfig()) -> np.ndarray | None:
    """A picture of one drawing (a scan, a drawing app's export; any size; dark ink on light paper,
    light on dark, or strokes on a transparent background) as a (side, side) uint8 bitmap like
    Google's, or None when it shows no ink.

    The geometry is :func:`render`'s: the ink's bounding box is fitted into the supersampled canvas
    keeping its aspect ratio, centred, inside the padding; lines thinner than ``line_width`` are
    thickened to it with a disk (a thick marker is kept as it is), then the canvas is box-filtered
    down, so that a picture and the same strokes rendered from a stroke file look alike.
    """
    ink = _without_strays(_ink_mask(picture))  # (H, W) bool
    rows, cols = np.flatnonzero(ink.any(axis=1)), np.flatnonzero(ink.any(axis=0))
    if len(rows) == 0:
        return None
    crop = ink[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]
    big = config.side * config.supersample
    inner = big - 1 - 2 * config.padding * config.supersample  # the span render() gives the strokes
    scale = inner / max(crop.shape)
    h, w = max(1, round(crop.shape[0] * scale)), max(1, round(crop.shape[1] * scale))
    if scale < 1:  # shrinking: a pixel is ink if any ink falls in it (a thin line must not fade away)
        fitted = np.asarray(Image.fromarray(crop.astype(np.uint8) * 255).resize((w, h), Image.Resampling.BOX)) > 0
    else:
        fitted = np.asarray(Image.fromarray(crop.astype(np.uint8) * 255).resize((w, h), Image.Resampling.BILINEAR))
        fitted = fitted >= 128
    canvas = np.zeros((big, big), dtype=bool)
    top, left = (big - h) // 2, (big - w) // 2
    canvas[top : top + h, left : left + w] = fitted
    canvas = _thicken(canvas, config.line_width * config.supersample)
    return np.asarray(Image.fromarray(canvas.astype(np.uint8) * 255).reduce(config.supersample), dtype=np.uint8)


def _ink_mask(picture: Image.Image) -> np.ndarray:
    """Which pixels are ink, (H, W) bool: the alpha channel when the paper is transparent, else
    the grey levels on the ink's side of the paper's, split halfway to the most inked (see
    :func:`_dark_or_light_ink`); a grainy picture is smoothed first and its specks dropped."""
    has_alpha = picture.mode in ("RGBA", "LA", "PA") or "transparency" in picture.info
    if has_alpha:
        alpha = np.asarray(picture.convert("RGBA"))[..., 3].astype(np.int16)
        if np.median(_border(alpha)) < 128:  # transparent paper: what is opaque is the ink
            return _thresholds(alpha, 0.0)[0]
        picture = Image.alpha_composite(Image.new("RGBA", picture.size, "white"), picture.convert("RGBA"))
    grey = _grey(picture)
    if _grain(grey) <= GRAIN:
        return _dark_or_light_ink(grey)
    # A big photo's pencil lines are several pixels wide, and the canvas is 224 px: a copy reduced
    # to at most PHOTO_SIDE (a 24-megapixel photo halved, its grain averaged down) keeps every
    # line 4 px wide or more through the 3x3 median below, and is read faster.
    # The grain would cross the threshold in specks that stretch the bounding box: a 3x3 median
    # removes most, and what is left is dropped. Only then: on clean paper the median would erase
    # a 1-pixel line.
    smooth = Image.fromarray(_reduced(grey, PHOTO_SIDE).astype(np.uint8)).filter(ImageFilter.MedianFilter(3))
    return _dark_or_light_ink(np.asarray(smooth, dtype=np.int16), grainy=True)


def _dark_or_light_ink(grey: np.ndarray, grainy: bool = False) -> np.ndarray:
    """Which pixels of an opaque picture's grey levels are ink, whichever its colour and light.
    The border's level cannot tell the paper when a shadow covers most of it or a dark table lies
    around the sheet, and a statistic of the grey levels on a copy small enough to be quick loses
    a fine pen's lines in a big photo. So the picture is read both ways, dark ink on light paper
    and light ink (chalk) on dark, and the ink is the thinner reading: a drawing is lines, while
    the wrong reading finds areas (the lit part of a shaded page, the sheet on the table, the
    board inside a chalk outline). On grainy paper the wrong reading can also be grain that
    crossed the threshold, which is thin too but finds more pixels and barely stands out from
    the paper beside it (see :func:`_is_grain`). Each reading is completed by hysteresis (see
    :func:`_hysteresis`), which also drops the specks of grain."""
    noise = _noise(grey)
    dark_inkness, dark, dark_weak, faint = _dark_reading(grey, noise)
    light, light_weak = _thresholds(grey, NOISE_MARGIN * noise)  # grey itself is the inkness of light ink
    dark, light = _hysteresis(dark, dark_weak, grainy), _hysteresis(light, light_weak, grainy)
    if grainy and dark.any() and light.any():
        dark_grain, light_grain = _is_grain(dark_inkness, dark, light), _is_grain(grey, light, dark)
        dark = np.zeros_like(dark) if dark_grain else dark
        light = np.zeros_like(light) if light_grain else light
    if faint and light.any() and _line_width(light) < max(grey.shape) / SHADOW_WINDOW / 2:
        dark = np.zeros_like(dark)  # the board's grain, or the board inside chalk loops
    found = [mask for mask in (dark, light) if mask.any()]
    return min(found, key=_line_width) if found else dark  # the dark reading on a tie


def _dark_reading(grey: np.ndarray, noise: float) -> tuple[np.ndarray, np.ndarray, np.ndarray, bool]:
    """How much darker than the paper around it each pixel is, 0-255 int16 (paper 0), the pixels
    that are ink by that measure and those that are ink if they touch it (see :func:`_thresholds`;
    the grain ``noise`` of ``grey`` is magnified where the light is corrected, as much as the ink),
    and whether that ink is faint: in a picture whose light is corrected, less than MIN_CONTRAST
    grey levels darker than its paper.
    A blackboard read this way finds its grain, or the board inside chalk loops, as faint ink; but
    so do a blurred photo's lines in a deep shadow. A faint reading therefore stands only against a
    light reading of areas (the lit part of the page), at least half a shadow window wide, and never
    against chalk lines."""
    if not _flat(grey):
        paper = _paper_level(grey)
        if _shadowed(grey, paper):
            # Ink reflects a fixed share of the light that falls on it, shade or not: divided by
            # the paper's level around it, a stroke in the shade is as dark as one in the light,
            # and the shaded paper is paper again.
            inkness = 255 - _relative(grey, paper)
            ink, weak = _thresholds(inkness, NOISE_MARGIN * noise * 255.0 / np.maximum(paper, 1.0))
            faint = bool(ink.any()) and float(np.median(paper[ink] - grey[ink])) < MIN_CONTRAST
            return inkness, ink, weak, faint
    inkness = 255 - grey
    return inkness, *_thresholds(inkness, NOISE_MARGIN * noise), False


def _is_grain(inkness: np.ndarray, mask: np.ndarray, other: np.ndarray) -> bool:
    """Whether a reading of a grainy picture is grain that crossed the threshold rather than
    ink: it finds more pixels than the other reading, and its "ink" stands out from the paper
    beside it (within 2 px) less than STANDS_OUT times as far as that paper stands out from the
    page's (the border's median). A line is far more inked than the paper beside it, which is
    the page's; grain is hardly more than the grain beside it, which nearly crossed too. Measured
    on photos under uneven light with grain 20-30: 0.6-3.4 for grain, 7-215 for lines."""
    from scipy import ndimage

    if np.count_nonzero(mask) <= np.count_nonzero(other):
        return False
    beside = ndimage.binary_dilation(mask, iterations=2) & ~mask
    ink, near, page = np.median(inkness[mask]), np.median(inkness[beside]), np.median(_border(inkness))
    return float(ink - near) < STANDS_OUT * max(float(near - page), 1.0)


def _line_width(mask: np.ndarray) -> float:
    """A mask's mean line width in pixels: its area over half the changes between neighbours
    (a line of width w and length L covers wL pixels and changes 2L times across it)."""
    changes = np.count_nonzero(mask[1:] != mask[:-1]) + np.count_nonzero(mask[:, 1:] != mask[:, :-1])
    return 2.0 * np.count_nonzero(mask) / max(changes, 1)


def _relative(grey: np.ndarray, paper: np.ndarray) -> np.ndarray:
    """Grey levels relative to the paper's around them, 0-255 int16 (paper 255): in float32 and
    in place, since a 24-megapixel photo has 24 million of them."""
    ratio = np.maximum(paper, 1.0, dtype=np.float32)
    np.divide(np.float32(255.0), ratio, out=ratio)
    ratio *= grey
    np.minimum(ratio, 255.0, out=ratio)
    return np.rint(ratio, out=ratio).astype(np.int16)


def _hysteresis(strong: np.ndarray, weak: np.ndarray, grainy: bool) -> np.ndarray:
    """Hysteresis thresholding (Canny 1986): the groups of touching strong-or-weak pixels that hold
    a strong one. Out of focus, or fine and in the shade, a line's edges or its whole stretches fall
    short of halfway to the ink, and the stray rule would then drop the broken pieces; the grain
    cannot reach the weak level (its margin), so lines grow and paper does not. In a grainy picture
    a group needs more than SPECK strong pixels (a few are grain that crossed the threshold), or
    more than FAINT_LINE pixels in all, strong or not: a blurred line in deep shade may have none
    halfway to the ink, while the grain, kept from the weak level, does not form groups so big."""
    from scipy import ndimage

    if not strong.any():
        return strong
    labels, n = ndimage.label(strong | weak, structure=np.ones((3, 3)))
    strong_count = np.bincount(labels[strong], minlength=n + 1)
    keep = strong_count > (SPECK if grainy else 0)
    if grainy:
        keep |= np.bincount(labels.ravel(), minlength=n + 1) > FAINT_LINE
    keep[0] = False  # label 0 is the paper
    return keep[labels]


def _without_strays(mask: np.ndarray) -> np.ndarray:
    """The mask without stray marks: a speck of dust on a scan, grain that survived the median,
    which alone would stretch the bounding box fitted to the canvas and shrink the drawing. Marks
    closer than about 1/STRAY_SIDE of the picture to each other form one group (the pieces of a
    broken line), and a group holding less than STRAY of the ink that lies wholly outside the
    bounding box of the larger groups is a stray (a small mark inside it, an eye, is kept). The
    groups are found on a copy at most STRAY_SIDE px wide, where any ink makes a pixel ink, grown
    by one pixel."""
    from scipy import ndimage

    factor = max(1, -(-max(mask.shape) // STRAY_SIDE))  # ceil division
    coarse = np.asarray(Image.fromarray(mask.astype(np.uint8) * 255).reduce(factor)) > 0
    groups, count = ndimage.label(ndimage.binary_dilation(coarse, np.ones((3, 3))), structure=np.ones((3, 3)))
    if count < 2:
        return mask
    rows, cols = np.nonzero(mask)
    group = groups[rows // factor, cols // factor]  # each ink pixel's group, 1..count
    ink = np.bincount(group, minlength=count + 1)
    large = ink >= min(STRAY * len(rows), ink.max())
    boxes = ndimage.find_objects(groups)  # boxes[g - 1]: the slices of group g
    big = [boxes[g - 1] for g in np.flatnonzero(large)]
    top, bottom = min(r.start for r, _ in big), max(r.stop for r, _ in big)
    left, right = min(c.start for _, c in big), max(c.stop for _, c in big)
    keep = large.copy()
    for g in range(1, count + 1):
        r, c = boxes[g - 1]
        keep[g] |= r.start < bottom and r.stop > top and c.start < right and c.stop > left
    out = np.zeros_like(mask)
    out[rows[keep[group]], cols[keep[group]]] = True
    return out


def _grey(picture: Image.Image) -> np.ndarray:
    """Grey levels 0-255 as int16, (H, W). Pillow's own conversion clips 16-bit scans (0-65535) and
    float pictures to white, so those are scaled here: 16-bit by 1/257, floats in [0, 1] by 255."""
    if picture.mode.startswith("I") or picture.mode == "F":
        values = np.asarray(picture, dtype=np.float64)
        if picture.mode.startswith("I;16") or (picture.mode == "I" and values.max() > 255):
            values = values / 257.0
        elif picture.mode == "F" and values.max() <= 1.0:
            values = values * 255.0
        return np.clip(np.round(values), 0, 255).astype(np.int16)
    return np.asarray(picture.convert("L"), dtype=np.int16)


def _grain(grey: np.ndarray) -> float:
    """Noise of the paper in grey levels: the median absolute step between neighbouring border
    pixels (steps, not levels, so that uneven light across the page does not count as noise)."""
    steps = np.concatenate([np.diff(grey[0]), np.diff(grey[-1]), np.diff(grey[:, 0]), np.diff(grey[:, -1])])
    return float(np.median(np.abs(steps))) if len(steps) else 0.0


def _border(values: np.ndarray) -> np.ndarray:
    """The outermost rows and columns of a picture: where the paper is."""
    return np.concatenate([values[0], values[-1], values[:, 0], values[:, -1]])


def _flat(grey: np.ndarray) -> bool:
    """Paper of one exact grey level, as a drawing app exports it: no light to correct (and a
    filled area wider than the shadow window must stay ink)."""
    border = _border(grey)
    return float(np.mean(border == np.median(border))) > FLAT


def _reduced(grey: np.ndarray, side: int) -> np.ndarray:
    """A box-reduced float copy whose longer side is at most ``side``."""
    factor = max(1, -(-max(grey.shape) // side))  # ceil division
    return np.asarray(Image.fromarray(grey.astype(np.uint8)).reduce(factor), dtype=np.float32)


def _paper_level(grey: np.ndarray) -> np.ndarray:
    """The paper's grey level around each pixel, (H, W) float32, for dark ink: a grey closing by
    reconstruction. The brightest level over a window wipes out dark lines narrower than the
    window; then the darkness that survived (a shadow wider than the window) spreads back one
    pixel at a time wherever the picture is as dark, which gives back the shadow's exact shape,
    narrow corners included, where a plain closing (ImageJ's "Subtract Background" with a square
    ball) would leave them bright and they would read as ink (Vincent 1993, "Morphological
    grayscale reconstruction in image analysis")."""
    from scipy import ndimage

    # Averaged over 3x3 first: the brightest level over a window is also the brightest grain,
    # which would set the paper too light (and shaded paper would read as ink).
    small = ndimage.uniform_filter(_reduced(grey, SHADOW_SIDE), 3)
    size = max(3, max(small.shape) // SHADOW_WINDOW)
    level = ndimage.maximum_filter(small, size)
    for _ in range(SHADOW_STEPS * size):  # geodesic erosion: never below the picture itself
        level, previous = np.maximum(ndimage.minimum_filter(level, 3), small), level
        if np.array_equal(level, previous):
            break
    # Two more steps darker before going back to full size: along a shadow's edge the 3x3 average
    # and the bilinear enlargement each mix the two levels, and the shaded side would read as ink.
    level = ndimage.minimum_filter(level, 5)
    return np.asarray(Image.fromarray(level).resize(grey.shape[::-1], Image.Resampling.BILINEAR), np.float32)


def _shadowed(grey: np.ndarray, paper: np.ndarray) -> bool:
    """Whether the light falls unevenly enough to matter: some paper is darker than the brightest
    by a quarter of the way to the ink (one threshold, halfway, would soon take it for ink)."""
    k = min(INK_PIXELS, grey.size)
    ink = float(np.partition(grey.ravel(), k - 1)[k - 1])
    return float(paper.min()) < float(paper.max()) - SHADE * (float(paper.max()) - ink)


INK_PIXELS = 20  # the ink's level is the 20th most inked pixel's: a few hot pixels do not set it


def _paper_and_ink(inkness: np.ndarray) -> tuple[float, float]:
    """The paper's level (the border's median) and the ink's (the INK_PIXELS-th most inked pixel:
    a percentile would miss a small sketch on a big page)."""
    flat = inkness.ravel()
    k = min(INK_PIXELS, flat.size)
    return float(np.median(_border(inkness))), float(np.partition(flat, flat.size - k)[flat.size - k])


def _thresholds(inkness: np.ndarray, margin: np.ndarray | float) -> tuple[np.ndarray, np.ndarray]:
    """The pixels that are ink, more inked than halfway between the paper and the ink (see
    :func:`_paper_and_ink`), and those that are ink where they touch it (see :func:`_hysteresis`):
    at least WEAK of the way from the paper to the ink, and more inked than the paper by over
    ``margin`` (the grain's reach, per pixel or one for all); none of either when the paper and
    the ink differ by less than MIN_CONTRAST grey levels."""
    paper, ink = _paper_and_ink(inkness)
    if ink - paper < MIN_CONTRAST:
        none = np.zeros(inkness.shape, dtype=bool)
        return none, none
    return inkness > (paper + ink) / 2, inkness > paper + np.maximum(WEAK * (ink - paper), margin)


def _noise(grey: np.ndarray) -> float:
    """The grain's spread in grey levels (at least 1): the upper quartile of how far each pixel is
    from the mean of the 5x5 around it, on a copy of every other row and column. Steps between neighbours
    would not do: a median filter leaves runs of equal levels (most steps 0), and a dark table
    around the sheet is smoother than the paper; the lines are too few to move a quartile."""
    from scipy import ndimage

    g = grey[::2, ::2].astype(np.float32)
    return max(float(np.percentile(np.abs(g - ndimage.uniform_filter(g, 5)), 75)), 1.0)


def _thicken(mask: np.ndarray, width: float) -> np.ndarray:
    """Grow lines to about ``width`` pixels with a disk. A line's width is estimated as twice its
    area over its outline (both sides of a line of length L: 2L outline pixels, w*L area)."""
    from scipy import ndimage

    area = int(mask.sum())
    outline = int((mask & ~ndimage.binary_erosion(mask)).sum())
    current = 2.0 * area / max(outline, 1)
    radius = (width - current) / 2.0
    if radius <= 0.5:
        return mask
    return ndimage.distance_transform_edt(~mask) <= radius
