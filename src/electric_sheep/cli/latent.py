"""Commands about the latent space: latent, snapshots, clusters."""

from __future__ import annotations

import math

import click

from ..wording import counted
from .common import (
    SEED,
    _default_out,
    _device,
    _device_option,
    _epoch_list,
    _finish,
    _json_option,
    _out_dir_option,
    _out_option,
    _run_and_data,
    _run_and_data_args,
    _run_dir_arg,
    _whole_file_split,
    _writing_into,
    main,
)


@main.command()
@_run_and_data_args
@_whole_file_split("The drawings to encode: all, every drawing of the file; or one split.", default="all")
@_device_option
@_out_dir_option
@_json_option
@click.option("--quiet", is_flag=True, help="No progress bar.")
def latent(paths, split, device, out_dir, as_json, quiet) -> None:
    """Encode every drawing (z_mean), save the codes and plot the latent space.

    The codes are written to disk as they are computed: run again with the same arguments after
    an interruption, it continues where it stopped."""
    from ..render.latent_figures import latent_run
    from ..runs.run_sources import run_data

    device = _device(device)
    run_dir, data = _run_and_data(paths)
    drawings = run_data(run_dir, data)
    out_dir = _default_out(run_dir, out_dir)
    with _writing_into(out_dir, "latent codes"):
        result = latent_run(run_dir, drawings, split, out_dir, device=device, progress=not (quiet or as_json))
    if result is None:  # under torchrun, the first process says what was written
        return
    lines = [
        f"encoded {counted(result['n'], 'drawing')} into {result['latent_dim']}-D codes: {result['codes']}",
        f"wrote {result['plot']}",
    ]
    if result["n_nonfinite"]:
        lines.insert(1, f"left out {counted(result['n_nonfinite'], 'drawing')} whose codes are not finite")
    if "categories" in result:
        lines.insert(1, "of " + ", ".join(f"{name} {n:,}" for name, n in result["categories"].items()))
    _finish(result, as_json, lines)


@main.command()
@_run_dir_arg
@click.option(
    "--epochs",
    callback=_epoch_list,
    help=(
        "Comma-separated epochs to show [default: the post's 5,10,15,20 where the run saved two or more, "
        "else four spread over it]."
    ),
)
@_out_option(None, "figure", "Default OUT_DIR/latent_epochs.png.")
@click.option("--gif", is_flag=True, help="Also animate every saved epoch: latent_epochs.gif beside the PNG.")
@_out_dir_option
@_json_option
def snapshots(run_dir, epochs, out, gif, out_dir, as_json) -> None:
    """The latent space after chosen epochs of training, side by side (from the run's saved codes)."""
    from ..render.latent_figures import snapshots as snapshots_fn

    out = out or _default_out(run_dir, out_dir) / "latent_epochs.png"
    result = snapshots_fn(run_dir, epochs, out, animation=out.with_suffix(".gif") if gif else None)
    lines = [f"wrote {out} (epochs {', '.join(map(str, result['epochs']))})"]
    if gif:
        count = len(result["animation_epochs"])
        lines.append(f"wrote {result['animation']} ({counted(count, 'epoch')}, one per frame)")
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
@_whole_file_split("The drawings to cluster: all, every drawing of the file; or one split.", default="all")
@click.option("--k", type=click.IntRange(2), default=None, help="k-means: clusters (default: the elbow).")
@click.option("--k-range", default="2:10", show_default=True, callback=_pair(int), help="k-means: elbow range.")
@click.option(
    "--eps",
    "eps_range",
    default=None,
    callback=_pair(float),
    help="DBSCAN: eps search range LOW:HIGH (default: from the codes' distances to their nearest codes).",
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
@click.option("--seed", type=SEED, default=0, show_default=True)
@_device_option
@_out_dir_option
@_json_option
def clusters(
    paths, method, split, k, k_range, eps_range, ms_range, trials, n_clusters, seed, device, out_dir, as_json
) -> None:
    """Cluster the latent codes (k-means with the elbow, or DBSCAN with a random search)."""
    from ..render.cluster_outputs import clusters_run
    from ..runs.run_sources import run_data

    device = _device(device)
    run_dir, data = _run_and_data(paths)
    drawings = run_data(run_dir, data)
    result = clusters_run(
        run_dir,
        drawings,
        split,
        _default_out(run_dir, out_dir),
        method,
        device=device,
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
        head = f"k-means with k = {result['k']} on {result['n']:,} codes; elbow plot {result['elbow_plot']}"
    else:
        low, high = result["eps_range"]
        head = (
            f"DBSCAN eps = {result['eps']:.3f} (searched {low:.3g} to {high:.3g}), "
            f"min_samples = {result['min_samples']}: {result['clusters']} "
            f"clusters, {result['noise_fraction']:.1%} noise, silhouette {result['silhouette']:.3f} "
            f"({result['rule']}); table {result['table']}"
        )
        if result["searched_on"] < result["n"]:
            head += (
                f"\nsearched and clustered on a sample of {result['searched_on']:,} of the {result['n']:,} codes; "
                "each other code joins the cluster of its nearest core code within eps, or the noise"
            )
    lines = [head, f"cluster sizes: {_cluster_sizes(result['cluster_sizes'])}"]
    if "categories" in result:
        lines.append(_cluster_categories(result["categories"], result["adjusted_rand_index"]))
    _finish(result, as_json, [*lines, f"wrote {result['scatter']}", f"wrote {result['gallery']}"])


def _cluster_categories(table: dict[int, dict[str, int]], rand_index: float, shown: int = 20) -> str:
    """'against the categories (adjusted Rand index 0.12): 0: 61% duck, 1: ...': each cluster's
    largest category (of the largest clusters, when many)."""
    largest = sorted(table, key=lambda c: -sum(table[c].values()))[:shown]
    parts = []
    for c in sorted(largest, key=lambda c: (c < 0, c)):  # the noise last, as in the sizes
        name, n = max(table[c].items(), key=lambda item: item[1])
        parts.append(f"{'noise' if c < 0 else c}: {n / max(sum(table[c].values()), 1):.0%} {name}")
    return f"against the categories (adjusted Rand index {rand_index:.3f}): {', '.join(parts)}"


def _cluster_sizes(sizes: dict[int, int], shown: int = 20) -> str:
    """'0: 169, 1: 279, ...': every cluster's size, or of many, the largest (and the noise)."""
    clusters = {c: n for c, n in sizes.items() if c >= 0}
    kept = sorted(sorted(clusters, key=lambda c: -clusters[c])[:shown]) + [c for c in sizes if c < 0]
    text = ", ".join(f"{'noise' if c < 0 else c}: {sizes[c]:,}" for c in kept)
    return text if len(clusters) <= shown else f"{text} (the {shown} largest of {len(clusters)} clusters)"
