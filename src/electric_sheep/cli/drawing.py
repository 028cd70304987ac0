"""Commands that draw: draw, dream, interpolate, manifold, reconstruct."""

from __future__ import annotations

from pathlib import Path

import click

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
    _out_dir_option,
    _out_option,
    _pick_options,
    _run,
    _run_dir_arg,
    main,
)


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
    from ..render.drawing_outputs import draw_picture

    result = draw_picture(
        run_dir,
        out,
        count,
        mean=mean,
        std=std,
        temperature=temperature,
        seed=seed,
        category=category,
        candidates=candidates,
        progress=not as_json,
    )
    of = f" of {category}" if category else ""
    _finish(result, as_json, [f"wrote {out} ({counted(count, 'drawing')}{of} from {result['source']})"])


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
    from ..render.drawing_outputs import dream_animation

    progress = not as_json
    result = dream_animation(run_dir, out, count, frames=frames, ms=ms, seed=seed, category=category, progress=progress)
    what = counted(count, "dream") + (f" of {category}" if category else "")
    _finish(result, as_json, [f"wrote {out} ({what}, {frames} frames of {ms} ms, looping)"])


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
    from ..render.drawing_outputs import interpolation_picture

    run_dir, data = _drawings_given_as_run_dir(run_dir, data)
    out = out or _default_out(run_dir, out_dir) / "interpolation.png"
    result = interpolation_picture(run_dir, out, start, end, steps=steps, data=data, split=split)
    _finish(result, as_json, [f"wrote {out} (drawing {start}, {steps} decoded steps, drawing {end})"])


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
    from ..render.drawing_outputs import manifold_picture

    out = out or _default_out(run_dir, out_dir) / "manifold.png"
    result = manifold_picture(run_dir, out, grid, span, category=category)
    latent_dim = result["latent_dim"]
    shape = f"{grid} decodings along z[0]" if latent_dim == 1 else f"{grid}x{grid} decodings"
    shape += f" of {category}" if category else ""
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
    from ..render.drawing_outputs import reconstruction_picture

    run_dir, indices = _trailing_indices(run_dir, indices, ctx.args)
    run_dir, data = _drawings_given_as_run_dir(run_dir, data)
    out = out or _default_out(run_dir, out_dir) / "reconstructions.png"
    result = reconstruction_picture(run_dir, out, indices, count=count, sharpen=sharpen, data=data, split=split)
    shown = counted(len(result["indices"]), "drawing")
    _finish(result, as_json, [f"wrote {out} ({shown}, mean squared error {result['mse']:.4f} per pixel)"])
