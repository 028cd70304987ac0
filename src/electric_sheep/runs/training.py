"""Training into a run folder: :func:`.trainer.fit` with the callbacks that keep a run
(checkpoints and resume, latent snapshots, TensorBoard, progress), under the folder's lock."""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..core.batches import is_streamed
from ..core.devices import is_main_process, pick_device, seed_process
from ..core.infer import check_drawings
from ..core.model import ModelConfig, build_model
from ..core.train_config import TrainConfig
from ..core.trainer import Callback, fit
from ..data.sources import DrawingSet
from ..errors import OutputError, SheepWarning, TrainingDiverged
from .callbacks import CalibrateTemperature, Checkpoint, LatentSnapshots, Progress, TensorBoard
from .fileio import folder_lock


def train(
    train_images: np.ndarray | DrawingSet,
    val_images: np.ndarray,
    model_cfg: ModelConfig,
    cfg: TrainConfig,
    run_dir: str | Path,
    *,
    resume: bool = False,
    data_info: dict[str, Any] | None = None,
    progress: bool = True,
    log: Callable[[str], None] = print,
    callbacks: Sequence[Callback] = (),
    continue_with: str = "--resume",
    val_categories: tuple[np.ndarray, list[str]] | None = None,
) -> list[dict[str, Any]]:
    """Train a new VAE of ``model_cfg`` on uint8 (N, 28, 28) drawings into ``run_dir`` and return
    the metrics history. ``log``: where each epoch's line goes; ``progress``: a bar over its steps.
    With ``resume`` the run continues from ``run_dir``'s last checkpoint, even one saved by Ctrl-C
    in the middle of an epoch, to the same result as an uninterrupted run (``continue_with``: what
    the user runs for that, as Ctrl-C's message says). ``callbacks`` run after the run's own (see
    :class:`.trainer.Callback`). ``val_categories``: each validation drawing's category and their
    names (several files), which the latent plots colour the codes by."""
    run_dir = Path(run_dir)
    # Bad drawings or an unknown or absent device stop before the run folder is made.
    for images in (val_images,) if is_streamed(train_images) else (train_images, val_images):
        check_drawings(images)
    pick_device(cfg.device)
    # Only rank 0 writes; its lock keeps a second `sheep train` out of the folder until it ends.
    lock = folder_lock(run_dir, "a training run") if is_main_process() else contextlib.nullcontext()
    log = _beside_bars(log)
    checkpoint = Checkpoint(run_dir, data_info or {}, resume, log, continue_with)
    calibrate = CalibrateTemperature(train_images, progress)  # first: the checkpoint saves what it sets
    snapshots = LatentSnapshots(run_dir, None if val_categories is None else val_categories[0])
    keep = [calibrate, snapshots, TensorBoard(run_dir, val_categories), checkpoint, Progress(log, bar=progress)]
    with lock:
        seed_process(cfg.seed)
        model = build_model(model_cfg)
        try:
            fit(model, train_images, val_images, cfg, [*keep, *callbacks])
        except TrainingDiverged as e:
            raise TrainingDiverged(
                f"{e}, last good checkpoint in {run_dir}: {checkpoint.last_good()} (try a lower --lr)"
            ) from None
        except OutputError as e:  # a full disk, say: the last checkpoint is intact
            raise OutputError(e.path, f"{e.problem}; {checkpoint.kept()}") from None
    return checkpoint.history


def warn_no_validation(where: str, n_train: int) -> None:
    """Say that ``where`` holds no drawing to validate on (a file of a few drawings: its 10% valid
    split rounds to none), so validation is measured on the ``n_train`` training drawings."""
    warnings.warn(
        f"{where}: no drawing in the validation split ({n_train} to train on); validation is measured on "
        "the training drawings themselves",
        SheepWarning,
        stacklevel=3,
    )


def _beside_bars(log: Callable[[str], None]) -> Callable[[str], None]:
    """``log`` that first clears any progress bar on the terminal (and draws it again after), so
    that a line printed mid-epoch (a Ctrl-C's "saved") starts a line of its own."""
    from tqdm import tqdm

    def write(message: str) -> None:
        with tqdm.external_write_mode():
            log(message)

    return write
