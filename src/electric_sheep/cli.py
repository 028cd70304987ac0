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


@main.command()
@click.argument("data")
@click.option("--preset", type=click.Choice(["default", "seed"]), default="default", show_default=True)
@click.option("--epochs", type=click.IntRange(1), default=None, help="Default: 20 (seed preset: 30).")
@click.option("--latent-dim", type=click.IntRange(1), default=2, show_default=True)
@click.option("--kl-start", type=click.IntRange(0), default=None, help="Epoch after which the KL weight rises.")
@click.option("--kl-steep", type=click.IntRange(0), default=None, help="Epochs over which it rises to 1.")
@click.option(
    "--kl-schedule",
    type=click.Choice(["epoch", "linear", "cyclical", "constant"]),
    default=None,
    help="epoch: the post's callback (default); linear: per step; cyclical; constant 1.",
)
@click.option("--free-bits", type=click.FloatRange(0), default=None, help="Minimum KL in nats per latent dim.")
@click.option("--batch-size", type=click.IntRange(2), default=None, help="Per process. Default 128 (seed: 8).")
@click.option("--lr", type=click.FloatRange(0, min_open=True), default=None)
@click.option("--limit", type=click.IntRange(2), default=None, help="Train on the first N drawings of the split.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--device", default=None, help="cpu, cuda, cuda:1 ... (default: CUDA when present).")
@click.option(
    "--out", "run_dir", type=click.Path(path_type=Path), default=None, help="Run folder (default runs/<preset>)."
)
@click.option("--resume", is_flag=True, help="Continue the run in --out from its last checkpoint.")
@click.option("--quiet", is_flag=True, help="No progress bars.")
def train(
    data: str,
    preset: str,
    epochs,
    latent_dim,
    kl_start,
    kl_steep,
    kl_schedule,
    free_bits,
    batch_size,
    lr,
    limit,
    seed,
    device,
    run_dir,
    resume,
    quiet,
) -> None:
    """Train a VAE on DATA; checkpoints, metrics and TensorBoard logs go to the run folder."""
    from .train import is_main_process, train_on_data

    run_dir = run_dir or Path("runs") / preset
    try:
        train_on_data(
            data,
            run_dir,
            preset=preset,
            latent_dim=latent_dim,
            resume=resume,
            progress=not quiet,
            log=lambda line: click.echo(line),
            epochs=epochs,
            kl_start=kl_start,
            kl_steep=kl_steep,
            kl_schedule=kl_schedule,
            free_bits=free_bits,
            batch_size=batch_size,
            lr=lr,
            limit=limit,
            seed=seed,
            device=device,
        )
    except KeyboardInterrupt:
        click.echo("stopped by Ctrl-C", err=True)
        sys.exit(130)
    if is_main_process():
        click.echo(f"run saved in {run_dir} (tensorboard --logdir {run_dir})")


@main.command()
@click.argument("run_dir", type=click.Path(path_type=Path))
@click.argument("data", required=False)
@click.option("--k", type=click.IntRange(1), default=1000, show_default=True, help="Importance samples (IWAE).")
@click.option("--split", type=click.Choice(data_mod.SPLITS), default="test", show_default=True)
@click.option("--limit", type=click.IntRange(1), default=None, help="Evaluate the first N drawings only.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as one JSON object only.")
def evaluate(run_dir: Path, data: str | None, k: int, split: str, limit: int | None, as_json: bool) -> None:
    """Held-out negative ELBO and IWAE NLL (nats per drawing), MSE and KL; saved to RUN_DIR/eval.json."""
    from .evaluate import evaluate_run

    result = evaluate_run(run_dir, data, k=k, split=split, limit=limit, progress=not as_json)
    if as_json:
        click.echo(json.dumps(result))
        return
    click.echo(f"{result['preset']} preset on {result['n']} {split} drawings of {result['data']}:")
    click.echo(f"  negative ELBO  {result['nelbo']:.2f} nats")
    click.echo(f"  IWAE NLL       {result['iwae_nll']:.2f} nats (k = {k})")
    click.echo(f"  MSE            {result['mse']:.5f} per pixel")
    click.echo(f"  KL             {result['kl']:.3f} nats")
    click.echo(f"wrote {run_dir / 'eval.json'}")
