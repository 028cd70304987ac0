"""Commands that make pages: report, explore, app."""

from __future__ import annotations

from pathlib import Path

import click

from .common import (
    SEED,
    _epoch_list,
    _finish,
    _Finite,
    _json_option,
    _out_option,
    _run_and_data,
    _run_and_data_args,
    _run_dir_arg,
    main,
)


@main.command()
@_run_and_data_args
@_out_option(Path("report.html"), "page")
@click.option(
    "--epochs",
    callback=_epoch_list,
    help=(
        "Epochs of the latent snapshots [default: the post's 5,10,15,20 where the run saved two or more, "
        "else four spread over it]."
    ),
)
@click.option("--seed", type=SEED, default=0, show_default=True)
@_json_option
def report(paths, out, epochs, seed, as_json) -> None:
    """One self-contained HTML report: curves, latent space, samples, clusters, anomalies, explorer."""
    from ..render.report import build_report

    run_dir, data = _run_and_data(paths)
    result = build_report(run_dir, out, data, epochs=epochs, seed=seed, progress=not as_json)
    _finish(
        result, as_json, [f"wrote {out} ({result['bytes'] / 1e6:.1f} MB; sections: {', '.join(result['sections'])})"]
    )


@main.command()
@_run_and_data_args
@_out_option(Path("explorer.html"), "page")
@click.option("--grid", type=click.IntRange(4, 100), default=40, show_default=True, help="Decodings per side.")
@click.option("--range", "span", type=_Finite(0, min_open=True), default=3.0, show_default=True)
@_json_option
def explore(paths, out, grid, span, as_json) -> None:
    """A standalone page to explore the latent plane with the pointer (no server needed)."""
    from ..render.explorer import explorer_page

    run_dir, data = _run_and_data(paths)
    result = explorer_page(run_dir, out, data, grid, span)
    _finish(result, as_json, [f"wrote {out} ({result['points']:,} encoded drawings)"])


@main.command()
@_run_dir_arg
@click.option("--data", default=None, help="Drawings to compare with (default: the run's, else a downloaded sheep).")
@click.option("--port", type=click.IntRange(1, 65535), default=7860, show_default=True)
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to serve on (this machine only).")
@_json_option
def app(run_dir, data, port, host, as_json) -> None:
    """Draw a sheep in the browser and see what the model makes of it (pip install 'electric-sheep[app]')."""
    from ..render.app import serve

    def ready(url: str) -> None:
        _finish(
            {"url": url, "run_dir": str(run_dir)}, as_json, [f"sheep app: open {url} in a browser (Ctrl-C stops it)"]
        )

    serve(run_dir, data, host, port, on_ready=ready)
