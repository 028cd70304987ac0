"""The ``sheep`` command line: each command is a thin call into a library function."""

from __future__ import annotations

import io
import json
import math
import os
import shlex
import shutil
import sys
import warnings
from functools import partial
from pathlib import Path

import click
import numpy as np

from . import data as data_mod
from .anomaly import DEFAULT_SCORE, SCORES
from .errors import SheepError, SheepWarning
from .fileio import json_text
from .plots import MAX_TILES
from .presets import PRESET_MODEL
from .schedules import SCHEDULES
from .streaming import Shard, Store

PARTS = ".anomaly_parts"  # inside OUT_DIR: the score columns of `sheep anomalies` until its CSV is written


class _Group(click.Group):
    """Turn every :class:`SheepError` into one line on stderr and exit status 2, no traceback,
    every :class:`SheepWarning` into one "warning: ..." line on stderr, when it happens, and
    Ctrl-C into exit status 130 (what was saved stays saved)."""

    def invoke(self, ctx: click.Context):
        with warnings.catch_warnings():  # restores Python's own warning display afterwards
            warnings.showwarning = _one_line_warnings(warnings.showwarning)
            try:
                return super().invoke(ctx)
            except SheepError as e:
                click.echo(f"error: {_shown(str(e))}", err=True)
                sys.exit(2)
            except KeyboardInterrupt:
                click.echo("stopped by Ctrl-C", err=True)
                sys.exit(130)


def _shown(message: str) -> str:
    """``message`` with the built-in model's folder (deep inside the installed package) named as
    what it is to the user."""
    from .checkpoint import builtin_run_dir

    return message.replace(str(builtin_run_dir()), "the built-in model")


def _one_line_warnings(show):
    """A ``warnings.showwarning`` that prints our warnings as one line and leaves others to ``show``."""

    def display(message, category, filename, lineno, file=None, line=None):
        if issubclass(category, SheepWarning):
            click.echo(f"warning: {_shown(str(message))}", err=True)
        else:
            show(message, category, filename, lineno, file, line)

    return display


class _Finite(click.FloatRange):
    """A float in range that is also finite: nan slips through click's range checks, inf through
    open upper bounds, and either would give a blank picture or a matplotlib traceback."""

    def convert(self, value, param, ctx):
        number = super().convert(value, param, ctx)
        if not math.isfinite(number):
            self.fail(f"{value!r} is not a finite number", param, ctx)
        return number


def _epoch_list(ctx, param, value: str | None) -> list[int] | None:
    """--epochs 5,10,15,20 as a list of integers (None when not given)."""
    if value is None:
        return None
    try:
        return [int(e) for e in value.split(",") if e.strip()]
    except ValueError:
        raise click.BadParameter(f"give comma-separated integers, e.g. 5,10,15,20; got {value!r}") from None


def _channels(ctx, param, value: str | None) -> tuple[int, int] | None:
    """--channels 16,32 as the default preset's two filter counts (None when not given)."""
    if value is None:
        return None
    try:
        c1, c2 = (int(c) for c in value.split(","))
    except ValueError:
        raise click.BadParameter(f"give two comma-separated integers, e.g. 16,32; got {value!r}") from None
    if min(c1, c2) < 1:
        raise click.BadParameter(f"filter counts must be >= 1, got {value!r}")
    return c1, c2


def _out_option(default: Path | None, kind: str = "picture", help: str | None = None):
    """-o/--out for a picture, figure or animation: its suffix checked while parsing, before any
    work is done (an unknown one is a one-line error)."""
    from .plots import figure_format, picture_format

    checks = {"picture": picture_format, "figure": figure_format, "animation": partial(picture_format, animated=True)}
    check = checks[kind]

    def checked(ctx, param, value: Path | None) -> Path | None:
        if value is not None:
            check(value)
        return value

    return click.option(
        "-o", "--out", type=click.Path(path_type=Path), default=default, show_default=default is not None,
        callback=checked, help=help,
    )  # fmt: skip


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="electric-sheep")
def main() -> None:
    """electric-sheep: teach a computer to recognise, remember and draw sheep."""


_run_dir_arg = click.argument(
    "run_dir", type=click.Path(path_type=Path), required=False, callback=lambda c, p, v: _run(v)
)
_run_and_data_args = click.argument("paths", nargs=-1, metavar="[RUN_DIR] [DATA]")


def _run(run_dir: Path | None) -> Path:
    """RUN_DIR, or the pretrained sheep shipped with the package when none is given."""
    from .checkpoint import builtin_run_dir

    return Path(run_dir) if run_dir is not None else builtin_run_dir()


def _run_and_data(paths: tuple[str, ...], data_required: bool = False) -> tuple[Path, str | None]:
    """Split ``[RUN_DIR] [DATA]``: one path is RUN_DIR when it is a run folder, else DATA (a file,
    or a folder of pictures: one of figures beside our JSON and CSV files is a mistyped RUN_DIR)."""
    from .checkpoint import is_run_dir

    if len(paths) > 2:
        raise click.UsageError("expected at most RUN_DIR and DATA")
    if len(paths) == 2:
        return Path(paths[0]), paths[1]
    if len(paths) == 1 and is_run_dir(paths[0]):
        if data_required:
            raise click.UsageError(f"missing DATA: give the drawings after RUN_DIR ({paths[0]} DATA)")
        return Path(paths[0]), None
    if len(paths) == 1 and Path(paths[0]).is_dir() and not data_mod.is_picture_folder(Path(paths[0])):
        from .errors import DataError

        raise DataError(paths[0], "not a run folder (no config.json; create one with `sheep train`)")
    if data_required and not paths:
        raise click.UsageError("missing DATA")
    return _run(None), (paths[0] if paths else None)


def _default_out(run_dir: Path, out_dir: Path | None) -> Path:
    """--out-dir, else RUN_DIR/analysis, else (built-in model, read-only) ./sheep-analysis."""
    if out_dir is not None:
        return out_dir
    return Path("sheep-analysis") if _is_builtin(run_dir) else run_dir / "analysis"


def _is_builtin(run_dir: Path) -> bool:
    """The pretrained run inside the package: read-only, its files are the model card's."""
    from .checkpoint import builtin_run_dir

    return run_dir.resolve() == builtin_run_dir().resolve()


def _cache_option(f):
    return click.option(
        "--dir",
        "cache_dir",
        type=click.Path(path_type=Path),
        default=None,
        help=f"Cache folder (default ${data_mod.CACHE_ENV} or ~/.cache/electric-sheep).",
    )(f)


@main.command()
@click.argument("category", required=False)
@click.option("--format", "fmt", type=click.Choice(list(data_mod.FILE_FORMATS)), default="bitmap", show_default=True)
@_cache_option
@click.option("--list", "list_", is_flag=True, help="List the 345 official categories and exit.")
@click.option("--json", "as_json", is_flag=True, help="Print the path (or the list) as JSON.")
def download(category: str | None, fmt: str, cache_dir: Path | None, list_: bool, as_json: bool) -> None:
    """Download CATEGORY from the official Quick, Draw! storage into the cache."""
    from .download import download as do_download

    if list_:
        names = data_mod.categories()
        click.echo(json.dumps(names) if as_json else "\n".join(names))
        return
    if not category:
        raise click.UsageError("give a CATEGORY (or --list)")
    path = do_download(category, fmt, cache_dir)
    _finish({"path": str(path), "category": category, "format": fmt}, as_json, [f"{path}"])


@main.command()
@click.argument("data")
@click.option("--split", type=click.Choice(data_mod.SPLITS), default="train", show_default=True)
@click.option(
    "-n", "count", type=click.IntRange(1, MAX_TILES), default=64, show_default=True, help="How many drawings."
)
@_out_option(Path("grid.png"))
@click.option("--recognized/--all", default=None, help="Stroke formats: keep only recognised drawings.")
@click.option("--json", "as_json", is_flag=True, help="Print the numbers and paths as one JSON object.")
@_cache_option
def show(
    data: str, split: str, count: int, out: Path, recognized: bool | None, as_json: bool, cache_dir: Path | None
) -> None:
    """Write a PNG grid of the first drawings of DATA (a file or a downloaded category)."""
    from .plots import grid_image, save_image

    drawings = data_mod.load_drawings(data, recognized=recognized, cache_dir=cache_dir)
    images = drawings.split(split, limit=count)
    save_image(grid_image(images), out)
    result = {"image": str(out), "n": len(images), "split": split, "data": str(drawings.source)}
    _finish(result, as_json, [f"wrote {out} ({len(images)} {split} drawings from {drawings.source})"])


@main.command()
@click.argument("data")
@click.option("--recognized/--all", default=None, help="Stroke formats: keep only recognised drawings.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@_cache_option
def info(data: str, recognized: bool | None, as_json: bool, cache_dir: Path | None) -> None:
    """Count, split sizes, format and mean ink per drawing of DATA."""
    drawings = data_mod.load_drawings(data, recognized=recognized, cache_dir=cache_dir)
    summary = dataset_summary(drawings)
    if as_json:
        click.echo(json.dumps(summary))
        return
    click.echo(f"{summary['path']}\n  format: {summary['format']}\n  drawings: {summary['count']}")
    splits = ", ".join(f"{k} {v}" for k, v in summary["splits"].items())
    click.echo(f"  splits: {splits}" + (" (pictures: each split holds all of them)" if "files" in summary else ""))
    click.echo(f"  mean ink per drawing: {summary['mean_ink']:.2f} / 255 per pixel")
    if "files" in summary:
        files = summary["files"]
        click.echo(f"  files: {', '.join(files[:5])}" + (f" ... ({len(files)} in all)" if len(files) > 5 else ""))


def dataset_summary(drawings: data_mod.Drawings) -> dict:
    """The numbers ``sheep info`` prints."""
    return {
        "path": str(drawings.source),
        "format": drawings.format,
        "count": len(drawings),
        "splits": {k: int(len(v)) for k, v in drawings.splits.items()},
        "mean_ink": drawings.mean_ink(),
        "skipped": drawings.skipped,
        **({"files": list(drawings.meta["files"])} if "files" in drawings.meta else {}),
    }


@main.command()
@click.argument("data", nargs=-1, required=True)
@click.option(
    "--preset",
    type=click.Choice(list(PRESET_MODEL)),
    default=None,
    help="Default: default (with --resume: the run's).",
)
@click.option(
    "--epochs",
    type=click.IntRange(1),
    default=None,
    help="Default: 20, or more on a small set, enough for 2,000 steps (seed preset: 30).",
)
@click.option(
    "--latent-dim",
    type=click.IntRange(1),
    default=None,
    help="Default: the preset's, 16 (seed: 2); with --resume: the run's.",
)
@click.option(
    "--pixel-head",
    type=click.IntRange(0),
    default=None,
    help="Default preset: channels of the head that draws each pixel given the ones before it "
    "(default 16); 0: pixels independent given z, drawn grey where the model is unsure.",
)
@click.option(
    "--channels",
    callback=_channels,
    default=None,
    metavar="C1,C2",
    help="Default preset: filters of its two strided convs. Default 8,24; 32,64 (with --hidden 256) models "
    "the drawings a little better and scores several times slower on a CPU (docs/performance.md).",
)
@click.option(
    "--hidden",
    type=click.IntRange(1),
    default=None,
    help="Default preset: width of its dense layer between convs and latent. Default 128.",
)
@click.option("--kl-start", type=click.IntRange(0), default=None, help="Epoch after which the KL weight rises.")
@click.option("--kl-steep", type=click.IntRange(0), default=None, help="Epochs over which it rises to 1.")
@click.option(
    "--kl-schedule",
    type=click.Choice(list(SCHEDULES)),
    default=None,
    help="; ".join(f"{name}: {schedule.purpose}" for name, schedule in SCHEDULES.items()) + ".",
)
@click.option(
    "--free-bits", type=_Finite(0), default=None, help="Minimum KL in nats per latent dim. Default 1 (seed: 0)."
)
@click.option(
    "--flip/--no-flip",
    default=None,
    help="Mirror drawings left to right at random while training. Default on (seed: off); "
    "turn it off for writing, where a mirrored letter is another letter.",
)
@click.option("--batch-size", type=click.IntRange(2), default=None, help="Per process. Default 32 (seed: 8).")
@click.option("--lr", type=_Finite(0, min_open=True), default=None)
@click.option(
    "--limit", type=click.IntRange(2), default=None, help="Train on the first N drawings of the split (of each file)."
)
@click.option(
    "--balance/--no-balance",
    default=None,
    help="Several files: draw every category equally often, whatever its size. Default off.",
)
@click.option(
    "--conditional",
    is_flag=True,
    help="Several files: one class-conditional model, each file a category (`sheep draw --category`).",
)
@click.option("--seed", type=int, default=None, help="Default: 0 (with --resume: the run's).")
@click.option("--device", default=None, help="cpu, cuda, cuda:1 ... (default: CUDA when present).")
@click.option(
    "--threads",
    type=click.IntRange(0),
    default=None,
    help="CPU threads for the training steps. Default 1, which keeps its speed on a busy machine; "
    "0: all cores (faster on an idle machine). With --resume: the run's.",
)
@click.option(
    "--out", "run_dir", type=click.Path(path_type=Path), default=None, help="Run folder (default runs/<preset>)."
)
@click.option(
    "--resume", is_flag=True, help="Continue the run in --out from its last checkpoint, with its own settings."
)
@click.option("--quiet", is_flag=True, help="No progress bars.")
@click.option(
    "--json", "as_json", is_flag=True, help="At the end, print the run folder and each epoch's metrics as JSON."
)
def train(
    data: str,
    preset: str,
    epochs,
    latent_dim,
    pixel_head,
    channels,
    hidden,
    kl_start,
    kl_steep,
    kl_schedule,
    free_bits,
    flip,
    batch_size,
    lr,
    limit,
    balance,
    conditional,
    seed,
    device,
    threads,
    run_dir,
    resume,
    quiet,
    as_json,
) -> None:
    """Train a VAE on DATA; checkpoints, metrics and TensorBoard logs go to the run folder.

    DATA: one file or category, or several (`sheep train sheep cat dog`, paths, or a pattern such
    as 'data/*.npy'): they train as one set, read from disk as batches need them."""
    from .train import is_main_process, train_on_data

    run_dir = run_dir or Path("runs") / (preset or "default")
    history = train_on_data(
        list(data),
        run_dir,
        preset=preset,
        latent_dim=latent_dim,
        pixel_head=pixel_head,
        channels=channels,
        hidden=hidden,
        resume=resume,
        progress=not (quiet or as_json),
        log=(lambda line: None) if as_json else click.echo,
        epochs=epochs,
        kl_start=kl_start,
        kl_steep=kl_steep,
        kl_schedule=kl_schedule,
        free_bits=free_bits,
        flip=flip,
        batch_size=batch_size,
        lr=lr,
        limit=limit,
        balance=balance,
        conditional=conditional,
        seed=seed,
        device=device,
        threads=threads,
    )
    if is_main_process():
        result = {"run_dir": str(run_dir), "epochs": len(history), "history": history}
        quoted = shlex.quote(str(run_dir))  # the hints below can be pasted into a shell
        lines = [
            f"run saved in {run_dir} (tensorboard --logdir {quoted})",
            f"next: sheep draw {quoted}; sheep report {quoted} -o report.html",
        ]
        _finish(result, as_json, lines)


@main.command()
@_run_and_data_args
@click.option("--k", type=click.IntRange(1), default=1000, show_default=True, help="Importance samples (IWAE).")
@click.option("--split", type=click.Choice(data_mod.SPLITS), default="test", show_default=True)
@click.option("--limit", type=click.IntRange(1), default=None, help="Evaluate the first N drawings only.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as one JSON object only.")
def evaluate(paths, k: int, split: str, limit: int | None, as_json: bool) -> None:
    """Held-out negative ELBO and IWAE NLL (nats per drawing), MSE and KL; saved to RUN_DIR/eval.json
    (for the built-in model, to ./sheep-analysis/eval.json)."""
    from .evaluate import evaluate_run

    run_dir, data = _run_and_data(paths)
    # The built-in model's eval.json is its model card's figure: write beside the user instead.
    out = (_default_out(run_dir, None) if _is_builtin(run_dir) else run_dir) / "eval.json"
    result = evaluate_run(run_dir, data, k=k, split=split, limit=limit, progress=not as_json, out=out)
    if as_json:
        click.echo(json_text(result))
        return
    click.echo(f"{result['preset']} preset on {result['n']} {split} drawings of {result['data']}:")
    click.echo(f"  negative ELBO  {result['nelbo']:.2f} nats")
    click.echo(f"  IWAE NLL       {result['iwae_nll']:.2f} nats (k = {k})")
    click.echo(f"  MSE            {result['mse']:.5f} per pixel")
    click.echo(f"  KL             {result['kl']:.3f} nats")
    click.echo(f"wrote {out}")


# --------------------------------------------------------------------------- using a trained model


def _out_dir_option(f):
    return click.option(
        "--out-dir",
        type=click.Path(path_type=Path),
        default=None,
        help="Where figures and numbers go (default RUN_DIR/analysis).",
    )(f)


def _json_option(f):
    return click.option("--json", "as_json", is_flag=True, help="Print the numbers and paths as one JSON object.")(f)


def _pick_options(f):
    f = click.option("--split", type=click.Choice(data_mod.SPLITS), default="test", show_default=True)(f)
    return click.option("--data", default=None, help="Drawings to pick from (default: the run's data).")(f)


def _pick(run_dir: Path, data: str | None, split: str, indices: list[int], flag: str) -> np.ndarray:
    """The split's drawings, after checking that the requested indices exist."""
    from .checkpoint import run_data

    images = run_data(run_dir, data, how="--data DATA").split(split)
    bad = [i for i in indices if i >= len(images)]
    if bad:
        raise SheepError(f"{flag} {bad[0]} is out of range: the {split} split has {len(images)} drawings")
    return images


def _finish(result: dict, as_json: bool, lines: list[str]) -> None:
    """Print either the JSON object alone or the human lines (always saying where files went);
    on stderr when a file went to standard output (``-o /dev/stdout``), to keep it whole."""
    err = any(_is_stdout(v) for v in result.values() if isinstance(v, str))
    if as_json:
        click.echo(json_text(result), err=err)
    else:
        for line in lines:
            click.echo(line, err=err)


def _is_stdout(path: str) -> bool:
    try:
        return os.path.samestat(os.stat(path), os.fstat(sys.stdout.fileno()))
    except (OSError, ValueError, io.UnsupportedOperation):  # no such file, or stdout is not a real file
        return False


def _model(run_dir: Path):
    from .checkpoint import load_model

    return load_model(run_dir)


@main.command()
@_run_dir_arg
@click.option("-n", "count", type=click.IntRange(1, MAX_TILES), default=64, show_default=True)
@click.option("--mean", type=_Finite(), default=None, help="Mean of z (the post used 1). Default: the model's prior.")
@click.option("--std", type=_Finite(0), default=None, help="Std of z (the post used 0.5). Default: the model's prior.")
@click.option("--temperature", type=_Finite(0), default=1.0, show_default=True, help="Scales the std.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--category", default=None, help="What a class-conditional model draws (one of its categories).")
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
    out: Path,
    as_json: bool,
) -> None:
    """Draw new sheep: decode random codes from the model's prior (fitted to its codes, or
    N(0, 1)), or from z ~ N(MEAN, STD), into a grid."""
    from .checkpoint import warn_if_prior_unlearned
    from .generate import draw as draw_fn
    from .plots import grid_image, save_image

    model = _model(run_dir)
    gaussian = mean is not None or std is not None or model.prior is None
    if gaussian:
        warn_if_prior_unlearned(run_dir)
    images = draw_fn(model, count, mean, std, temperature, seed, category)
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
            "image": str(out),
        },
        as_json,
        [f"wrote {out} ({count} drawings{' of ' + category if category else ''} from {source})"],
    )


@main.command()
@_run_dir_arg
@click.option("-n", "count", type=click.IntRange(1, 64), default=4, show_default=True, help="Dreams side by side.")
@click.option("--frames", type=click.IntRange(2, 1000), default=96, show_default=True, help="Frames in one loop.")
@click.option("--ms", type=click.IntRange(20), default=80, show_default=True, help="Milliseconds per frame.")
@click.option("--seed", type=int, default=0, show_default=True)
@_out_option(Path("dream.gif"), "animation", "A .gif, .png (APNG) or .webp animation.")
@_json_option
def dream(run_dir: Path, count: int, frames: int, ms: int, seed: int, out: Path, as_json: bool) -> None:
    """Do androids dream of electric sheep? A looping animation of drawings decoded along smooth
    random paths through the prior."""
    from .checkpoint import warn_if_prior_unlearned
    from .generate import dream as dream_fn
    from .plots import grid_image, save_animation

    model = _model(run_dir)
    if model.prior is None:  # a fitted prior follows the codes wherever they are
        warn_if_prior_unlearned(run_dir)
    drawings = dream_fn(model, count, frames, seed)  # (frames, n, 28, 28)
    pictures = [grid_image(frame, ncols=count, scale=4) for frame in drawings]  # greyscale: small GIFs
    save_animation(pictures, out, ms, ms)
    _finish(
        {"n": count, "frames": frames, "ms": ms, "seed": seed, "animation": str(out)},
        as_json,
        [f"wrote {out} ({count} dreams, {frames} frames of {ms} ms, looping)"],
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
    """Decode the straight line between the latent codes of two drawings."""
    from .generate import interpolate as interp
    from .plots import grid_image, save_image

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
@_out_option(None, "figure", "Default OUT_DIR/manifold.png.")
@_out_dir_option
@_json_option
def manifold(run_dir, grid, span, out, out_dir, as_json) -> None:
    """The grid of decodings over the latent plane (first two principal directions for D > 2)."""
    from .checkpoint import warn_if_prior_unlearned
    from .generate import manifold as manifold_fn
    from .latent import validation_codes
    from .plots import manifold_figure, save_figure

    model = _model(run_dir)
    if model.config.latent_dim > 2:
        codes = validation_codes(model, run_dir)  # the plane of the codes' own spread
    else:
        codes = None
        warn_if_prior_unlearned(run_dir)  # the plane spans the prior's +-RANGE
    images = manifold_fn(model, grid, span, codes)
    out = out or _default_out(run_dir, out_dir) / "manifold.png"
    save_figure(manifold_figure(images, grid, span, model.config.latent_dim), out)
    _finish({"grid": grid, "range": span, "image": str(out)}, as_json, [f"wrote {out} ({grid}x{grid} decodings)"])


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
    """Originals beside their reconstructions (and optionally sharpened reconstructions)."""
    from .generate import reconstruct as recon_fn
    from .generate import sharpen as sharpen_fn
    from .plots import reconstruction_figure, save_figure

    run_dir, indices = _trailing_indices(run_dir, indices, ctx.args)
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
        [f"wrote {out} ({len(idx)} drawings, mean squared error {mse:.4f} per pixel)"],
    )


@main.command()
@_run_and_data_args
@click.option(
    "--split",
    type=click.Choice([*data_mod.SPLITS, "all"]),
    default="train",
    show_default=True,
    help="The drawings to encode; all: every drawing in the file.",
)
@_out_dir_option
@_json_option
@click.option("--quiet", is_flag=True, help="No progress bar.")
def latent(paths, split, out_dir, as_json, quiet) -> None:
    """Encode every drawing (z_mean), save the codes and plot the latent space.

    The codes are written to disk as they are computed: run again with the same arguments after
    an interruption, it continues where it stopped."""
    from .checkpoint import run_data
    from .latent import latent_map

    run_dir, data = _run_and_data(paths)

    drawings = run_data(run_dir, data)
    shard = Shard.from_env()  # under torchrun each process encodes its share; the first plots
    result = latent_map(
        _model(run_dir),
        _split_view(drawings, split),
        _default_out(run_dir, out_dir),
        title=f"{split} drawings of {Path(drawings.source).name}",
        job=_job(run_dir, drawings, split),
        progress=not (quiet or as_json) and shard.main,
        shard=shard,
    )
    if not shard.main:
        return
    lines = [
        f"encoded {result['n']} drawings into {result['latent_dim']}-D codes: {result['codes']}",
        f"wrote {result['plot']}",
    ]
    if result["n_nonfinite"]:
        lines.insert(1, f"left out {result['n_nonfinite']} drawings whose codes are not finite")
    _finish(result, as_json, lines)


def _split_view(drawings, split: str):
    """A split's drawings, read from the file as they are needed (a whole category never in memory)."""
    from .sources import DrawingSet

    if split == "all":
        return drawings.images
    return DrawingSet.from_drawings([drawings], split)


def _job(run_dir, drawings, split: str) -> dict:
    """What a streamed result is of: a partial file of another job is not continued."""
    from .checkpoint import WEIGHTS
    from .data import data_fingerprint

    model = Path(run_dir) / WEIGHTS
    return {"data": data_fingerprint(drawings.source), "split": split, "model": data_fingerprint(model)}


@main.command()
@_run_dir_arg
@click.option(
    "--epochs",
    callback=_epoch_list,
    help="Comma-separated epochs to show [default: the post's 5,10,15,20 the run saved].",
)
@_out_option(None, "figure", "Default OUT_DIR/latent_epochs.png.")
@click.option("--gif", is_flag=True, help="Also animate every saved epoch: latent_epochs.gif beside the PNG.")
@_out_dir_option
@_json_option
def snapshots(run_dir, epochs, out, gif, out_dir, as_json) -> None:
    """The latent space after chosen epochs of training, side by side (from the run's saved codes)."""
    from .latent import snapshots as snapshots_fn
    from .latent import snapshots_animation

    out = out or _default_out(run_dir, out_dir) / "latent_epochs.png"
    result = snapshots_fn(run_dir, epochs, out)
    lines = [f"wrote {out} (epochs {', '.join(map(str, result['epochs']))})"]
    if gif:
        animated = snapshots_animation(run_dir, out.with_suffix(".gif"))
        result["animation"] = animated["animation"]
        lines.append(f"wrote {animated['animation']} ({len(animated['epochs'])} epochs, one per frame)")
    _finish(result, as_json, lines)


def _pair(kind):
    def parse(ctx, param, value):
        if value is None:
            return None
        try:
            lo, hi = (kind(v) for v in value.split(":"))
        except ValueError:
            raise click.BadParameter(f"expected LOW:HIGH, got {value!r}") from None
        if not (lo <= hi and lo > 0 and math.isfinite(hi)):  # also refuses nan and inf
            raise click.BadParameter(f"expected finite numbers 0 < LOW <= HIGH, got {value!r}")
        return lo, hi

    return parse


@main.command()
@_run_and_data_args
@click.option("--method", type=click.Choice(["kmeans", "dbscan"]), default="kmeans", show_default=True)
@click.option("--split", type=click.Choice(data_mod.SPLITS), default="train", show_default=True)
@click.option("--k", type=click.IntRange(2), default=None, help="k-means: clusters (default: the elbow).")
@click.option("--k-range", default="2:10", show_default=True, callback=_pair(int), help="k-means: elbow range.")
@click.option(
    "--eps", "eps_range", default="0.02:1.0", show_default=True, callback=_pair(float), help="DBSCAN: eps search range."
)
@click.option(
    "--min-samples",
    "ms_range",
    default="5:50",
    show_default=True,
    callback=_pair(int),
    help="DBSCAN: min_samples search range.",
)
@click.option("--trials", type=click.IntRange(1), default=40, show_default=True, help="DBSCAN: random trials.")
@click.option(
    "--clusters",
    "n_clusters",
    type=click.IntRange(1),
    default=None,
    help="Pick the setting that finds this many clusters.",
)
@click.option("--seed", type=int, default=0, show_default=True)
@_out_dir_option
@_json_option
def clusters(paths, method, split, k, k_range, eps_range, ms_range, trials, n_clusters, seed, out_dir, as_json) -> None:
    """Cluster the latent codes (k-means with the elbow, or DBSCAN with a random search)."""
    from .checkpoint import run_data
    from .latent import clusters as clusters_fn

    run_dir, data = _run_and_data(paths)
    images = run_data(run_dir, data).split(split)
    result = clusters_fn(
        _model(run_dir),
        images,
        _default_out(run_dir, out_dir),
        method,
        k=k,
        k_range=k_range,
        eps_range=eps_range,
        min_samples_range=ms_range,
        trials=trials,
        n_clusters=n_clusters,
        seed=seed,
        progress=not as_json,
    )
    if method == "kmeans":
        head = f"k-means with k = {result['k']} on {result['n']} codes; elbow plot {result['elbow_plot']}"
    else:
        head = (
            f"DBSCAN eps = {result['eps']:.3f}, min_samples = {result['min_samples']}: {result['clusters']} "
            f"clusters, {result['noise_fraction']:.1%} noise, silhouette {result['silhouette']:.3f} "
            f"({result['rule']}); table {result['table']}"
        )
    sizes = ", ".join(f"{'noise' if c < 0 else c}: {s}" for c, s in result["cluster_sizes"].items())
    _finish(
        result, as_json, [head, f"cluster sizes: {sizes}", f"wrote {result['scatter']}", f"wrote {result['gallery']}"]
    )


@main.command()
@click.argument("paths", nargs=-1, metavar="[RUN_DIR] DATA")
@click.option(
    "--split",
    type=click.Choice([*data_mod.SPLITS, "all"]),
    default="train",
    show_default=True,
    help="Which drawings of DATA to score (train: the 80% a model of DATA learned from); all: every drawing.",
)
@click.option(
    "--mix",
    "mix_spec",
    default=None,
    metavar="OTHER_DATA:FRACTION",
    help="Plant drawings of OTHER_DATA among DATA, FRACTION of its count, and measure detection.",
)
@click.option(
    "--train-on-mix",
    type=click.IntRange(1),
    default=None,
    metavar="EPOCHS",
    help="The honest case: first train a fresh model (RUN_DIR's preset) on the mixture itself.",
)
@click.option(
    "--trim",
    type=_Finite(0, 1, max_open=True),
    default=0.2,
    show_default=True,
    help="With --train-on-mix: set aside this share that a first model finds least typical (code-ink), "
    "then train a second model on the rest (0: train once).",
)
@click.option(
    "--latent-dim",
    type=click.IntRange(1),
    default=None,
    help="With --train-on-mix: the fresh model's latent size (default: RUN_DIR's).",
)
@click.option(
    "--score",
    "kind",
    type=click.Choice(list(SCORES)),
    default=DEFAULT_SCORE,
    show_default=True,
    help="; ".join(f"{name}: {score.purpose}" for name, score in SCORES.items()) + ".",
)
@click.option("--threshold", type=_Finite(), default=None, help="Flag scores above T (the post: MSE > 300).")
@click.option("--top", type=click.IntRange(1), default=None, help="Flag the K highest scores.")
@click.option("--quantile", type=_Finite(0, 1), default=None, help="Flag scores above this quantile (0.99).")
@click.option("--seed", type=int, default=0, show_default=True)
@_out_dir_option
@_json_option
def anomalies(
    paths, split, mix_spec, train_on_mix, trim, latent_dim, kind, threshold, top, quantile, seed, out_dir, as_json
) -> None:
    """Score drawings and flag the ones that are probably not sheep (default score: combined).

    Scores are written to disk as they are computed: interrupted, the same command run again
    continues where it stopped. Under torchrun the processes share the work."""
    from .anomaly import run_anomalies
    from .train import TrainConfig

    run_dir, data = _run_and_data(paths, data_required=True)
    if mix_spec and Shard.from_env().world > 1:
        raise click.UsageError("--mix runs in one process, not under torchrun")
    if sum(x is not None for x in (threshold, top, quantile)) > 1:
        raise click.UsageError("give at most one of --threshold, --top, --quantile")
    if latent_dim is not None and not train_on_mix:
        raise click.UsageError("--latent-dim sets the model that --train-on-mix trains; give --train-on-mix too")
    out_dir = _default_out(run_dir, out_dir)
    drawings = data_mod.load_drawings(data)
    images = _split_view(drawings, split)  # read as scoring needs it: a whole category never in memory
    planted, model, store = None, None, None
    lines = []
    if mix_spec:
        images, planted = _plant(images[:], mix_spec, seed, drawings.format)
        if train_on_mix:
            valid = drawings.split("valid", limit=TrainConfig.val_limit)  # only what validation uses
            model = _train_on_mixture(run_dir, images, valid, train_on_mix, trim, latent_dim, out_dir, seed, as_json)
            lines.append(f"trained a fresh model on the mixture: {out_dir / 'mixture_run'}")
    elif train_on_mix:
        raise click.UsageError("--train-on-mix needs --mix")
    else:  # each column of scores is kept on disk as it is computed: a rerun after a kill continues
        job = {**_job(run_dir, drawings, split), "score": kind, "seed": seed}
        shard = Shard.from_env()  # under torchrun each process scores its share; the first writes
        store = Store(out_dir / PARTS, job, progress=not as_json and shard.main, shard=shard)
        if not shard.main:
            from .anomaly import screen

            screen(_model(run_dir), images, kind, store)
            return
    names = drawings.meta.get("files") if planted is None else None  # pictures: say which file
    result = run_anomalies(
        model or _model(run_dir),
        images,
        out_dir,
        kind=kind,
        planted=planted,
        threshold=threshold,
        top=top,
        quantile=quantile,
        names=names,
        store=store,
    )
    if store is not None:
        shutil.rmtree(store.folder, ignore_errors=True)  # every score is in the CSV now
    if "resembles" in result:
        lines.append("most resemble: " + ", ".join(f"{k} {v}" for k, v in result["resembles"].items()))
    lines.append(
        f"{result['n_flagged']} of {result['n']} drawings flagged ({result['rule']}, "
        f"threshold {result['threshold']:.2f})"
    )
    if planted is not None:
        lines.append(
            f"planted {result['n_planted']}: AUROC {result['auroc']:.4f}, average precision "
            f"{result['average_precision']:.4f}, precision at {result['k']} {result['precision_at_k']:.4f}"
        )
    if names:
        lines.append("highest scores: " + ", ".join(result["worst_names"][: min(5, result["n_flagged"] or 5)]))
    lines += [f"wrote {result['plot']}", f"wrote {result['gallery']}", f"wrote {result['csv']}"]
    _finish(result, as_json, lines)


def _plant(images: np.ndarray, mix_spec: str, seed: int, data_format: str) -> tuple[np.ndarray, np.ndarray]:
    """--mix OTHER_DATA:FRACTION: drawings of OTHER_DATA planted among ``images``; (mixture, planted mask)."""
    from .anomaly import mix, warn_renderers_differ

    other_path, _, frac = mix_spec.rpartition(":")
    try:
        fraction = float(frac)
    except ValueError:
        raise click.BadParameter(f"expected OTHER_DATA:FRACTION, got {mix_spec!r}", param_hint="--mix") from None
    other = data_mod.load_drawings(other_path)
    if (data_format == "bitmap") != (other.format == "bitmap"):
        warn_renderers_differ()
    mixture = mix(images, np.asarray(other.images), fraction, seed)  # may warn: fewer than asked for
    return mixture.images, mixture.planted


def _train_on_mixture(
    run_dir: Path, images, val_images, epochs: int, trim: float, latent_dim, out_dir: Path, seed: int, quiet: bool
):
    """Train a fresh model like RUN_DIR's on the contaminated drawings (trimmed); return it.

    It trains in a temporary folder beside OUT_DIR/mixture_run and replaces that folder only when
    done, so Ctrl-C or an error keeps the mixture run of an earlier call."""
    import dataclasses
    import shutil
    import tempfile

    from .anomaly import train_on_mixture
    from .checkpoint import read_model_config
    from .fileio import ensure_dir

    model_cfg = read_model_config(run_dir)
    if latent_dim is not None:
        model_cfg = dataclasses.replace(model_cfg, latent_dim=latent_dim)
    ensure_dir(out_dir)
    tmp = Path(tempfile.mkdtemp(prefix=".mixture_run-", dir=out_dir))
    try:
        model = train_on_mixture(
            images,
            val_images,
            model_cfg,
            tmp,
            epochs=epochs,
            trim=trim,
            seed=seed,
            progress=not quiet,
            log=(lambda s: None) if quiet else click.echo,
        )
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    mix_run = out_dir / "mixture_run"
    old = mix_run.rename(tmp.with_name(tmp.name + "-old")) if mix_run.exists() else None
    tmp.rename(mix_run)  # a moment with no mixture_run, never one with neither run on disk
    if old is not None:
        shutil.rmtree(old)
    return model


@main.command()
@_run_and_data_args
@click.option("-o", "--out", type=click.Path(path_type=Path), default=Path("report.html"), show_default=True)
@click.option(
    "--epochs",
    callback=_epoch_list,
    help="Epochs of the latent snapshots [default: the post's 5,10,15,20 the run saved].",
)
@click.option("--seed", type=int, default=0, show_default=True)
@_json_option
def report(paths, out, epochs, seed, as_json) -> None:
    """One self-contained HTML report: curves, latent space, samples, clusters, anomalies, explorer."""
    from .report import build_report

    run_dir, data = _run_and_data(paths)
    result = build_report(run_dir, out, data, epochs=epochs, seed=seed, progress=not as_json)
    _finish(
        result, as_json, [f"wrote {out} ({result['bytes'] / 1e6:.1f} MB; sections: {', '.join(result['sections'])})"]
    )


@main.command()
@_run_and_data_args
@click.option("-o", "--out", type=click.Path(path_type=Path), default=Path("explorer.html"), show_default=True)
@click.option("--grid", type=click.IntRange(4, 100), default=40, show_default=True, help="Decodings per side.")
@click.option("--range", "span", type=_Finite(0, min_open=True), default=3.0, show_default=True)
@_json_option
def explore(paths, out, grid, span, as_json) -> None:
    """A standalone page to explore the latent plane with the pointer (no server needed)."""
    from .checkpoint import load_model, run_data
    from .explorer import explorer_payload, standalone_page
    from .fileio import write_text
    from .latent import encode

    run_dir, data = _run_and_data(paths)
    model = load_model(run_dir)
    try:
        originals = run_data(run_dir, data).split("valid", limit=600)
        codes = encode(model, originals)
    except SheepError:
        from .checkpoint import last_latents

        saved = last_latents(run_dir)
        originals, codes = None, (saved if saved is not None else np.zeros((0, model.config.latent_dim)))
    write_text(out, standalone_page(explorer_payload(model, codes, originals, grid, span)))
    _finish({"page": str(out), "points": int(len(codes))}, as_json, [f"wrote {out} ({len(codes)} encoded drawings)"])


@main.command()
@_run_dir_arg
@click.option("--data", default=None, help="Drawings to compare with (default: the run's, else a downloaded sheep).")
@click.option("--port", type=click.IntRange(1, 65535), default=7860, show_default=True)
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to serve on (this machine only).")
@_json_option
def app(run_dir, data, port, host, as_json) -> None:
    """Draw a sheep in the browser and see what the model makes of it (pip install 'electric-sheep[app]')."""
    from .app import serve

    def ready(url: str) -> None:
        _finish(
            {"url": url, "run_dir": str(run_dir)}, as_json, [f"sheep app: open {url} in a browser (Ctrl-C stops it)"]
        )

    serve(run_dir, data, host, port, on_ready=ready)
