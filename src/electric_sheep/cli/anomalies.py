"""The anomalies command: scoring, flagging, mixing, training on the mixture."""

from __future__ import annotations

import click

from ..analysis.anomaly import DEFAULT_SCORE, SCORES
from ..data import drawings as data_mod
from ..runs.streaming import Shard
from ..wording import counted
from .common import (
    SEED,
    _default_out,
    _device,
    _device_option,
    _finish,
    _Finite,
    _json_option,
    _out_dir_option,
    _run_and_data,
    _whole_file_split,
    _writing_into,
    echo,
    main,
)


@main.command()
@click.argument("paths", nargs=-1, metavar="[RUN_DIR] [DATA]")
@_whole_file_split(
    "Which drawings of DATA to score: all, every drawing of the file; or one split (train: the 80% a model of "
    "DATA learned from). With --mix the intruders are planted among them.",
    default="all",
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
    help="With --train-on-mix: set aside this share that a first model finds least typical (code-ink, elbo), "
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
@click.option("--seed", type=SEED, default=0, show_default=True, help="Seed of --mix and --train-on-mix.")
@_device_option
@_out_dir_option
@_json_option
def anomalies(
    paths,
    split,
    mix_spec,
    train_on_mix,
    trim,
    latent_dim,
    kind,
    threshold,
    top,
    quantile,
    seed,
    device,
    out_dir,
    as_json,
) -> None:
    """Score drawings and flag the ones that are probably not sheep (default score: combined).

    DATA: a file, a folder of pictures or a category; without it, the drawings RUN_DIR was
    trained on (every file of a run of several). Scores are written to disk as they are computed:
    interrupted, the same command run again continues where it stopped. Under torchrun the
    processes share the work."""
    from ..runs.screening import screen_run

    run_dir, data = _run_and_data(paths)
    _check_options(mix_spec, train_on_mix, latent_dim, (threshold, top, quantile))
    planting = _planting(mix_spec, seed, train_on_mix, trim, latent_dim)
    model_device, out_dir = _device(device), _default_out(run_dir, out_dir)
    with _writing_into(out_dir, "anomaly scores"):
        drawings = data_mod.load_drawings(data) if data is not None else None  # None: the run's own
        log = (lambda s: None) if as_json else echo
        flags = {"threshold": threshold, "top": top, "quantile": quantile}
        where = {"device": model_device, "train_device": device, "progress": not as_json, "log": log}
        result = screen_run(run_dir, drawings, split, out_dir, kind=kind, planting=planting, **where, **flags)
    if result is not None:  # under torchrun, the first process says what was found
        _finish(result, as_json, _summary(result))


def _check_options(mix_spec, train_on_mix, latent_dim, thresholds: tuple) -> None:
    """Options that contradict each other: one line before anything is read."""
    if mix_spec and Shard.from_env().world > 1:
        raise click.UsageError("--mix runs in one process, not under torchrun")
    if sum(x is not None for x in thresholds) > 1:
        raise click.UsageError("give at most one of --threshold, --top, --quantile")
    if train_on_mix and not mix_spec:
        raise click.UsageError("--train-on-mix needs --mix")
    if latent_dim is not None and not train_on_mix:
        raise click.UsageError("--latent-dim sets the model that --train-on-mix trains; give --train-on-mix too")


def _summary(result: dict) -> list[str]:
    """What `sheep anomalies` prints after its work: what was flagged, how well, where it went."""
    lines = [f"trained a fresh model on the mixture: {result['mixture_run']}"] if "mixture_run" in result else []
    if "flagged_by_source" in result:
        lines.append("flagged of each file: " + ", ".join(f"{k} {v}" for k, v in result["flagged_by_source"].items()))
    if "resembles" in result:
        lines.append("most resemble: " + ", ".join(f"{k} {v}" for k, v in result["resembles"].items()))
    if "compared_with" in result:
        lines.append(f"scored among {result['compared_with']:,} {result['compared_with_what']}")
    lines.append(
        f"{result['n_flagged']:,} of {counted(result['n'], 'drawing')} flagged ({result['rule']}, "
        f"threshold {result['threshold']:.6g})"
    )
    if "n_planted" in result:
        lines.append(
            f"planted {result['n_planted']:,}: AUROC {result['auroc']:.4f}, average precision "
            f"{result['average_precision']:.4f}, precision at {result['k']} {result['precision_at_k']:.4f}"
        )
    if "worst_names" in result or "worst_percentiles" in result:
        shown = result.get("worst_names") or [f"drawing {i}" for i in result["worst"]]
        shown = shown[: min(5, result["n_flagged"] or 5)]
        if "worst_percentiles" in result:  # against a yardstick: how far out, in words a user reads
            above = result["worst_percentiles"]
            shown = [f"{name} (above {p:g}% of them)" for name, p in zip(shown, above, strict=False)]
        lines.append("highest scores: " + ", ".join(shown))
    return lines + [f"wrote {result['plot']}", f"wrote {result['gallery']}", f"wrote {result['csv']}"]


def _planting(mix_spec: str | None, seed: int, train_on_mix: int | None, trim: float, latent_dim: int | None):
    """--mix OTHER_DATA:FRACTION and the options of --train-on-mix, as a Planting (None: no --mix)."""
    from ..runs.screening import Planting

    if not mix_spec:
        return None
    other, _, frac = mix_spec.rpartition(":")
    try:
        fraction = float(frac)
    except ValueError:
        raise click.BadParameter(f"expected OTHER_DATA:FRACTION, got {mix_spec!r}", param_hint="--mix") from None
    return Planting(other, fraction, seed, train_on_mix, trim, latent_dim)
