"""Commands about data: download, show, info."""

from __future__ import annotations

import json
from pathlib import Path

import click

from ..data import drawings as data_mod
from ..render.plots import MAX_TILES
from .common import _cache_option, _finish, _out_option, _whole_file_split, echo, main

# --all is every drawing (None), not the library's False, which keeps only the unrecognised ones.
_recognized_option = click.option(
    "--recognized/--all",
    default=None,
    callback=lambda ctx, param, value: value or None,
    help="Stroke formats: keep only the drawings the game recognised, or all of them (default).",
)


@main.command()
@click.argument("categories", nargs=-1)
@click.option("--format", "fmt", type=click.Choice(list(data_mod.FILE_FORMATS)), default="bitmap", show_default=True)
@_cache_option
@click.option("--list", "list_", is_flag=True, help="List the 345 official categories and exit.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object (a list for several, or the names).")
def download(categories: tuple[str, ...], fmt: str, cache_dir: Path | None, list_: bool, as_json: bool) -> None:
    """Download CATEGORIES (one or several names) from the official Quick, Draw! storage into the
    cache; those already there are kept."""
    from ..data.download import download_categories

    if list_:
        names = data_mod.categories()
        echo(json.dumps(names) if as_json else "\n".join(names))
        return
    if not categories:
        raise click.UsageError("give a CATEGORY (or several, or --list)")
    paths = download_categories(list(categories), fmt, cache_dir)
    found = [{"path": str(path), "category": name, "format": fmt} for name, path in paths.items()]
    if as_json:
        echo(json.dumps(found[0] if len(found) == 1 else found))
        return
    for path in paths.values():
        echo(path)


@main.command()
@click.argument("data")
@_whole_file_split("all: the file's first drawings, in its order; or one split's first.", default="all")
@click.option(
    "-n", "count", type=click.IntRange(1, MAX_TILES), default=64, show_default=True, help="How many drawings."
)
@_out_option(Path("grid.png"))
@_recognized_option
@click.option("--json", "as_json", is_flag=True, help="Print the numbers and paths as one JSON object.")
@_cache_option
def show(
    data: str, split: str, count: int, out: Path, recognized: bool | None, as_json: bool, cache_dir: Path | None
) -> None:
    """Write a PNG grid of the first drawings of DATA (a file or a downloaded category)."""
    from ..render.drawing_outputs import first_drawings_picture

    result = first_drawings_picture(data, out, count, split=split, recognized=recognized, cache_dir=cache_dir)
    n = result["n"]
    which = "" if split == "all" else f" {split}"
    first = f"the first {n}{which} drawings" if n > 1 else f"the first{which} drawing"
    _finish(result, as_json, [f"wrote {out} ({first} of {result['data']})"])


@main.command()
@click.argument("data", nargs=-1, required=True)
@_recognized_option
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object (a list of them for several files).")
@_cache_option
def info(data: tuple[str, ...], recognized: bool | None, as_json: bool, cache_dir: Path | None) -> None:
    """Count, split sizes, format and mean ink per drawing of DATA (one or several files or
    categories, or a pattern such as 'data/*.npy')."""
    from ..data.sources import expand_sources

    sources = expand_sources(data)
    data_mod.check_downloaded(sources, cache_dir)
    summaries = [
        data_mod.summary(data_mod.load_drawings(source, recognized=recognized, cache_dir=cache_dir))
        for source in sources
    ]
    if as_json:
        echo(json.dumps(summaries[0] if len(summaries) == 1 else summaries))
        return
    for summary in summaries:
        _print_summary(summary)


def _print_summary(summary: dict) -> None:
    echo(f"{summary['path']}\n  format: {summary['format']}\n  drawings: {summary['count']}")
    splits = ", ".join(f"{k} {v}" for k, v in summary["splits"].items())
    echo(f"  splits: {splits}" + (" (pictures: each split holds all of them)" if "files" in summary else ""))
    echo(f"  mean ink per drawing: {summary['mean_ink']:.2f} / 255 per pixel")
    if "files" in summary:
        files = summary["files"]
        echo(f"  files: {', '.join(files[:5])}" + (f" ... ({len(files)} in all)" if len(files) > 5 else ""))
