"""What a training run keeps, as callbacks of :func:`.trainer.fit`: the run folder's checkpoints
(and resuming from them), the validation codes of every epoch, TensorBoard, progress. Only the
first process writes or prints."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from ..core.infer import as_batch, encode_means
from ..core.trainer import Callback, FitState, empty_sums, random_state, set_random_state
from ..errors import ConfigError, DataError, SheepError
from ..wording import counted
from . import checkpoint as ckpt
from .fileio import ensure_dir


class Checkpoint(Callback):
    """Starts the run folder (``config.json``) or, with ``resume``, restores its last checkpoint,
    even one Ctrl-C saved in the middle of an epoch; saves every epoch, and an interrupted one."""

    def __init__(
        self, run_dir: Path, data_info: dict[str, Any], resume: bool, log, continue_with: str = "--resume"
    ) -> None:
        self.run_dir, self.data_info, self.resume, self.log = run_dir, data_info, resume, log
        self.continue_with = continue_with  # what the user runs to go on, for the interrupt's message
        self.history: list[dict[str, Any]] = []
        self.saved: tuple[int, int] | None = None  # (epoch, step) of the last checkpoint saved

    def on_start(self, state: FitState) -> None:
        self.history = state.history
        if self.resume:
            self._restore(state)
            if state.epoch >= state.config.epochs and state.procs.main:
                done = counted(state.epoch, "epoch")
                self.log(f"{self.run_dir} has already trained {done}: nothing to do (ask for more with --epochs)")
        elif state.procs.main:
            ensure_dir(self.run_dir)
            self._check_nothing_to_overwrite()
            config = {"model": state.model.config.to_dict(), "train": state.config.to_dict(), "data": self.data_info}
            ckpt.save_config(self.run_dir, config)

    def on_epoch_end(self, state: FitState, row: dict[str, Any]) -> None:
        if state.procs.main:
            self._save(state, state.epoch + 1, 0, None)

    def _check_nothing_to_overwrite(self) -> None:
        """A new run may replace the config.json of a run that stopped before its first checkpoint,
        nothing else: not another run, nor a config.json no run wrote."""
        if (self.run_dir / ckpt.WEIGHTS).exists() or (self.run_dir / ckpt.STATE).exists():
            raise SheepError(f"{self.run_dir} already holds a run; use --resume to continue it or choose another --out")
        if (self.run_dir / ckpt.CONFIG).exists():
            try:
                ckpt.read_config(self.run_dir)
            except SheepError:
                raise DataError(
                    self.run_dir / ckpt.CONFIG, "is not a run's and would be overwritten: choose another --out"
                ) from None

    def on_interrupt(self, state: FitState) -> None:
        if not state.procs.main:
            return
        if state.step > 0 and self.saved != (state.epoch + 1, 0):  # unless its end was saved already
            self._save(state, state.epoch, state.step, state.sums)
            where = f"saved epoch {state.epoch + 1} at step {state.step}/{state.steps} in"
        elif (last := self._last_epoch()) is not None:  # between epochs: the last one is on disk
            where = f"epoch {last} is saved in"
        else:
            return
        self.log(f"interrupted: {where} {self.run_dir}; {self.continue_with} continues from there")

    def last_good(self) -> str:
        """Which epoch the folder's last checkpoint holds, for a message."""
        last = self._last_epoch()
        return "none yet" if last is None else f"epoch {last}"

    def kept(self) -> str:
        """What the folder still holds after a file could not be written, and how to go on."""
        if (last := self._last_epoch()) is None:
            return "no epoch was saved yet"
        return f"{self.run_dir} keeps epoch {last}; {self.continue_with} continues from there once it can be written"

    def _last_epoch(self) -> int | None:
        rows = ckpt.read_metrics(self.run_dir)
        return rows[-1]["epoch"] if rows else None

    def _save(self, state: FitState, epoch: int, step: int, partial: dict[str, float] | None) -> None:
        """One checkpoint: committed by the training state's rename (it holds everything), then the
        weights and metrics that users read, each file atomically."""
        rng = random_state(next(state.model.parameters()).device)
        extra = {"epoch": epoch, "step": step, "partial": partial}
        ckpt.save_training_state(self.run_dir, state.optimizer, extra, rng, state.model, state.history)
        self._save_readable(state.model, epoch, step, state.history)
        self.saved = (epoch, step)

    def _save_readable(self, model, epoch: int, step: int, history: list[dict[str, Any]]) -> None:
        """The weights and metrics users read, as the training state has them."""
        ckpt.save_weights(model, self.run_dir, {"epoch": str(epoch), "step": str(step)})
        ckpt.write_metrics(self.run_dir, history)

    def _restore(self, state: FitState) -> None:
        """The last checkpoint into the model, the optimiser, the RNG and the state."""
        saved = ckpt.read_config(self.run_dir)
        self._check_same_run(saved, state)
        saved_state = ckpt.load_training_state(self.run_dir)
        saved_state.restore_model(state.model, self.run_dir)
        state.optimizer.load_state_dict(saved_state.optimizer)
        _moments_in_parameter_layout(state.optimizer)
        epoch, step = int(saved_state.extra["epoch"]), int(saved_state.extra["step"])
        _restore_rng(saved_state.rng, state)
        if state.procs.main:
            saved["train"] = state.config.to_dict()  # e.g. more --epochs than before
            ckpt.save_config(self.run_dir, saved)
        history = ckpt.read_metrics(self.run_dir) if saved_state.history is None else saved_state.history
        if state.procs.main and saved_state.history is not None:  # mend a save cut between its files
            self._save_readable(state.model, epoch, step, history)
        state.epoch, state.step, state.history = epoch, step, history
        self.history = history
        state.sums = saved_state.extra.get("partial") or empty_sums()

    def _check_same_run(self, saved: dict[str, Any], state: FitState) -> None:
        if saved["model"] != state.model.config.to_dict():
            raise ConfigError(
                f"{self.run_dir}: the saved model config differs from the one asked for; resume with the same"
            )
        trained_with = saved.get("train", {}).get("optimizer", state.config.optimizer)
        if trained_with != state.config.optimizer:
            raise ConfigError(f"{self.run_dir} was trained with {trained_with}; resume with the same optimizer")


def _moments_in_parameter_layout(optimizer: torch.optim.Optimizer) -> None:
    """Saved contiguous, each parameter's optimiser tensors go back in its layout (channels-last):
    the fused update reads them element for element in the parameter's memory order."""
    for group in optimizer.param_groups:
        for p in group["params"]:
            state = optimizer.state.get(p, {})
            for key, value in state.items():
                if torch.is_tensor(value) and value.shape == p.shape and value.stride() != p.stride():
                    state[key] = torch.empty_like(p).copy_(value)


def _restore_rng(rng: dict[str, torch.Tensor], state: FitState) -> None:
    if state.procs.world == 1:  # under torchrun each step seeds itself (trainer._seed_step)
        set_random_state(rng, next(state.model.parameters()).device)


class CalibrateTemperature(Callback):
    """After the last epoch, before it is saved: the pixel temperature read off the training
    drawings, for a model that calibrates it (ModelConfig.calibrated_temperature); the last
    metrics row records it. ``progress``: a bar over the temperatures tried."""

    def __init__(self, train_images, progress: bool = False) -> None:
        self.train_images = train_images  # (N, 28, 28) uint8, an array or a DrawingSet
        self.progress = progress

    def on_epoch_end(self, state: FitState, row: dict[str, Any]) -> None:
        last = state.epoch + 1 == state.config.epochs
        if state.procs.main and last and hasattr(state.model, "calibrated"):
            from ..analysis.generate import calibrate_temperature

            seed = state.config.seed
            row["pixel_temperature"] = calibrate_temperature(state.model, self.train_images, seed, self.progress)


class LatentSnapshots(Callback):
    """The validation drawings' codes after every epoch (``latents/epoch_NNN.npy``): the latent
    space over training; with ``categories`` (several files), each drawing's, once."""

    def __init__(self, run_dir: Path, categories: np.ndarray | None = None) -> None:
        self.run_dir, self.categories = run_dir, categories

    def on_start(self, state: FitState) -> None:
        # Not beside codes saved without them (a run resumed from an older version): their order may differ.
        known = (self.run_dir / ckpt.LATENTS / ckpt.LATENT_CATEGORIES).is_file() or not ckpt.latent_epochs(self.run_dir)
        if state.procs.main and self.categories is not None and known:
            ckpt.save_latent_categories(self.run_dir, self.categories)

    def on_epoch_end(self, state: FitState, row: dict[str, Any]) -> None:
        if state.procs.main:
            ckpt.save_latents(self.run_dir, row["epoch"], encode_means(state.model, state.x_val))


class TensorBoard(Callback):
    """Scalars for every loss term and the KL weight; reconstructions, samples and the latent
    scatter, every epoch, in the run folder."""

    def __init__(self, run_dir: Path, categories: tuple[np.ndarray, list[str]] | None = None) -> None:
        """``categories``: each validation drawing's category and their names (several files)."""
        self.run_dir, self.writer, self.categories = run_dir, None, categories

    def on_epoch_end(self, state: FitState, row: dict[str, Any]) -> None:
        if not state.procs.main:
            return
        if self.writer is None:
            from torch.utils.tensorboard import SummaryWriter

            # purge_step drops events a crashed run logged after its last checkpoint.
            start = state.epoch
            self.writer = SummaryWriter(log_dir=str(self.run_dir), purge_step=start + 1 if start else None)
        _log_epoch(self.writer, state.model, state.x_val, row, self.categories)

    def on_end(self, state: FitState) -> None:
        if self.writer is not None:
            self.writer.close()


def _log_epoch(
    writer, model, x_val: torch.Tensor, row: dict[str, Any], categories: tuple[np.ndarray, list[str]] | None = None
) -> None:
    from ..analysis.latent import finite_rows, to_plane
    from ..render.plots import category_labels, grid_image, latent_scatter_figure

    e = row["epoch"]
    for key in ("loss", "recon", "kl", "render", "val_loss", "val_recon", "val_kl", "val_render"):
        if key in row:
            writer.add_scalar(f"loss/{key}", row[key], e)
    writer.add_scalar("kl_weight", row["kl_weight"], e)
    writer.add_scalar("images_per_s", row["images_per_s"], e)
    originals = x_val[:16]
    recon, samples = _pictures(model, originals, e)
    pairs = np.concatenate([originals.cpu().numpy() / 255.0, recon])  # originals row(s), then reconstructions
    writer.add_image(
        "reconstructions", np.asarray(grid_image(pairs, ncols=16, scale=2, invert=True)), e, dataformats="HW"
    )
    writer.add_image("samples", np.asarray(grid_image(samples, ncols=8, scale=2, invert=True)), e, dataformats="HW")
    codes = encode_means(model, x_val)
    ok = finite_rows(codes)
    plane, axis = to_plane(codes[ok])  # a code of a diverging run cannot be projected
    labels, names = category_labels(categories, ok)
    figure = latent_scatter_figure(plane, f"validation codes after epoch {e}", labels, names, axis=axis)
    writer.add_figure("latent_space", figure, e)
    writer.flush()


@torch.no_grad()
def _pictures(model, originals: torch.Tensor, epoch: int) -> tuple[np.ndarray, np.ndarray]:
    """Reconstructions of ``originals`` and 32 new drawings (seeded by the epoch), in eval mode."""
    model.eval()
    device = next(model.parameters()).device
    z_new = model.sample_codes(32, torch.Generator().manual_seed(epoch)).to(device)
    z = torch.cat([model.encode(as_batch(originals))[0], z_new])  # one decode: its pixel steps are the cost
    drawn = model.decode(z).float().cpu()[:, 0].numpy()
    model.train()
    return drawn[: len(originals)], drawn[len(originals) :]


class Progress(Callback):
    """A progress bar over each epoch's steps (``bar``) and one summary line per epoch (``log``)."""

    def __init__(self, log=print, bar: bool = True) -> None:
        self.log, self.show_bar, self.bar = log, bar, None

    def on_epoch_start(self, state: FitState) -> None:
        desc = f"epoch {state.epoch + 1}/{state.config.epochs}"
        disable = not (self.show_bar and state.procs.main)
        self.bar = tqdm(total=state.steps, initial=state.step, desc=desc, leave=False, disable=disable, unit="batch")

    def on_step(self, state: FitState) -> None:
        self.bar.update(1)
        if (state.step - 1) % 20 == 0:
            from ..core.train_config import kl_weight

            w = kl_weight(state.config, state.epoch, state.step - 1, state.steps)
            self.bar.set_postfix(loss=f"{state.last_loss:.2f}", kl_w=f"{w:.2f}")
        if state.step == state.steps:  # gone before the epoch's end draws a bar of its own (the temperature's)
            self._close()

    def on_epoch_end(self, state: FitState, row: dict[str, Any]) -> None:
        self._close()
        if state.procs.main:
            render = f"  render {row['render']:.2f}" if "render" in row else ""  # the renderer's loss joins the total
            self.log(
                f"epoch {row['epoch']:>3}/{state.config.epochs}  loss {row['loss']:.2f}  recon {row['recon']:.2f}"
                f"  kl {row['kl']:.3f}  kl_w {row['kl_weight']:.2f}{render}  val_loss {row['val_loss']:.2f}"
                f"  {row['images_per_s']:.0f} img/s"
            )
            if "pixel_temperature" in row:
                self.log(f"pixel temperature read off the training drawings: {row['pixel_temperature']:g}")

    def on_end(self, state: FitState) -> None:
        self._close()  # however training stopped (Ctrl-C, a NaN): the bar goes before the message

    def _close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None
