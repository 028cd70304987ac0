"""``sheep anomalies`` as one call: score the drawings of a file with a run's model, flag the
highest, write the plot, gallery and CSV (:func:`..render.anomaly_outputs.run_anomalies`); or
first plant drawings of another file among them, and train a fresh model on that mixture (the
honest case), to measure how well they are found.

The scores of a file are kept on disk column by column as they are computed
(:class:`.streaming.Store`), so a killed run given the same job continues; under torchrun each
process scores its share and the first writes the outputs.
"""

from __future__ import annotations

import dataclasses
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..analysis.anomaly import DEFAULT_SCORE
from ..errors import ConfigError
from .streaming import Shard, Store

if TYPE_CHECKING:
    from ..analysis.anomaly import Yardstick
    from ..data.drawings import Drawings

PARTS = ".anomaly_parts"  # inside OUT_DIR: the score columns until the CSV is written
REFERENCE_DRAWINGS = 2_000  # of the run's training drawings, the yardstick of a small set


@dataclasses.dataclass(frozen=True)
class Planting:
    """Drawings of ``other`` (a file or category) planted among those scored, ``fraction`` of their
    count, chosen and shuffled by ``seed``. With ``train_epochs``, a fresh model like the run's
    (``latent_dim`` overriding its latent size) is trained on the mixture and scores it; ``trim``:
    the share a first model finds least typical, set aside before the second trains (0: once)."""

    other: str
    fraction: float
    seed: int = 0
    train_epochs: int | None = None
    trim: float = 0.2
    latent_dim: int | None = None


def screen_run(
    run_dir: str | Path,
    drawings: Drawings | None,
    split: str,
    out_dir: str | Path,
    *,
    kind: str = DEFAULT_SCORE,
    planting: Planting | None = None,
    device: Any = "cpu",
    train_device: str | None = None,
    progress: bool = True,
    log: Callable[[str], None] = print,
    **flags: Any,
) -> dict[str, Any] | None:
    """Score ``split`` of ``drawings`` ("all": every drawing; None: the data the run was trained
    on) with ``run_dir``'s model on ``device`` and write the outputs into ``out_dir``; ``flags``: how
    to flag (``threshold``, ``top`` or ``quantile``). Fewer than SMALL_SET drawings are scored
    among up to REFERENCE_DRAWINGS of the run's training drawings (those the set does not hold;
    where they cannot be read, as many drawn by the model), whose scores set the default
    threshold. With ``planting`` the mixture is scored instead, and the result says how well the
    planted drawings were found (a fresh model, when asked for, trained on ``train_device`` or
    where training chooses, into ``out_dir/mixture_run``). Returns ``run_anomalies``' result (with
    ``mixture_run``, the fresh model's folder); None in the processes of torchrun but the first."""
    from ..data.sources import split_view
    from .run_sources import run_data

    run_dir, out_dir = Path(run_dir), Path(out_dir)
    drawings = run_data(run_dir) if drawings is None else drawings
    images = split_view(drawings, split)  # read as scoring needs it: a whole category never in memory
    if planting is None:
        return _screen_file(run_dir, drawings, split, images, out_dir, kind, device, progress, flags, log)
    if Shard.from_env().world > 1:  # every process would train and write the same mixture's outputs
        raise ConfigError("a mixture is scored in one process, not under torchrun")
    training = {"device": train_device, "progress": progress, "log": log}
    return _screen_mixture(run_dir, drawings, images, out_dir, planting, kind, device, training, flags)


def _screen_file(
    run_dir: Path,
    drawings: Drawings,
    split: str,
    images,
    out_dir: Path,
    kind: str,
    device,
    progress: bool,
    flags: dict,
    log: Callable[[str], None],
) -> dict[str, Any] | None:
    """Every drawing of ``images`` scored, each column kept in OUT_DIR until the CSV is written; a
    small set in memory instead, by the first process, among a yardstick (:func:`_yardstick`)."""
    from ..analysis.anomaly import SMALL_SET, screen
    from ..render.anomaly_outputs import run_anomalies
    from .checkpoint import load_model
    from .run_sources import streamed_job

    shard = Shard.from_env()  # under torchrun each process scores its share; the first writes
    small = len(images) < SMALL_SET  # a second's work: not worth sharing or keeping on disk
    if small and not shard.main:
        return None
    model = load_model(run_dir, device)
    if small:
        store, reference = Store(progress=progress), _yardstick(run_dir, images, model, log)
    else:
        job = {**streamed_job(run_dir, drawings, split), "score": kind}
        store, reference = Store(out_dir / PARTS, job, progress=progress and shard.main, shard=shard), None
    if not shard.main:
        screen(model, images, kind, store)
        return None
    # a folder of pictures: each file's name; several files: each drawing's category and row
    where_from = {"names": drawings.meta.get("files"), "sources": _sources(drawings, split)}
    result = run_anomalies(model, images, out_dir, kind=kind, store=store, reference=reference, **where_from, **flags)
    if store.folder is not None:
        shutil.rmtree(store.folder, ignore_errors=True)  # every score is in the CSV now
    return result


def _yardstick(run_dir: Path, images, model, log: Callable[[str], None]) -> Yardstick | None:
    """What a small set is scored among: up to REFERENCE_DRAWINGS of the training drawings of what
    the model learned, less any the set holds itself; where they cannot be read, as many drawn by
    the model (with a note). None for a set that holds them all (a small file the run was trained
    on, scored whole: its own yardstick)."""
    from ..analysis.anomaly import DRAWN, Yardstick
    from .run_sources import learned_drawings

    learned = learned_drawings(run_dir)
    if learned is None:
        log(
            f"note: the drawings the model learned from were not found: compared with {REFERENCE_DRAWINGS:,} it "
            "drew (for the built-in model, sheep download sheep gives the real ones)"
        )
        return Yardstick(model_drawings(model, REFERENCE_DRAWINGS), DRAWN)
    reference, scored = learned.split("train", limit=REFERENCE_DRAWINGS), {x.tobytes() for x in np.asarray(images[:])}
    reference = reference[[x.tobytes() not in scored for x in reference]]
    return Yardstick(reference) if len(reference) else None


def model_drawings(model, n: int) -> np.ndarray:
    """(n, 28, 28) uint8: ``n`` drawings by the model, seeded; of a class-conditional model, as many
    of each category (to within one)."""
    from ..analysis.generate import draw

    categories = model.config.categories or (None,)
    counts = np.diff(np.linspace(0, n, len(categories) + 1).round().astype(int))
    parts = [draw(model, int(m), seed=0, category=c) for c, m in zip(categories, counts, strict=True)]
    return np.round(np.concatenate(parts) * 255).astype(np.uint8)


def _screen_mixture(
    run_dir: Path, drawings: Drawings, images, out_dir: Path, planting: Planting, kind: str, device, training, flags
) -> dict[str, Any]:
    """``planting``'s mixture scored by the run's model, or by a fresh one trained on it first
    (``training``: where, and how it reports; see :func:`_train_on_mixture`)."""
    from ..core.train_config import TrainConfig
    from ..render.anomaly_outputs import run_anomalies
    from .checkpoint import load_model

    mixed, planted = plant(images[:], planting, drawings.format)
    if not planting.train_epochs:
        return run_anomalies(load_model(run_dir, device), mixed, out_dir, kind=kind, planted=planted, **flags)
    valid = drawings.split("valid", limit=TrainConfig.val_limit)  # only what validation uses
    model = _train_on_mixture(run_dir, mixed, valid, planting, out_dir, **training).to(device)
    result = run_anomalies(model, mixed, out_dir, kind=kind, planted=planted, **flags)
    return {**result, "mixture_run": str(out_dir / "mixture_run")}


def _sources(drawings: Drawings, split: str) -> tuple[np.ndarray, list[str], np.ndarray] | None:
    """Of several files: each drawing's category, the categories' names and its row in its file."""
    categories = drawings.categories(split)
    return None if categories is None else (*categories, drawings.rows_in_files(split))


def plant(images: np.ndarray, planting: Planting, data_format: str) -> tuple[np.ndarray, np.ndarray]:
    """(mixture, planted mask): ``planting``'s drawings among ``images``, shuffled (warns when a
    mix crosses renderers, or when the other file holds fewer drawings than asked for)."""
    from ..data.drawings import load_drawings
    from .mixtures import mix, warn_renderers_differ

    other = load_drawings(planting.other)
    if (data_format == "bitmap") != (other.format == "bitmap"):
        warn_renderers_differ()
    mixture = mix(images, np.asarray(other.images), planting.fraction, planting.seed)
    return mixture.images, mixture.planted


def _train_on_mixture(
    run_dir: Path,
    images: np.ndarray,
    valid: np.ndarray,
    planting: Planting,
    out_dir: Path,
    device: str | None,
    progress: bool,
    log: Callable[[str], None],
):
    """A fresh model like ``run_dir``'s, trained on the contaminated drawings into
    ``out_dir/mixture_run`` (on ``device``, else where training chooses); returns it."""
    from .checkpoint import read_model_config
    from .mixtures import mixture_run

    model_cfg = read_model_config(run_dir)
    if planting.latent_dim is not None:
        model_cfg = dataclasses.replace(model_cfg, latent_dim=planting.latent_dim)
    options = {"epochs": planting.train_epochs, "trim": planting.trim, "seed": planting.seed}
    if device:  # else training's own choice: CUDA when present
        options["device"] = device
    return mixture_run(images, valid, model_cfg, out_dir, progress=progress, log=log, **options)
