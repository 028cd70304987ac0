"""The anomalies command: scoring, flagging, mixing, training on the mixture."""

from __future__ import annotations

import shutil
from pathlib import Path

import click
import numpy as np

from ..analysis.anomaly import DEFAULT_SCORE, SCORES
from ..data import drawings as data_mod
from ..runs.streaming import Shard, Store
from ..wording import counted
from .common import (
    PARTS,
    SEED,
    _default_out,
    _device,
    _device_option,
    _finish,
    _Finite,
    _job,
    _json_option,
    _model,
    _out_dir_option,
    _run_and_data,
    _split_view,
    _whole_file_split,
    _writing_into,
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
    from ..core.train_config import TrainConfig
    from ..render.anomaly_outputs import run_anomalies
    from ..runs.checkpoint import run_data

    run_dir, data = _run_and_data(paths)
    _check_options(mix_spec, train_on_mix, latent_dim, (threshold, top, quantile))
    device_name, device = device, _device(device)
    out_dir = _default_out(run_dir, out_dir)
    with _writing_into(out_dir, "anomaly scores"):
        drawings = data_mod.load_drawings(data) if data is not None else run_data(run_dir)
        images = _split_view(drawings, split)  # read as scoring needs it: a whole category never in memory
        sources = drawings.categories(split)  # several files: each drawing's category and row in its file
        sources = None if sources is None else (*sources, drawings.rows_in_files(split))
        planted, model, store = None, None, None
        lines = []
        if mix_spec:
            images, planted = _plant(images[:], mix_spec, seed, drawings.format)
            sources = None  # the mixture is shuffled
            if train_on_mix:
                valid = drawings.split("valid", limit=TrainConfig.val_limit)  # only what validation uses
                options = (train_on_mix, trim, latent_dim, out_dir, seed, as_json, device_name)
                model = _train_on_mixture(run_dir, images, valid, *options).to(device)
                lines.append(f"trained a fresh model on the mixture: {out_dir / 'mixture_run'}")
        else:  # each column of scores is kept on disk as it is computed: a rerun after a kill continues
            job = {**_job(run_dir, drawings, split), "score": kind, "seed": seed}
            shard = Shard.from_env()  # under torchrun each process scores its share; the first writes
            store = Store(out_dir / PARTS, job, progress=not as_json and shard.main, shard=shard)
            if not shard.main:
                from ..analysis.anomaly import screen

                screen(_model(run_dir, device), images, kind, store)
                return
        names = drawings.meta.get("files") if planted is None else None  # pictures: say which file
        flags = {"threshold": threshold, "top": top, "quantile": quantile}
        result = run_anomalies(
            model or _model(run_dir, device),
            images,
            out_dir,
            kind=kind,
            planted=planted,
            names=names,
            store=store,
            sources=sources,
            **flags,
        )
        if store is not None:
            shutil.rmtree(store.folder, ignore_errors=True)  # every score is in the CSV now
        _finish(result, as_json, lines + _summary(result, planted, names))


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


def _summary(result: dict, planted: np.ndarray | None, names: list[str] | None) -> list[str]:
    """What `sheep anomalies` prints after its work: what was flagged, how well, where it went."""
    lines = []
    if "flagged_by_source" in result:
        lines.append("flagged of each file: " + ", ".join(f"{k} {v}" for k, v in result["flagged_by_source"].items()))
    if "resembles" in result:
        lines.append("most resemble: " + ", ".join(f"{k} {v}" for k, v in result["resembles"].items()))
    lines.append(
        f"{result['n_flagged']:,} of {counted(result['n'], 'drawing')} flagged ({result['rule']}, "
        f"threshold {result['threshold']:.6g})"
    )
    if planted is not None:
        lines.append(
            f"planted {result['n_planted']}: AUROC {result['auroc']:.4f}, average precision "
            f"{result['average_precision']:.4f}, precision at {result['k']} {result['precision_at_k']:.4f}"
        )
    if names:
        lines.append("highest scores: " + ", ".join(result["worst_names"][: min(5, result["n_flagged"] or 5)]))
    return lines + [f"wrote {result['plot']}", f"wrote {result['gallery']}", f"wrote {result['csv']}"]


def _plant(images: np.ndarray, mix_spec: str, seed: int, data_format: str) -> tuple[np.ndarray, np.ndarray]:
    """--mix OTHER_DATA:FRACTION: drawings of OTHER_DATA planted among ``images``; (mixture, planted mask)."""
    from ..runs.mixtures import mix, warn_renderers_differ

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
    run_dir: Path,
    images,
    val_images,
    epochs: int,
    trim: float,
    latent_dim,
    out_dir: Path,
    seed: int,
    quiet: bool,
    device: str | None,
):
    """A fresh model like RUN_DIR's (``--latent-dim`` overriding its latent size), trained on the
    contaminated drawings into OUT_DIR/mixture_run (on ``device``, else as training chooses); returns it."""
    import dataclasses

    from ..runs.checkpoint import read_model_config
    from ..runs.mixtures import mixture_run

    model_cfg = read_model_config(run_dir)
    if latent_dim is not None:
        model_cfg = dataclasses.replace(model_cfg, latent_dim=latent_dim)
    log = (lambda s: None) if quiet else click.echo
    options = {"epochs": epochs, "trim": trim, "seed": seed, "progress": not quiet, "log": log}
    if device:  # else training's own choice: CUDA when present
        options["device"] = device
    return mixture_run(images, val_images, model_cfg, out_dir, **options)
