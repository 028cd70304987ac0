"""The ``sheep`` command line: each command is a thin call into a library function."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from . import data as data_mod
from .errors import SheepError


class _Group(click.Group):
    """Turn every :class:`SheepError` into one line on stderr and exit status 2, no traceback."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except SheepError as e:
            click.echo(f"error: {e}", err=True)
            sys.exit(2)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="electric-sheep")
def main() -> None:
    """electric-sheep: teach a computer to recognise, remember and draw sheep."""


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
def download(category: str | None, fmt: str, cache_dir: Path | None, list_: bool) -> None:
    """Download CATEGORY from the official Quick, Draw! storage into the cache."""
    from .download import download as do_download

    if list_:
        click.echo("\n".join(data_mod.categories()))
        return
    if not category:
        raise click.UsageError("give a CATEGORY (or --list)")
    path = do_download(category, fmt, cache_dir)
    click.echo(f"{path}")


@main.command()
@click.argument("data")
@click.option("--split", type=click.Choice(data_mod.SPLITS), default="train", show_default=True)
@click.option("-n", "count", type=click.IntRange(1), default=64, show_default=True, help="How many drawings.")
@click.option("-o", "--out", type=click.Path(path_type=Path), default=Path("grid.png"), show_default=True)
@click.option("--recognized/--all", default=None, help="Stroke formats: keep only recognised drawings.")
@_cache_option
def show(data: str, split: str, count: int, out: Path, recognized: bool | None, cache_dir: Path | None) -> None:
    """Write a PNG grid of the first drawings of DATA (a file or a downloaded category)."""
    from .plots import grid_image, save_image

    drawings = data_mod.load_drawings(data, recognized=recognized, cache_dir=cache_dir)
    _warn_skipped(drawings)
    images = drawings.split(split, limit=count)
    save_image(grid_image(images), out)
    click.echo(f"wrote {out} ({len(images)} {split} drawings from {drawings.source})")


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
    _warn_skipped(drawings)
    click.echo(f"{summary['path']}\n  format: {summary['format']}\n  drawings: {summary['count']}")
    click.echo("  splits: " + ", ".join(f"{k} {v}" for k, v in summary["splits"].items()))
    click.echo(f"  mean ink per drawing: {summary['mean_ink']:.2f} / 255 per pixel")


def dataset_summary(drawings: data_mod.Drawings) -> dict:
    """The numbers ``sheep info`` prints."""
    return {
        "path": str(drawings.source),
        "format": drawings.format,
        "count": len(drawings),
        "splits": {k: int(len(v)) for k, v in drawings.splits.items()},
        "mean_ink": drawings.mean_ink(),
        "skipped": drawings.skipped,
    }


def _warn_skipped(drawings: data_mod.Drawings) -> None:
    if drawings.skipped:
        click.echo(f"warning: {drawings.source}: skipped {drawings.skipped} malformed drawing(s)", err=True)
