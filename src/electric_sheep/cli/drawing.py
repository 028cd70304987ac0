"""Commands that draw: draw, dream, interpolate, manifold, reconstruct."""

from __future__ import annotations

import warnings
from pathlib import Path

import click
import numpy as np

from ..errors import SheepWarning
from ..render.plots import MAX_FRAME_MS, MAX_TILES
from ..wording import counted
from .common import (
    SEED,
    _category_option,
    _default_out,
    _drawings_given_as_run_dir,
    _finish,
    _Finite,
    _json_option,
    _model,
    _model_for,
    _out_dir_option,
    _out_option,
    _pick,
    _pick_options,
    _run,
    _run_dir_arg,
    main,
)

DREAM_COLUMNS = 8  # dreams side by side in the animation; more go in further rows


@main.command()
@_run_dir_arg
@click.option("-n", "count", type=click.IntRange(1, MAX_TILES), default=64, show_default=True)
@click.option("--mean", type=_Finite(), default=None, help="Mean of z (the post used 1). Default: the model's prior.")
@click.option("--std", type=_Finite(0), default=None, help="Std of z (the post used 0.5). Default: the model's prior.")
@click.option("--temperature", type=_Finite(0), default=1.0, show_default=True, help="Scales the std.")
@click.option("--seed", type=SEED, default=0, show_default=True)
@_category_option("draws")
@click.option(
    "--candidates",
    type=click.IntRange(1, 64),
    default=None,
    help="Pixel samples per drawing, of which the one nearest the model's plan is kept "
    "(1: the pixel head's first sample). Default: the library's.",
)
@_out_option(Path("sheep.png"))
@_json_option
def draw(
    run_dir: Path,
    count: int,
    mean: float | None,
    std: float | None,
    temperature: float,
    seed: int,
    category: str | None,
    candidates: int | None,
    out: Path,
    as_json: bool,
) -> None:
    """Draw new sheep: decode random codes from the model's prior (fitted to its codes, or
    N(0, 1)), or from z ~ N(MEAN, STD), into a grid."""
    from ..analysis.generate import CANDIDATES
    from ..analysis.generate import draw as draw_fn
    from ..render.plots import grid_image, save_image
    from ..runs.checkpoint import warn_if_prior_unlearned

    model = _model_for(run_dir, category)
    if candidates is not None and model.pixel_head is None:
        message = f"{run_dir} has no pixel head to sample: --candidates changes nothing"
        warnings.warn(message, SheepWarning, stacklevel=2)
    gaussian = mean is not None or std is not None or model.prior is None
    if gaussian:
        warn_if_prior_unlearned(run_dir)
    candidates = candidates or CANDIDATES
    images = draw_fn(model, count, mean, std, temperature, seed, category, candidates, progress=not as_json)
    save_image(grid_image(images), out)
    m, s = (0.0 if mean is None else mean), (1.0 if std is None else std)
    source = (
        f"z ~ N({m:g}, {s * temperature:g})" if gaussian else f"the model's fitted prior (temperature {temperature:g})"
    )
    _finish(
        {
            "n": count,
            "mean": m if gaussian else None,
            "std": s if gaussian else None,
            "temperature": temperature,
            "seed": seed,
            "category": category,
            "candidates": candidates,
            "image": str(out),
        },
        as_json,
        [f"wrote {out} ({counted(count, 'drawing')}{' of ' + category if category else ''} from {source})"],
    )


@main.command()
@_run_dir_arg
@click.option(
    "-n", "count", type=click.IntRange(1, 64), default=4, show_default=True, help="Dreams, side by side in rows of 8."
)
@click.option("--frames", type=click.IntRange(2, 1000), default=96, show_default=True, help="Frames in one loop.")
@click.option(
    "--ms", type=click.IntRange(20, MAX_FRAME_MS), default=80, show_default=True, help="Milliseconds per frame."
)
@click.option("--seed", type=SEED, default=0, show_default=True)
@_category_option("dreams of")
@_out_option(Path("dream.gif"), "animation", "A .gif, .png (APNG) or .webp animation.")
@_json_option
def dream(
    run_dir: Path, count: int, frames: int, ms: int, seed: int, category: str | None, out: Path, as_json: bool
) -> None:
    """Do androids dream of electric sheep? A looping animation of drawings decoded along smooth
    random paths through the prior."""
    from ..analysis.generate import dream as dream_fn
    from ..render.plots import grid_image, save_animation
    from ..runs.checkpoint import warn_if_prior_unlearned

    model = _model_for(run_dir, category)
    if model.prior is None:  # a fitted prior follows the codes wherever they are
        warn_if_prior_unlearned(run_dir)
    drawings = dream_fn(model, count, frames, seed, progress=not as_json, category=category)  # (frames, n, 28, 28)
    # greyscale: small GIFs; many dreams in rows of DREAM_COLUMNS, not one strip thousands of pixels wide
    pictures = [grid_image(frame, ncols=min(count, DREAM_COLUMNS), scale=4) for frame in drawings]
    save_animation(pictures, out, ms, ms)
    what = counted(count, "dream") + (f" of {category}" if category else "")
    _finish(
        {"n": count, "frames": frames, "ms": ms, "seed": seed, "category": category, "animation": str(out)},
        as_json,
        [f"wrote {out} ({what}, {frames} frames of {ms} ms, looping)"],
    )


@main.command()
@_run_dir_arg
@click.option("--from", "start", type=click.IntRange(0), required=True, help="Index of the first drawing.")
@click.option("--to", "end", type=click.IntRange(0), required=True, help="Index of the last drawing.")
@click.option("--steps", type=click.IntRange(2, 1000), default=10, show_default=True)
@_pick_options
@_out_option(None, help="Default OUT_DIR/interpolation.png.")
@_out_dir_option
@_json_option
def interpolate(run_dir, start, end, steps, data, split, out, out_dir, as_json) -> None:
    """Decode the straight line between the latent codes of two drawings.

    Drawings given in place of RUN_DIR are read as --data, with the built-in model."""
    from ..analysis.generate import interpolate as interp
    from ..render.plots import grid_image, save_image

    run_dir, data = _drawings_given_as_run_dir(run_dir, data)
    images = _pick(run_dir, data, split, [start, end], "--from/--to")
    frames = interp(_model(run_dir), images[start], images[end], steps)
    row = np.concatenate([images[start][None] / 255.0, frames, images[end][None] / 255.0])
    out = out or _default_out(run_dir, out_dir) / "interpolation.png"
    title = f"drawing {start} to drawing {end}: {steps} decodings along the line between their codes"
    save_image(grid_image(row, ncols=len(row), title=title), out)
    _finish(
        {"from": start, "to": end, "steps": steps, "image": str(out)},
        as_json,
        [f"wrote {out} (drawing {start}, {steps} decoded steps, drawing {end})"],
    )


@main.command()
@_run_dir_arg
@click.option("--grid", type=click.IntRange(2, 100), default=20, show_default=True)
@click.option(
    "--range",
    "span",
    type=_Finite(0, min_open=True),
    default=3.0,
    show_default=True,
    help="Half-width of the plane (in prior standard deviations).",
)
@_category_option("decodes")
@_out_option(None, "figure", "Default OUT_DIR/manifold.png.")
@_out_dir_option
@_json_option
def manifold(run_dir, grid, span, category, out, out_dir, as_json) -> None:
    """The grid of decodings over the latent plane (first two principal directions for D > 2)."""
    from ..analysis.generate import manifold as manifold_fn
    from ..analysis.latent import validation_codes
    from ..render.plots import manifold_figure, save_figure
    from ..runs.checkpoint import warn_if_prior_unlearned

    model = _model_for(run_dir, category)
    if model.config.latent_dim > 2:
        codes = validation_codes(model, run_dir)  # the plane of the codes' own spread
    else:
        codes = None
        warn_if_prior_unlearned(run_dir)  # the plane spans the prior's +-RANGE
    images = manifold_fn(model, grid, span, codes, category)
    out = out or _default_out(run_dir, out_dir) / "manifold.png"
    save_figure(manifold_figure(images, grid, span, model.config.latent_dim, category), out)
    shape = f"{grid} decodings along z[0]" if model.config.latent_dim == 1 else f"{grid}x{grid} decodings"
    shape += f" of {category}" if category else ""
    result = {"grid": grid, "range": span, "category": category, "image": str(out)}
    _finish(result, as_json, [f"wrote {out} ({shape})"])


def _trailing_indices(run_dir: Path, indices: tuple[int, ...], extra: list[str]) -> tuple[Path, list[int]]:
    """Read ``--index 1 2 3`` as well as ``--index 1 --index 2 --index 3``.

    Click gives an option one value, so the 2 and 3 arrive as positional arguments, the first of
    them taken as RUN_DIR when RUN_DIR was left out. A whole number that is not an existing path
    is an index (after ``--index`` only); any other word is RUN_DIR, of which there is one.
    """
    builtin = _run(None)
    words = ([] if run_dir == builtin else [str(run_dir)]) + list(extra)
    numbers = [w for w in words if w.isdigit() and not Path(w).exists()]
    paths = [w for w in words if w not in numbers]
    if numbers and not indices:
        raise click.UsageError(f"unexpected argument {numbers[0]!r}: choose drawings with --index, e.g. --index 1 2 3")
    if len(paths) > 1:
        raise click.UsageError(f"unexpected extra argument {paths[1]!r}")
    return (Path(paths[0]) if paths else builtin), [*indices, *map(int, numbers)]


@main.command(context_settings={"allow_extra_args": True})
@_run_dir_arg
@click.option(
    "--index", "indices", type=click.IntRange(0), multiple=True,
    help="Drawings to reconstruct: --index 1 2 3 or --index 1 --index 2 ...",
)  # fmt: skip
@click.option(
    "-n", "count", type=click.IntRange(1, 200), default=16, show_default=True, help="Without --index: the first N."
)
@click.option("--sharpen", is_flag=True, help="Also show the post's 3x3 sharpening of each reconstruction.")
@_pick_options
@_out_option(None, "figure", "Default OUT_DIR/reconstructions.png.")
@_out_dir_option
@_json_option
@click.pass_context
def reconstruct(ctx, run_dir, indices, count, sharpen, data, split, out, out_dir, as_json) -> None:
    """Originals beside their reconstructions (and optionally sharpened reconstructions).

    Drawings given in place of RUN_DIR are read as --data, with the built-in model."""
    from ..analysis.generate import reconstruct as recon_fn
    from ..analysis.generate import sharpen as sharpen_fn
    from ..render.plots import reconstruction_figure, save_figure

    run_dir, indices = _trailing_indices(run_dir, indices, ctx.args)
    run_dir, data = _drawings_given_as_run_dir(run_dir, data)
    images = _pick(run_dir, data, split, indices, "--index")
    idx = indices or list(range(min(count, len(images))))
    originals = images[idx]
    recon = recon_fn(_model(run_dir), originals)
    rows = {"original": originals / 255.0, "reconstruction": recon}
    if sharpen:
        rows["sharpened"] = sharpen_fn(recon)
    out = out or _default_out(run_dir, out_dir) / "reconstructions.png"
    save_figure(reconstruction_figure(rows, idx), out)
    mse = float(((originals / 255.0 - recon) ** 2).mean())
    _finish(
        {"indices": idx, "mse": mse, "image": str(out)},
        as_json,
        [f"wrote {out} ({counted(len(idx), 'drawing')}, mean squared error {mse:.4f} per pixel)"],
    )
