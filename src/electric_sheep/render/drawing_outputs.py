"""What the drawing commands write: a file's first drawings, and from a run folder new drawings,
dreams, an interpolation, the manifold and reconstructions; each one picture, with the numbers the
command reports.

Each function loads what it needs, makes the drawings (:mod:`electric_sheep.analysis.generate`),
saves the picture and returns a JSON-ready dict; ``sheep draw`` and the others only parse and print.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import numpy as np

from ..analysis import generate
from ..core.model import VAE
from ..errors import SheepError, SheepWarning
from ..runs.checkpoint import load_model, warn_if_prior_unlearned
from ..runs.run_sources import run_data
from ..wording import counted
from .plots import grid_image, manifold_figure, reconstruction_figure, save_animation, save_figure, save_image

DREAM_COLUMNS = 8  # dreams side by side in the animation; more go in further rows
DREAM_SCALE = 4  # pixels per drawing pixel in a dream's frames


def first_drawings_picture(
    data: str | Path,
    out: str | Path,
    count: int = 64,
    *,
    split: str = "all",
    recognized: bool | None = None,
    cache_dir: str | Path | None = None,
) -> dict[str, Any]:
    """The first ``count`` drawings of ``data`` (a file or a downloaded category) in a grid at
    ``out``: of the whole file in its order (``split`` "all"), or of one split."""
    from ..data.drawings import load_drawings
    from ..data.sources import split_view

    drawings = load_drawings(data, recognized=recognized, cache_dir=cache_dir)
    images = np.asarray(split_view(drawings, split)[:count])
    save_image(grid_image(images), out)
    return {"image": str(out), "n": len(images), "split": split, "data": str(drawings.source)}


def _model_for(run_dir: str | Path, category: str | None) -> VAE:
    """The run's model; a ``category`` it cannot draw stops here, before any warning or work."""
    model = load_model(run_dir)
    if category is not None:
        model.config.category_index(category)
    return model


def draw_picture(
    run_dir: str | Path,
    out: str | Path,
    count: int = 64,
    *,
    mean: float | None = None,
    std: float | None = None,
    temperature: float = 1.0,
    seed: int = 0,
    category: str | None = None,
    candidates: int | None = None,
    progress: bool = False,
) -> dict[str, Any]:
    """``count`` new drawings in a grid at ``out``: codes from the model's prior (fitted to its
    codes, or N(0, 1)), or from N(mean, std^2) when either is given. ``candidates`` None: the
    library's :data:`~electric_sheep.analysis.generate.CANDIDATES`."""
    model = _model_for(run_dir, category)
    if candidates is not None and model.pixel_head is None:
        message = f"{run_dir} has no pixel head to sample: --candidates changes nothing"
        warnings.warn(message, SheepWarning, stacklevel=2)
    gaussian = mean is not None or std is not None or model.prior is None
    if gaussian:
        warn_if_prior_unlearned(run_dir)
    candidates = candidates or generate.CANDIDATES
    images = generate.draw(model, count, mean, std, temperature, seed, category, candidates, progress=progress)
    save_image(grid_image(images), out)
    m, s = (0.0 if mean is None else mean), (1.0 if std is None else std)
    source = (
        f"z ~ N({m:g}, {s * temperature:g})" if gaussian else f"the model's fitted prior (temperature {temperature:g})"
    )
    return {
        "n": count,
        "mean": m if gaussian else None,
        "std": s if gaussian else None,
        "temperature": temperature,
        "seed": seed,
        "category": category,
        "candidates": candidates,
        "source": source,
        "image": str(out),
    }


def dream_animation(
    run_dir: str | Path,
    out: str | Path,
    count: int = 4,
    *,
    frames: int = 96,
    ms: int = 80,
    seed: int = 0,
    category: str | None = None,
    progress: bool = False,
) -> dict[str, Any]:
    """A looping animation at ``out`` (.gif, .png or .webp) of ``count`` drawings decoded along
    smooth closed paths through the prior, ``frames`` frames of ``ms`` milliseconds."""
    model = _model_for(run_dir, category)
    if model.prior is None:  # a fitted prior follows the codes wherever they are
        warn_if_prior_unlearned(run_dir)
    drawings = generate.dream(model, count, frames, seed, progress=progress, category=category)  # (frames, n, 28, 28)
    # greyscale: small GIFs; many dreams in rows, not one strip thousands of pixels wide
    pictures = [grid_image(frame, ncols=min(count, DREAM_COLUMNS), scale=DREAM_SCALE) for frame in drawings]
    save_animation(pictures, out, ms, ms)
    return {"n": count, "frames": frames, "ms": ms, "seed": seed, "category": category, "animation": str(out)}


def picked_drawings(
    run_dir: str | Path, data: str | None, split: str, indices: list[int]
) -> tuple[np.ndarray, list[str] | None]:
    """The split's drawings (of ``data``, else of the run's own data), after checking that the
    requested indices exist, and of a folder of pictures their files' names (each split holds
    every picture), else None."""
    drawings = run_data(run_dir, data, how="--data DATA")
    drawings.check_split(split)
    images = drawings.split(split)
    bad = [i for i in indices if i >= len(images)]
    if bad:
        raise SheepError(f"drawing {bad[0]} is out of range: the {split} split has {counted(len(images), 'drawing')}")
    return images, drawings.meta.get("files")


def interpolation_picture(
    run_dir: str | Path,
    out: str | Path,
    start: int,
    end: int,
    *,
    steps: int = 10,
    data: str | None = None,
    split: str = "test",
) -> dict[str, Any]:
    """Drawings ``start`` and ``end`` of the split with ``steps`` decodings along the straight line
    between their codes, in one row at ``out``."""
    images, _ = picked_drawings(run_dir, data, split, [start, end])
    frames = generate.interpolate(load_model(run_dir), images[start], images[end], steps)
    row = np.concatenate([images[start][None] / 255.0, frames, images[end][None] / 255.0])
    title = f"drawing {start} to drawing {end}: {steps} decodings along the line between their codes"
    save_image(grid_image(row, ncols=len(row), title=title), out)
    return {"from": start, "to": end, "steps": steps, "image": str(out)}


def manifold_picture(
    run_dir: str | Path,
    out: str | Path,
    grid: int = generate.MANIFOLD_GRID,
    span: float = generate.MANIFOLD_SPAN,
    *,
    category: str | None = None,
) -> dict[str, Any]:
    """The grid x grid decodings over the latent plane at ``out``: the plane itself for a 2-D
    latent, else that of the validation codes' first two principal directions."""
    from ..analysis.latent import validation_codes

    model = _model_for(run_dir, category)
    latent_dim = model.config.latent_dim
    if latent_dim > 2:
        codes = validation_codes(model, run_dir)  # the plane of the codes' own spread
    else:
        codes = None
        warn_if_prior_unlearned(run_dir)  # the plane spans the prior's +-span
    images = generate.manifold(model, grid, span, codes, category)
    save_figure(manifold_figure(images, grid, span, latent_dim, category), out)
    return {"grid": grid, "range": span, "category": category, "latent_dim": latent_dim, "image": str(out)}


def reconstruction_picture(
    run_dir: str | Path,
    out: str | Path,
    indices: list[int] | None = None,
    *,
    count: int = 16,
    sharpen: bool = False,
    data: str | None = None,
    split: str = "test",
) -> dict[str, Any]:
    """The split's drawings ``indices`` (else its first ``count``) above their reconstructions (and
    the post's sharpening of them) at ``out``, and the mean squared error per pixel (and, of
    pictures, their files' names)."""
    images, names = picked_drawings(run_dir, data, split, list(indices or []))
    idx = list(indices) if indices else list(range(min(count, len(images))))
    originals = images[idx]
    recon = generate.reconstruct(load_model(run_dir), originals)
    rows = {"original": originals / 255.0, "reconstruction": recon}
    if sharpen:
        rows["sharpened"] = generate.sharpen(recon)
    save_figure(reconstruction_figure(rows, idx, names), out)
    mse = float(((originals / 255.0 - recon) ** 2).mean())
    named = {"names": [names[i] for i in idx]} if names else {}
    return {"indices": idx, **named, "mse": mse, "image": str(out)}
