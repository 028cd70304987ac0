"""Pictures: grids of drawings (Pillow) and figures of numbers (matplotlib, headless).

Plot helpers are plain functions of arrays; they return images or figures and never train or
load anything themselves (keras-io's ``plot_latent_space`` style).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from ..errors import ConfigError, OutputError
from ..runs.fileio import atomic_path

# Captions drawn onto drawing grids: Pillow's bundled scalable font, in pixels.
TITLE_PX = 14
LABEL_PX = 11
PLANTED_RGB = (192, 57, 43)  # the red of the anomaly scores plot
LABEL_RGB = (40, 40, 40)
FRAME_RGB = (200, 200, 200)  # the grey between tiles of the bare grid
MAX_TILES = 10_000  # drawings in one grid: 100 x 100 tiles, a 9,000-pixel square at the default scale


def grid_image(
    images: np.ndarray,
    ncols: int | None = None,
    scale: int = 3,
    pad: int = 2,
    invert: bool = True,
    *,
    title: str | None = None,
    labels: list[str] | None = None,
    highlight: np.ndarray | None = None,
) -> Image.Image:
    """Tile (N, 28, 28) drawings (uint8 0-255 or float 0-1) into one image.

    ``invert`` draws black ink on white paper, which is how people expect a doodle to look.
    ``title`` adds a line of text above the grid and ``labels`` one short line under each tile
    (``highlight`` marks tiles whose label and frame are drawn in red); without them the image
    is the bare greyscale grid.
    """
    check_tiles(len(images))
    arr = np.asarray(images)
    if arr.dtype != np.uint8:
        arr = (np.clip(arr, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
    n, h, w = arr.shape
    if labels is not None and len(labels) != n:
        raise ValueError(f"{len(labels)} labels for {n} drawings")
    ncols = ncols or max(1, math.ceil(math.sqrt(n)))
    tiles = 255 - arr if invert else arr
    if title is not None or labels is not None:
        return _captioned(tiles, ncols, scale, pad * scale, title, labels, highlight)
    nrows = max(1, math.ceil(n / ncols))
    canvas = np.full((nrows * (h + pad) + pad, ncols * (w + pad) + pad), FRAME_RGB[0], dtype=np.uint8)
    for i in range(n):
        r, c = divmod(i, ncols)
        y, x = pad + r * (h + pad), pad + c * (w + pad)
        canvas[y : y + h, x : x + w] = tiles[i]
    img = Image.fromarray(canvas, mode="L")
    return img.resize((img.width * scale, img.height * scale), Image.NEAREST) if scale != 1 else img


def _captioned(
    tiles: np.ndarray,
    ncols: int,
    scale: int,
    pad: int,
    title: str | None,
    labels: list[str] | None,
    highlight: np.ndarray | None,
) -> Image.Image:
    """(N, h, w) uint8 tiles, scaled and framed, on white paper with a title above and a label
    under each tile; ``pad`` is in output pixels."""
    n, h, w = tiles.shape
    th, tw = h * scale, w * scale
    nrows = max(1, math.ceil(n / ncols))
    title_h = TITLE_PX + 8 if title else 0
    label_h = LABEL_PX + 4 if labels is not None else 0
    big = ImageFont.load_default(size=TITLE_PX)
    grid_w = ncols * (tw + pad) + pad
    width = max(grid_w, math.ceil(big.getlength(title)) + 2 * pad if title else 0)  # the title never clipped
    out = Image.new("RGB", (width, title_h + pad + nrows * (th + pad + label_h)), "white")
    draw = ImageDraw.Draw(out)
    if title:
        draw.text((pad, 4), title, fill=LABEL_RGB, font=big)
    small = ImageFont.load_default(size=LABEL_PX)
    for i in range(n):
        r, c = divmod(i, ncols)
        x, y = pad + c * (tw + pad), title_h + pad + r * (th + pad + label_h)
        out.paste(Image.fromarray(tiles[i]).resize((tw, th), Image.NEAREST).convert("RGB"), (x, y))
        red = highlight is not None and bool(highlight[i])
        frame = PLANTED_RGB if red else FRAME_RGB
        draw.rectangle((x - 1, y - 1, x + tw, y + th), outline=frame, width=2 if red else 1)
        if labels is not None:
            label = _fit(labels[i], small, tw + pad - 2)
            draw.text((x, y + th + 2), label, fill=PLANTED_RGB if red else LABEL_RGB, font=small)
    return out


def _fit(text: str, font: ImageFont.FreeTypeFont, width: float) -> str:
    """``text``, shortened in the middle with an ellipsis until it fits ``width`` pixels (a long
    file name keeps its start and its end, and stays off the neighbouring tile)."""
    if font.getlength(text) <= width:
        return text
    keep = len(text)
    while keep > 1:
        keep -= 1
        short = text[: (keep + 1) // 2] + "…" + text[len(text) - keep // 2 :]
        if font.getlength(short) <= width:
            return short
    return "…"


ANIMATED = ("GIF", "PNG", "WEBP")  # formats Pillow writes as animations (PNG as APNG)
MAX_FRAME_MS = 655_350  # the longest frame a GIF holds: its delay is 16 bits of centiseconds


def picture_format(path: str | Path, animated: bool = False) -> str:
    """Pillow's format for ``path``'s suffix (PNG when it has none, e.g. ``/dev/stdout``); an
    :class:`OutputError` naming the path for a suffix no picture (or animation) is written as."""
    path = Path(path)
    suffix = path.suffix.lower()
    Image.init()  # Pillow registers its formats' writers lazily
    fmt = Image.registered_extensions().get(suffix) if suffix else "PNG"
    allowed = ANIMATED if animated else tuple(Image.SAVE)
    if fmt not in allowed:
        exts = ".gif, .png (APNG) or .webp" if animated else ".png, .jpg, .gif, .webp, .bmp or .tif"
        kind = "an animation" if animated else "a picture"
        raise OutputError(path, f"cannot write {kind} as {suffix or 'this'}: use {exts}")
    return fmt


def check_tiles(n: int) -> None:
    """Refuse a grid of more than MAX_TILES drawings before anything is computed for it."""
    if n > MAX_TILES:
        raise ConfigError(f"{n:,} drawings in one picture is over the limit of {MAX_TILES:,}; draw several pictures")


def save_image(img: Image.Image, path: str | Path) -> Path:
    """Save a Pillow image atomically (format from the suffix, PNG without one)."""
    path = Path(path)
    fmt = picture_format(path)
    with atomic_path(path) as tmp:
        img.convert("RGB" if fmt == "JPEG" and img.mode not in ("L", "RGB") else img.mode).save(tmp, format=fmt)
    return path


def plain_text(build: Callable[..., Any]) -> Callable[..., Any]:
    """A figure builder whose texts are shown as written: names from files and config.json may
    hold ``$...$``, which matplotlib would otherwise parse (and fail on) as TeX."""

    @functools.wraps(build)
    def built(*args: Any, **kwargs: Any) -> Any:
        import matplotlib

        with matplotlib.rc_context({"text.parse_math": False}):
            return build(*args, **kwargs)

    return built


def pyplot():
    """matplotlib's pyplot on the headless Agg backend, imported only when a figure is drawn."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


FIGURE_FORMATS = ("png", "jpg", "jpeg", "pdf", "svg", "webp", "tif", "tiff")  # what matplotlib writes here


def figure_format(path: str | Path) -> str:
    """matplotlib's format for ``path``'s suffix (png when it has none); an :class:`OutputError`
    naming the path for any other suffix."""
    path = Path(path)
    fmt = path.suffix.lower().lstrip(".") or "png"
    if fmt not in FIGURE_FORMATS:
        raise OutputError(path, f"cannot write a figure as .{fmt}: use .{', .'.join(FIGURE_FORMATS)}")
    return fmt


def save_figure(fig, path: str | Path, dpi: int = 120) -> Path:
    """Save a matplotlib figure atomically (format from the suffix, PNG without one) and close it."""
    import matplotlib.pyplot as plt

    path = Path(path)
    try:
        fmt = figure_format(path)
        with atomic_path(path) as tmp:
            fig.savefig(tmp, format=fmt, dpi=dpi, bbox_inches="tight")
    finally:
        plt.close(fig)
    return path


def figure_image(fig, dpi: int = 80) -> Image.Image:
    """Render a matplotlib figure to a Pillow RGB image (for animation frames) and close it."""
    import io

    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)  # no bbox "tight": every frame keeps the same size
    plt.close(fig)
    buf.seek(0)
    return Image.open(buf).convert("RGB")


GIF_GREYS = 16  # grey levels of greyscale GIF frames: the default dream 1.41 MB -> 0.39 MB, looks the same


def gif_bytes(frames: list[Image.Image], frame_ms: int, hold_last_ms: int) -> bytes:
    """Frames as a looping animated GIF; the last frame stays on screen ``hold_last_ms``.
    Greyscale frames keep GIF_GREYS levels (mid-points of equal bins, white stays white)."""
    import io

    step = 256 // GIF_GREYS
    lut = [min(255, v // step * step + step // 2) if v < 256 - step else 255 for v in range(256)]
    frames = [f.point(lut) if f.mode == "L" else f for f in frames]
    buf = io.BytesIO()
    _save_frames(frames, buf, "GIF", frame_ms, hold_last_ms)
    return buf.getvalue()


def _save_frames(frames: list[Image.Image], target, fmt: str, frame_ms: int, hold_last_ms: int) -> None:
    """Write ``frames`` as a looping animation whose last frame stays ``hold_last_ms``."""
    durations = [frame_ms] * (len(frames) - 1) + [hold_last_ms]
    frames[0].save(target, format=fmt, save_all=True, append_images=frames[1:], duration=durations, loop=0)


def save_animation(frames: list[Image.Image], path: str | Path, frame_ms: int, hold_last_ms: int) -> Path:
    """Save a looping animation atomically, as the suffix says: GIF (:func:`gif_bytes`), PNG
    (APNG) or WebP."""
    path = Path(path)
    fmt = picture_format(path, animated=True)
    with atomic_path(path) as tmp:
        if fmt == "GIF":
            tmp.write_bytes(gif_bytes(frames, frame_ms, hold_last_ms))
        else:
            _save_frames(frames, tmp, fmt, frame_ms, hold_last_ms)
    return path


# matplotlib's tab10: the colours of categories and clusters in every plot, the explorer and the app's map
CATEGORY_COLOURS = (
    "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf",
)  # fmt: skip


def category_labels(
    categories: tuple[np.ndarray, list[str]] | None, kept: np.ndarray | slice = slice(None)
) -> tuple[np.ndarray | None, dict[int, str] | None]:
    """(labels, label_names) for :func:`latent_scatter_figure` from ``categories`` (each drawing's
    category and their names) of the drawings ``kept``; (None, None) without categories."""
    return (None, None) if categories is None else (categories[0][kept], dict(enumerate(categories[1])))


@plain_text
def latent_scatter_figure(
    codes: np.ndarray,
    title: str = "latent space",
    labels: np.ndarray | None = None,
    label_names: dict[int, str] | None = None,
    ax=None,
    axis: str = "z",
    sizes: dict[int, int] | None = None,
):
    """Scatter of 2-D codes (N, 2); coloured by integer ``labels`` when given (e.g. clusters), the
    legend counting each label's codes, or ``sizes`` (its count among all, when a sample is drawn).

    Codes with more than two dims must be projected first: ``axis`` is what
    :func:`electric_sheep.analysis.latent.to_plane` says its plane is ("z" or "PC").
    """
    plt = pyplot()

    codes = np.asarray(codes, dtype=np.float64)
    one_d = codes.shape[1] == 1
    if one_d:  # a 1-D latent: spread along y by index so the points are visible
        codes = np.column_stack([codes[:, 0], np.arange(len(codes))])
    fig = None
    if ax is None:
        fig, ax = plt.subplots(figsize=(5.5, 5))
    if labels is None:
        ax.scatter(codes[:, 0], codes[:, 1], s=4, alpha=0.5, color="#3b6ea5", linewidths=0)
    else:
        for lab in np.unique(labels):
            m = labels == lab
            name = (label_names or {}).get(int(lab), "noise" if lab == -1 else f"cluster {lab}")
            color = "#bbbbbb" if lab == -1 else CATEGORY_COLOURS[int(lab) % len(CATEGORY_COLOURS)]
            count = (sizes or {}).get(int(lab), int(m.sum()))
            ax.scatter(codes[m, 0], codes[m, 1], s=5, alpha=0.7, label=f"{name} ({count:,})", color=color, linewidths=0)
        ax.legend(loc="best", fontsize=7, markerscale=2)
    ax.set_title(title)
    first, second = ("first principal component", "second principal component") if axis == "PC" else ("z[0]", "z[1]")
    ax.set_xlabel(first)
    ax.set_ylabel("drawing, in order (a 1-D latent)" if one_d else second)
    ax.grid(alpha=0.3)
    return fig if fig is not None else ax.figure


@plain_text
def manifold_figure(images: np.ndarray, grid: int, span: float, latent_dim: int, category: str | None = None):
    """The manifold grid with its latent coordinates on the axes; of a 1-D latent, whose rows are
    all the same line, that line once. ``category``: what a class-conditional model was told to draw."""
    plt = pyplot()
    told = f" as {category}" if category else ""
    if latent_dim == 1:
        fig, ax = plt.subplots(figsize=(10, 1.9))
        line = grid_image(images[:grid], ncols=grid, scale=1, pad=0)
        ax.imshow(np.asarray(line), cmap="gray", vmin=0, vmax=255, extent=(-span, span, 0, 2 * span / grid))
        ax.set_yticks([])
        ax.set_xlabel("z[0]")
        ax.set_title(f"what the decoder draws{told} along the latent line ({grid} steps)")
        fig.tight_layout()
        return fig
    tiles = grid_image(images, ncols=grid, scale=1, pad=0)
    fig, ax = plt.subplots(figsize=(8, 8))
    ax.imshow(np.asarray(tiles), cmap="gray", vmin=0, vmax=255, extent=(-span, span, -span, span))
    names = (
        ("z[0]", "z[1]") if latent_dim <= 2 else ("first principal direction (sd)", "second principal direction (sd)")
    )
    ax.set_xlabel(names[0])
    ax.set_ylabel(names[1])
    ax.set_title(f"what the decoder draws{told} across the latent plane ({grid} x {grid})")
    return fig


def reconstruction_figure(rows: dict[str, np.ndarray], indices: list[int], names: list[str] | None = None):
    """One row per kind (original, reconstruction, ...), drawings in columns; the title names the
    drawings by index, or by ``names`` (a folder of pictures: each file's name) when given."""
    n = len(indices)
    shown = [names[i] for i in indices[:12]] if names else [str(i) for i in indices[:12]]
    listed = f"{', '.join(shown)}{' ...' if n > 12 else ''}"
    if names:
        return rows_figure(rows, f"{listed} and {'its reconstruction' if n == 1 else 'their reconstructions'}")
    title = f"drawing {listed} and its reconstruction" if n == 1 else f"drawings {listed} and their reconstructions"
    return rows_figure(rows, title)


@plain_text
def rows_figure(rows: dict[str, np.ndarray], title: str):
    """One titled row of drawings per entry of ``rows`` (name -> (n, 28, 28)), n drawings a row."""
    plt = pyplot()

    n = max(len(images) for images in rows.values())
    fig, axes = plt.subplots(len(rows), 1, figsize=(max(4.0, n * 0.75), 1.3 * len(rows) + 0.5), squeeze=False)
    for ax, (name, images) in zip(axes[:, 0], rows.items(), strict=True):
        ax.imshow(np.asarray(grid_image(images, ncols=n, scale=1)), cmap="gray", vmin=0, vmax=255)
        ax.set_title(name, fontsize=9, loc="left")
        ax.axis("off")
    fig.suptitle(title)
    fig.tight_layout()
    return fig
