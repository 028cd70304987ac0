"""Drawings of another kind planted among the sheep (``mix``), with labels, so that AUROC, average
precision and precision at the number planted can be measured; and the honest case, a model trained
on the contaminated drawings themselves, made robust by trimming (``train_on_mixture``)."""

from __future__ import annotations

import json
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..errors import ConfigError, SheepWarning
from .fileio import ensure_dir, json_text, write_json, write_npy
from .streaming import same_job

if TYPE_CHECKING:
    from ..core.model import VAE, ModelConfig
    from ..core.train_config import TrainConfig

from ..analysis.anomaly import typical_drawings

TRIM = 0.2  # share set aside by trimmed training: the least typical, as the neighbourhood scores' reference


def train_on_mixture(
    images_u8: np.ndarray,
    val_u8: np.ndarray,
    model_cfg: ModelConfig,
    run_dir: str | Path,
    *,
    epochs: int,
    trim: float = TRIM,
    seed: int = 0,
    progress: bool = True,
    log: Callable[[str], None] = print,
    resume: bool = False,
    **overrides: Any,
) -> VAE:
    """The honest case: train on contaminated drawings, robustly, and return the model. Stage 1
    trains on every drawing (in ``run_dir/stage1``); stage 2 (:func:`train_trimmed`) sets aside
    the ``trim`` share it finds least typical and trains a fresh model on the rest in ``run_dir``:
    a trimmed-likelihood estimator, since a model trained on everything learns to explain the
    intruders too. ``trim=0`` trains once. ``overrides``: further
    :class:`~electric_sheep.core.train_config.TrainConfig` fields. ``resume``: ``run_dir`` holds
    what an interrupted call with the same arguments saved (or nothing), and training goes on from
    there; a stage it finished is kept."""
    from ..core.train_config import make_train_config
    from .checkpoint import load_model
    from .training import warn_no_validation

    if not 0 <= trim < 1:
        raise ConfigError(f"trim must be in [0, 1), got {trim:g}")
    if not len(val_u8):
        warn_no_validation("the mixture", len(images_u8))
        val_u8 = images_u8
    run_dir = Path(run_dir)
    first_dir = run_dir / "stage1" if trim > 0 else run_dir
    if trim > 0:
        log(f"stage 1 of 2: training on all {len(images_u8)} drawings")
    cfg = make_train_config(model_cfg.preset, epochs=epochs, seed=seed, **overrides)
    _Stage(model_cfg, cfg, resume, progress, log).train(images_u8, val_u8, first_dir, _info(images_u8))
    first = load_model(first_dir)
    if trim == 0:
        return first
    return train_trimmed(
        first, images_u8, val_u8, model_cfg, cfg, run_dir, trim=trim, progress=progress, log=log, resume=resume
    )


def train_trimmed(
    first: VAE,
    images_u8: np.ndarray,
    val_u8: np.ndarray,
    model_cfg: ModelConfig,
    cfg: TrainConfig,
    run_dir: str | Path,
    *,
    trim: float = TRIM,
    progress: bool = True,
    log: Callable[[str], None] = print,
    resume: bool = False,
) -> VAE:
    """Stage 2 of :func:`train_on_mixture`: the ``trim`` share (in (0, 1)) of the drawings that
    ``first`` finds least typical (``typical_drawings``: far out by ``code-ink`` or ``elbo``,
    either way) is set aside (``run_dir/kept.npy`` marks the rest), and a fresh model trains on the
    rest in ``run_dir`` with ``cfg``. Given a kept stage-1 model, it trains again only what a
    change of trimming changes. ``resume``: as :func:`train_on_mixture`'s."""
    from .checkpoint import load_model

    if not 0 < trim < 1:
        raise ConfigError(f"trim must be in (0, 1) for a second stage, got {trim:g}")
    run_dir = Path(run_dir)
    kept = typical_drawings(first, images_u8, share=1 - trim)
    write_npy(run_dir / "kept.npy", kept)
    log(f"stage 2 of 2: training a fresh model on the {int(kept.sum())} most typical ({1 - trim:.0%})")
    info = {**_info(images_u8), "n_train": int(kept.sum()), "trim": trim}
    _Stage(model_cfg, cfg, resume, progress, log).train(images_u8[kept], val_u8, run_dir, info)
    return load_model(run_dir)


@dataclass
class _Stage:
    """How each stage of a mixture's training runs; with ``resume``, it continues what an
    interrupted call saved in its folder, and keeps a stage that call finished."""

    model_cfg: ModelConfig
    cfg: TrainConfig
    resume: bool
    progress: bool
    log: Callable[[str], None]

    def train(self, images_u8: np.ndarray, val_u8: np.ndarray, run_dir: Path, info: dict) -> None:
        from . import checkpoint as ckpt
        from .training import train

        saved = self.resume and (run_dir / ckpt.STATE).is_file()
        if saved and ckpt.load_training_state(run_dir).extra["epoch"] >= self.cfg.epochs:
            self.log(f"already trained by an interrupted call: {run_dir}")
            return
        if saved:
            self.log(f"continuing the interrupted training in {run_dir}")
        hint = "running it again" if self.resume else "the same call with resume=True"
        options = {"data_info": info, "progress": self.progress, "log": self.log, "continue_with": hint}
        train(images_u8, val_u8, self.model_cfg, self.cfg, run_dir, resume=saved, **options)


def _info(images_u8: np.ndarray) -> dict:
    """What a mixture run's config.json records of its data."""
    return {"source": None, "note": "anomaly mixture", "n_train": int(len(images_u8))}


@dataclass
class Mixture:
    """Sheep with planted drawings of another kind, shuffled; ``planted`` marks the intruders."""

    images: np.ndarray  # (N, 28, 28) uint8
    planted: np.ndarray  # (N,) bool
    source_index: np.ndarray  # (N,) index into the sheep (planted False) or the others (True)


def mixture_run(
    images_u8: np.ndarray, val_u8: np.ndarray, model_cfg: ModelConfig, out_dir: str | Path, **options: Any
) -> VAE:
    """:func:`train_on_mixture` (``options``: its keywords) into ``out_dir/mixture_run``: trained in
    ``out_dir/.mixture_run.partial``, which replaces it only when done, so Ctrl-C or an error keeps
    an earlier call's run. Interrupted (Ctrl-C, SIGTERM, a kill), the same call again continues the
    training where it stopped; a call with other drawings or settings starts afresh."""
    import shutil

    out_dir = Path(out_dir)
    work = out_dir / PARTIAL
    job = _mixture_job(images_u8, val_u8, model_cfg, options)
    if not same_job(work / JOB, job):
        if (work / JOB).exists():
            log = options.get("log", print)
            log(f"{work} held an interrupted training of other drawings or settings: starting afresh")
        shutil.rmtree(work, ignore_errors=True)
        ensure_dir(work)
        write_json(work / JOB, job)
    try:
        model = train_on_mixture(images_u8, val_u8, model_cfg, work, resume=True, **options)
    except KeyboardInterrupt:
        raise  # kept for the same call again
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    (work / JOB).unlink()
    target, old = out_dir / "mixture_run", out_dir / f"{PARTIAL}-old"
    shutil.rmtree(old, ignore_errors=True)  # left by a kill between the two renames below
    if target.exists():
        target.rename(old)
    work.rename(target)  # a moment with no mixture_run, never one with neither run on disk
    shutil.rmtree(old, ignore_errors=True)
    return model


PARTIAL, JOB = ".mixture_run.partial", "job.json"  # a mixture's training until done; what it trains


def _mixture_job(images_u8: np.ndarray, val_u8: np.ndarray, model_cfg: ModelConfig, options: dict) -> dict:
    """What a mixture run trains, as JSON: the drawings' content, the model, the options."""
    import hashlib

    def content(x: np.ndarray) -> str:
        x = np.ascontiguousarray(x)
        return f"{x.shape}:{hashlib.blake2b(x.data, digest_size=16).hexdigest()}"

    # how it is shown and where it runs do not change what is trained: a run resumes on any device
    settings = {k: v for k, v in options.items() if k not in ("progress", "log", "device")}
    job = {"drawings": content(images_u8), "valid": content(val_u8), "model": model_cfg.to_dict(), **settings}
    return json.loads(json_text(job))  # as read back: tuples as lists


def warn_renderers_differ() -> None:
    """Google's renderer and ours differ slightly: mixed, a detector could find the renderer rather
    than the drawing."""
    warnings.warn(
        "mixing Google-rendered bitmaps with strokes rasterised here: the scores may partly tell the two "
        "renderers apart rather than the drawings (mix like with like)",
        SheepWarning,
        stacklevel=2,
    )


def mix(sheep_u8: np.ndarray, other_u8: np.ndarray, fraction: float, seed: int = 0) -> Mixture:
    """Drop ``fraction`` x (number of sheep) drawings of ``other_u8`` among the sheep and shuffle.

    When ``other_u8`` holds fewer, all of them are used and a warning says so.
    """
    if not 0 < fraction <= 1:
        raise ConfigError(f"the --mix fraction must be in (0, 1], got {fraction:g}")
    rng = np.random.default_rng(seed)
    wanted = max(1, int(round(fraction * len(sheep_u8))))
    n_other = min(wanted, len(other_u8))
    if n_other < wanted:
        warnings.warn(
            f"asked for {wanted} planted drawings ({fraction:g} of {len(sheep_u8)}) but the other data "
            f"holds only {len(other_u8)}: planting {n_other}",
            SheepWarning,
            stacklevel=2,
        )
    chosen = np.sort(rng.choice(len(other_u8), size=n_other, replace=False))
    images = np.concatenate([sheep_u8, other_u8[chosen]])
    planted = np.concatenate([np.zeros(len(sheep_u8), bool), np.ones(n_other, bool)])
    source = np.concatenate([np.arange(len(sheep_u8)), chosen])
    order = rng.permutation(len(images))
    return Mixture(np.ascontiguousarray(images[order]), planted[order], source[order])
