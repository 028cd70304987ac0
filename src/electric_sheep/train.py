"""Training: a generic loop over uint8 image tensors that knows nothing about sheep.

The model computes its own loss terms (``model.loss``); this module handles batching, the KL
weight schedule, devices, several processes (DistributedDataParallel under ``torchrun``),
TensorBoard, atomic checkpoints, exact resume, NaN stops and Ctrl-C.
"""

from __future__ import annotations

import contextlib
import math
import os
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch import nn
from tqdm import tqdm

from . import checkpoint as ckpt
from .errors import ConfigError, SheepError, SheepWarning, TrainingDiverged
from .fileio import ensure_dir, folder_lock
from .infer import as_batch, check_drawings, encode_means
from .model import SIDE, VAE, ModelConfig, build_model, training_layout
from .prior import MAX_CODES, posterior_samples
from .sources import DrawingSet, epoch_permutation
from .streaming import CHUNK
from .train_config import (  # noqa: F401  (the training settings, also reached through this module)
    MIN_STEPS,
    TrainConfig,
    default_epochs,
    for_device,
    kl_shortfall_warning,
    kl_weight,
    make_train_config,
    resume_train_config,
    steps_per_epoch,
)


def build_optimizer(model: nn.Module, cfg: TrainConfig) -> torch.optim.Optimizer:
    if cfg.optimizer == "rmsprop":
        # Keras' RMSprop: rho = 0.9, epsilon = 1e-7 (PyTorch's defaults are 0.99 and 1e-8).
        return torch.optim.RMSprop(model.parameters(), lr=cfg.lr, alpha=0.9, eps=1e-7)
    return torch.optim.Adam(model.parameters(), lr=cfg.lr)


class _LossModule(nn.Module):
    """Wraps ``model.loss`` as a forward pass, so DistributedDataParallel sees the whole graph."""

    def __init__(self, model: VAE) -> None:
        super().__init__()
        self.model = model

    def forward(
        self, x: torch.Tensor, w: float, free_bits: float, y: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, ...]:
        return tuple(self.model.loss(x, w, free_bits, y))


@dataclass
class _Dist:
    rank: int = 0
    world: int = 1

    @property
    def main(self) -> bool:
        return self.rank == 0


def _init_distributed(device: torch.device) -> _Dist:
    """Join the process group when launched by torchrun (WORLD_SIZE > 1): gloo on CPU, NCCL on GPU."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return _Dist()
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return _Dist(dist.get_rank(), dist.get_world_size())


def pick_device(name: str | None = None) -> torch.device:
    """``name`` (cpu, cuda, cuda:1, mps ...), checked now rather than mid-training; else CUDA if present."""
    if name:
        try:
            device = torch.device(name)
        except RuntimeError:
            raise ConfigError(f"unknown --device {name!r}; use cpu, cuda or cuda:N") from None
        if device.type == "cuda" and device.index is None:  # under torchrun: each process its own GPU
            device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        try:
            torch.empty(0, device=device)  # a CPU-only build or a missing GPU fails here
        except (RuntimeError, AssertionError) as e:
            reason = str(e).splitlines()[0].split(". ")[0][:120]  # torch's messages run to pages
            raise ConfigError(f"--device {name} is not available here ({reason})") from None
        return device
    if torch.cuda.is_available():
        return torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
    return torch.device("cpu")


@contextlib.contextmanager
def cpu_threads(n: int):
    """Run the block with ``n`` intra-op CPU threads (0: leave torch's setting), then restore it."""
    before = torch.get_num_threads()
    if n:
        torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def random_flip(x: torch.Tensor) -> torch.Tensor:
    """Each drawing of (B, 1, 28, 28) mirrored left to right with probability 1/2."""
    flipped = torch.rand(len(x), device=x.device) < 0.5
    return torch.where(flipped[:, None, None, None], x.flip(-1), x)


class _Streamed:
    """A DrawingSet as training reads it: batches gathered from its files' memory maps as they are
    asked for on a CPU (the set never in the process's memory); on a GPU copied there once, in
    chunks, as uint8."""

    def __init__(self, drawings: DrawingSet, seed: int, balance: bool, device: torch.device) -> None:
        self.drawings, self.seed, self.balance, self.device = drawings, seed, balance, device
        self.on_device = None
        if device.type == "cuda":
            n = len(drawings)
            self.on_device = torch.empty((n, SIDE, SIDE), dtype=torch.uint8, device=device)
            for start in range(0, n, CHUNK):
                part = drawings.take(np.arange(start, min(start + CHUNK, n)))
                self.on_device[start : start + len(part)] = torch.from_numpy(part).to(device)

    def __len__(self) -> int:  # an epoch's drawings: a balanced one rounds down to a multiple of the files
        n, files = len(self.drawings), len(self.drawings.parts)
        return n // files * files if self.balance else n

    def __getitem__(self, idx: torch.Tensor) -> torch.Tensor:
        if self.on_device is not None:
            return self.on_device[idx.to(self.device)]
        return torch.from_numpy(self.drawings.take(idx.cpu().numpy())).to(self.device)

    def order(self, epoch: int) -> torch.Tensor:
        return torch.from_numpy(self.drawings.epoch_order(self.seed, epoch, self.balance))

    def categories(self, idx: torch.Tensor) -> torch.Tensor:
        return torch.from_numpy(self.drawings.labels(idx.cpu().numpy())).to(self.device)


# A class-conditional model sees "no category" for this share of its training drawings, so that it
# also draws and scores without one (the null label of classifier-free guidance, Ho & Salimans 2022).
CATEGORY_DROPOUT = 0.1


def _batch_categories(x_train, idx: torch.Tensor, step_fn: nn.Module) -> torch.Tensor | None:
    """The categories of a batch for a class-conditional model (None for any other)."""
    model = _unwrap(step_fn).model
    if not model.config.categories or not isinstance(x_train, _Streamed):
        return None
    y = x_train.categories(idx)
    dropped = torch.rand(len(y), device=y.device) < CATEGORY_DROPOUT
    return torch.where(dropped, torch.full_like(y, len(model.config.categories)), y)


def _unwrap(step_fn: nn.Module) -> nn.Module:
    """The _LossModule inside torch.compile's and DistributedDataParallel's wrappers."""
    while not isinstance(step_fn, _LossModule):
        step_fn = getattr(step_fn, "_orig_mod", None) or step_fn.module
    return step_fn


def _training_drawings(images: np.ndarray | DrawingSet, cfg: TrainConfig, device: torch.device):
    """What training reads batches from: an array goes to the device whole, as before; a DrawingSet
    (several files) is streamed (see _Streamed)."""
    if isinstance(images, DrawingSet):
        return _Streamed(images, cfg.seed, cfg.balance, device)
    return torch.from_numpy(np.ascontiguousarray(images[: cfg.limit])).to(device)


def fit_prior(model: VAE, images_u8: torch.Tensor, seed: int, batch_size: int = 1024) -> int:
    """Fit ``model.prior`` to one posterior sample of each of (at most MAX_CODES) drawings; returns
    the number of components chosen. Its own generators leave training's random stream as it was."""
    chosen = torch.randperm(len(images_u8), generator=torch.Generator().manual_seed(seed))[:MAX_CODES]
    was_training = model.training
    model.eval()
    # A class-conditional model's codes hold what its category does not say: encode each with its own.
    labelled = bool(model.config.categories) and isinstance(images_u8, _Streamed)
    with torch.no_grad():
        parts = []
        for i in range(0, len(chosen), batch_size):
            idx = chosen[i : i + batch_size]
            parts.append(model.encode(as_batch(images_u8[idx]), images_u8.categories(idx) if labelled else None))
    model.train(was_training)
    mean, log_var = (torch.cat(p).float() for p in zip(*parts, strict=True))
    return model.prior.fit(posterior_samples(mean, log_var, seed), seed)


@torch.no_grad()
def validate(model: VAE, images_u8: torch.Tensor, batch_size: int = 1024) -> dict[str, float]:
    """Mean loss terms on held-out drawings with KL weight 1 (the full objective), eval mode.

    Runs under a forked RNG so that validating never changes the training's random stream.
    """
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    sums = {"loss": 0.0, "recon": 0.0, "kl": 0.0, "render": 0.0}
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        torch.manual_seed(0)
        for i in range(0, len(images_u8), batch_size):
            xb = as_batch(images_u8[i : i + batch_size].to(device))
            terms = model.loss(xb, 1.0)
            for key, value in zip(sums, terms, strict=True):
                sums[key] += float(value) * len(xb)
    model.train(was_training)
    n = max(len(images_u8), 1)
    if model.renderer is None:
        del sums["render"]
    return {f"val_{k}": v / n for k, v in sums.items()}


StepCallback = Callable[[int, int], None]


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
    on_step: StepCallback | None = None,
    model: VAE | None = None,
) -> list[dict[str, Any]]:
    """Train a VAE on uint8 (N, 28, 28) drawings and return the metrics history.

    ``on_step(epoch, step)`` is called after every optimiser step (for custom monitoring).
    ``model``: train this model, built from ``model_cfg`` by the caller (default: a fresh one).
    With ``resume`` the run continues from ``run_dir``'s last checkpoint, even one saved by
    Ctrl-C in the middle of an epoch, to the same result as an uninterrupted run.
    """
    run_dir = Path(run_dir)
    if not isinstance(train_images, DrawingSet):  # a DrawingSet's files were checked as they loaded
        check_drawings(train_images)
    check_drawings(val_images)
    device = pick_device(cfg.device)
    n_train = len(train_images) if isinstance(train_images, DrawingSet) else len(train_images[: cfg.limit])
    cfg = for_device(cfg, device, n_train)
    dd = _init_distributed(device)
    # Only rank 0 writes; its lock keeps a second `sheep train` out of the folder until it ends.
    lock = folder_lock(run_dir, "a training run") if dd.main else contextlib.nullcontext()
    with lock, cpu_threads(cfg.threads if device.type == "cpu" else 0):
        torch.manual_seed(cfg.seed + dd.rank)
        x_train = _training_drawings(train_images, cfg, device)
        x_val = torch.from_numpy(np.ascontiguousarray(val_images[: cfg.val_limit])).to(device)
        if len(x_train) < 2 * dd.world:  # batch norm (seed preset) needs two drawings per batch
            raise SheepError(f"only {len(x_train)} training drawings: need at least 2 per process")

        model = (build_model(model_cfg) if model is None else model).to(device)
        training_layout(model)
        optimizer = build_optimizer(model, cfg)
        if resume:
            pos, history = _restore(run_dir, model, optimizer, model_cfg, cfg, dd)
            if pos.epoch >= cfg.epochs and dd.main:
                done = f"{pos.epoch} epoch" + ("s" if pos.epoch != 1 else "")
                log(f"{run_dir} has already trained {done}: nothing to do (ask for more with --epochs)")
        else:
            pos, history = _Position(0, 0, _Position.empty_sums()), []
            if dd.main:
                _start_run(run_dir, {"model": model_cfg.to_dict(), "train": cfg.to_dict(), "data": data_info or {}})
        step_fn = _step_module(model, device, dd, cfg.compile)
        writer = _tensorboard(run_dir, pos.epoch) if dd.main else None
        steps = steps_per_epoch(len(x_train), cfg.batch_size, dd.world)
        shortfall = kl_shortfall_warning(cfg, steps)
        if shortfall and dd.main and pos.epoch < cfg.epochs:
            warnings.warn(shortfall, SheepWarning, stacklevel=2)
        model.train()
        try:
            while pos.epoch < cfg.epochs:
                _run_epoch(step_fn, optimizer, x_train, cfg, pos, steps, dd, run_dir, progress and dd.main, on_step)
                if dd.main and model.prior is not None:  # before the checkpoint, which saves it
                    fit_prior(model, x_train, cfg.seed + pos.epoch)
                row = _finish_epoch(
                    model, optimizer, x_val, pos.sums, cfg, pos.epoch, steps, dd, run_dir, writer, history
                )
                if dd.main:
                    log(_summary_line(row, cfg.epochs))
                pos = _Position(pos.epoch + 1, 0, _Position.empty_sums())
        except KeyboardInterrupt:
            if dd.main and pos.step > 0:  # save the interrupted epoch so --resume continues it
                _save(run_dir, model, optimizer, pos.epoch, pos.step, pos.sums, history)
                log(
                    f"interrupted: saved epoch {pos.epoch + 1} at step {pos.step}/{steps} in {run_dir}; "
                    "--resume continues from there"
                )
            raise
        finally:
            if writer is not None:
                writer.close()
            if dd.world > 1 and dist.is_initialized():
                dist.destroy_process_group()
        return history


@dataclass
class _Position:
    """Where training stands: the epoch (0-based), the steps done in it and its running sums of
    the loss terms, so that Ctrl-C can save a half-done epoch and --resume can finish it."""

    epoch: int
    step: int
    sums: dict[str, float]

    @staticmethod
    def empty_sums() -> dict[str, float]:
        return {"loss": 0.0, "recon": 0.0, "kl": 0.0, "render": 0.0, "n": 0, "seconds": 0.0}


def _start_run(run_dir: Path, config: dict[str, Any]) -> None:
    """A new run folder with its config.json; never over an existing run."""
    ensure_dir(run_dir)
    if (run_dir / ckpt.WEIGHTS).exists():
        raise SheepError(f"{run_dir} already holds a run; use --resume to continue it or choose another --out")
    ckpt.save_config(run_dir, config)


def _step_module(model: VAE, device: torch.device, dd: _Dist, compile_loss: bool = False) -> nn.Module:
    """The loss as a module; wrapped in DistributedDataParallel under torchrun."""
    step_fn: nn.Module = _LossModule(model)
    if dd.world > 1:
        step_fn = nn.parallel.DistributedDataParallel(
            step_fn, device_ids=[device.index] if device.type == "cuda" else None
        )
    if compile_loss and device.type == "cuda":
        step_fn = torch.compile(step_fn)
    return step_fn


def _run_epoch(
    step_fn: nn.Module,
    optimizer: torch.optim.Optimizer,
    x_train: torch.Tensor | _Streamed,
    cfg: TrainConfig,
    pos: _Position,
    steps: int,
    dd: _Dist,
    run_dir: Path,
    progress: bool,
    on_step: StepCallback | None,
) -> None:
    """The optimiser steps of epoch ``pos.epoch`` from step ``pos.step`` on, updating ``pos`` as it goes."""
    device = next(step_fn.parameters()).device
    autocast = torch.autocast("cuda", dtype=torch.bfloat16) if device.type == "cuda" else contextlib.nullcontext()
    n_local = len(x_train) // dd.world  # every rank runs the same number of steps
    order = (
        x_train.order(pos.epoch)
        if isinstance(x_train, _Streamed)
        else epoch_permutation(len(x_train), cfg.seed, pos.epoch)
    )
    perm = order[dd.rank :: dd.world][:n_local].to(device)
    desc = f"epoch {pos.epoch + 1}/{cfg.epochs}"
    bar = tqdm(total=steps, initial=pos.step, desc=desc, leave=False, disable=not progress, unit="batch")
    t0 = time.perf_counter()
    for step in range(pos.step, steps):
        w = kl_weight(cfg, pos.epoch, step, steps)
        idx = perm[step * cfg.batch_size : (step + 1) * cfg.batch_size]
        xb = as_batch(x_train[idx])
        if cfg.flip:
            xb = random_flip(xb)
        yb = _batch_categories(x_train, idx, step_fn)
        with autocast:
            total, recon, kl, render = step_fn(xb, w, cfg.free_bits, yb)
        values = torch.stack([torch.as_tensor(v, device=device).float() for v in (total, recon, kl, render)])
        values = values.detach().tolist()  # the step's one wait for the device
        _check_finite(values[0], device, pos.epoch, step, run_dir, dd)
        optimizer.zero_grad(set_to_none=True)
        total.backward()
        optimizer.step()
        for key, value in zip(("loss", "recon", "kl", "render"), values, strict=True):
            pos.sums[key] += value * len(xb)
        pos.sums["n"] += len(xb)
        bar.update(1)
        if step % 20 == 0:
            bar.set_postfix(loss=f"{values[0]:.2f}", kl_w=f"{w:.2f}")
        pos.step = step + 1  # before the callback: a Ctrl-C there keeps this step
        if on_step is not None:
            on_step(pos.epoch, step)
    bar.close()
    pos.sums["seconds"] += time.perf_counter() - t0


def is_main_process() -> bool:
    """True unless this is a non-zero rank under torchrun (only rank 0 prints and writes)."""
    return int(os.environ.get("RANK", "0")) == 0


def _check_finite(total: float, device: torch.device, epoch: int, step: int, run_dir: Path, dd: _Dist) -> None:
    """Stop on NaN/inf before the bad step touches the weights; agree across processes."""
    ok = math.isfinite(total)
    if dd.world > 1:
        flag = torch.tensor([float(ok)], device=device)
        dist.all_reduce(flag, op=dist.ReduceOp.MIN)
        ok = flag.item() == 1
    if not ok:
        last = ckpt.read_metrics(run_dir)
        kept = f"epoch {last[-1]['epoch']}" if last else "none yet"
        raise TrainingDiverged(
            f"loss became {total} at epoch {epoch + 1}, step {step}; training stopped, "
            f"last good checkpoint in {run_dir}: {kept} (try a lower --lr)"
        )


def _finish_epoch(
    model: VAE,
    optimizer: torch.optim.Optimizer,
    x_val: torch.Tensor,
    sums: dict[str, float],
    cfg: TrainConfig,
    epoch: int,
    steps: int,
    dd: _Dist,
    run_dir: Path,
    writer,
    history: list[dict[str, Any]],
) -> dict[str, Any]:
    """Aggregate across processes, validate, log, checkpoint. Returns the epoch's metrics row."""
    terms = ("loss", "recon", "kl", "render")
    totals = torch.tensor([sums.get(key, 0.0) for key in (*terms, "n")], dtype=torch.float64)
    if dd.world > 1:  # NCCL reduces tensors on the GPU only
        totals = totals.to(x_val.device)
        dist.all_reduce(totals)
        totals = totals.cpu()
    n = max(totals[-1].item(), 1.0)
    row: dict[str, Any] = {"epoch": epoch + 1, **{key: totals[i].item() / n for i, key in enumerate(terms)}}
    if model.renderer is None:
        del row["render"]
    row.update(
        kl_weight=kl_weight(cfg, epoch, 0, steps),
        images_per_s=totals[-1].item() / max(sums["seconds"], 1e-9),
        seconds=sums["seconds"],
    )
    if dd.main:
        row.update(validate(model, x_val))
        history.append(row)
        codes = encode_means(model, x_val)
        ckpt.save_latents(run_dir, epoch + 1, codes)
        _log_tensorboard(writer, model, x_val, codes, row)
        _save(run_dir, model, optimizer, epoch + 1, 0, None, history)
    if dd.world > 1:
        dist.barrier()
    return row


def _save(
    run_dir: Path,
    model: VAE,
    optimizer: torch.optim.Optimizer,
    epoch: int,
    step: int,
    partial: dict[str, float] | None,
    history: list[dict[str, Any]],
) -> None:
    """One checkpoint: committed by the training state's rename (it holds everything), then the
    weights and metrics that users read, each file atomically."""
    rng = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        rng["cuda"] = torch.cuda.get_rng_state()
    extra = {"epoch": epoch, "step": step, "partial": partial}
    ckpt.save_training_state(run_dir, optimizer, extra, rng, model, history)
    _save_readable(run_dir, model, epoch, step, history)


def _save_readable(run_dir: Path, model: VAE, epoch: int, step: int, history: list[dict[str, Any]]) -> None:
    """The weights and metrics users read, as the training state has them."""
    ckpt.save_weights(model, run_dir, {"epoch": str(epoch), "step": str(step)})
    ckpt.write_metrics(run_dir, history)


def _restore(
    run_dir: Path, model: VAE, optimizer: torch.optim.Optimizer, model_cfg: ModelConfig, cfg: TrainConfig, dd: _Dist
) -> tuple[_Position, list[dict[str, Any]]]:
    """Load the last checkpoint of ``run_dir`` into model and optimiser: where to go on, and the history."""
    saved = ckpt.read_config(run_dir)
    if saved["model"] != model_cfg.to_dict():
        raise ConfigError(f"{run_dir}: the saved model config differs from the one asked for; resume with the same")
    if saved.get("train", {}).get("optimizer", cfg.optimizer) != cfg.optimizer:
        raise ConfigError(f"{run_dir} was trained with {saved['train']['optimizer']}; resume with the same optimizer")
    state = ckpt.load_training_state(run_dir)
    state.restore_model(model, run_dir)
    optimizer.load_state_dict(state.optimizer)
    if dd.world == 1:
        torch.set_rng_state(state.rng["torch"])
        if "cuda" in state.rng and torch.cuda.is_available():
            torch.cuda.set_rng_state(state.rng["cuda"])
    else:  # each process had its own stream; only rank 0's was saved, derive the others from it
        torch.manual_seed(cfg.seed + dd.rank + 7919 * int(state.extra["epoch"]))
    if dd.main:
        saved["train"] = cfg.to_dict()  # e.g. more --epochs than before
        ckpt.save_config(run_dir, saved)
    history = ckpt.read_metrics(run_dir) if state.history is None else state.history
    if dd.main and state.history is not None:  # mend a save cut between its files
        _save_readable(run_dir, model, int(state.extra["epoch"]), int(state.extra["step"]), history)
    partial = state.extra.get("partial") or _Position.empty_sums()
    return _Position(int(state.extra["epoch"]), int(state.extra["step"]), partial), history


def _tensorboard(run_dir: Path, start_epoch: int):
    from torch.utils.tensorboard import SummaryWriter

    # purge_step drops events a crashed run logged after its last checkpoint.
    return SummaryWriter(log_dir=str(run_dir), purge_step=start_epoch + 1 if start_epoch else None)


def _log_tensorboard(writer, model: VAE, x_val: torch.Tensor, codes: np.ndarray, row: dict[str, Any]) -> None:
    """Scalars for every loss term and the KL weight; reconstructions, samples, latent scatter."""
    from .plots import grid_image, latent_scatter_figure

    e = row["epoch"]
    for key in ("loss", "recon", "kl", "render", "val_loss", "val_recon", "val_kl", "val_render"):
        if key in row:
            writer.add_scalar(f"loss/{key}", row[key], e)
    writer.add_scalar("kl_weight", row["kl_weight"], e)
    writer.add_scalar("images_per_s", row["images_per_s"], e)
    with torch.no_grad():
        model.eval()
        device = next(model.parameters()).device
        originals = x_val[:16]
        recon = model.decode(model.encode(as_batch(originals))[0]).float().cpu()[:, 0].numpy()
        z = model.sample_codes(32, torch.Generator().manual_seed(e)).to(device)
        samples = model.decode(z).float().cpu()[:, 0].numpy()
        model.train()
    pairs = np.concatenate([originals.cpu().numpy() / 255.0, recon])  # originals row(s), then reconstructions
    writer.add_image(
        "reconstructions", np.asarray(grid_image(pairs, ncols=16, scale=2, invert=True)), e, dataformats="HW"
    )
    writer.add_image("samples", np.asarray(grid_image(samples, ncols=8, scale=2, invert=True)), e, dataformats="HW")
    writer.add_figure("latent_space", latent_scatter_figure(codes, title=f"validation codes after epoch {e}"), e)
    writer.flush()


def _summary_line(row: dict[str, Any], epochs: int) -> str:
    return (
        f"epoch {row['epoch']:>3}/{epochs}  loss {row['loss']:.2f}  recon {row['recon']:.2f}  kl {row['kl']:.3f}"
        f"  kl_w {row['kl_weight']:.2f}  val_loss {row['val_loss']:.2f}  {row['images_per_s']:.0f} img/s"
    )
