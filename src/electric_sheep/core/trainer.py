"""The training loop: ``fit(model, train, valid, config, callbacks) -> model``. It knows nothing
about sheep or files: the model computes its own loss terms (``model.loss``), and what a run keeps
(checkpoints, TensorBoard, progress) is done by callbacks (:mod:`.callbacks`). Inside: batching,
the KL weight schedule, the device, several processes (DistributedDataParallel under torchrun),
a stop before a NaN touches the weights, and Ctrl-C handed to the callbacks.
"""

from __future__ import annotations

import contextlib
import math
import signal
import threading
import time
import warnings
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
import torch.distributed as dist
from torch import nn

from ..errors import SheepError, SheepWarning, TrainingDiverged
from .batches import batch_categories, epoch_order, is_streamed, random_flip, training_drawings
from .devices import Processes, cpu_threads, join_processes, leave_processes, pick_device
from .infer import as_batch, check_drawings, drawings_tensor
from .layers import training_layout
from .model import VAE
from .prior import MAX_CODES, posterior_samples
from .train_config import TrainConfig, for_device, kl_shortfall_warning, kl_weight, steps_per_epoch

if TYPE_CHECKING:
    from ..data.sources import DrawingSet

TERMS = ("loss", "recon", "kl", "render")  # the loss terms a step returns, summed over an epoch


def empty_sums() -> dict[str, float]:
    return {**dict.fromkeys(TERMS, 0.0), "n": 0, "seconds": 0.0}


@dataclass
class FitState:
    """Where training stands, for the callbacks: the epoch (0-based), the steps done in it and its
    running sums of the loss terms (so Ctrl-C can keep a half-done epoch), the metrics so far. A
    callback that resumes a run sets them, and the model's and optimiser's weights, in ``on_start``."""

    model: VAE
    optimizer: torch.optim.Optimizer
    config: TrainConfig
    steps: int  # optimiser steps per epoch
    procs: Processes
    x_val: torch.Tensor
    epoch: int = 0
    step: int = 0
    sums: dict[str, float] = field(default_factory=empty_sums)
    history: list[dict[str, Any]] = field(default_factory=list)
    last_loss: float = math.nan  # of the latest step
    # after the last step counted: the random state, and the running statistics (batch norm's) as
    # pairs (the model's tensor, its copy)
    rng: dict[str, torch.Tensor] = field(default_factory=dict)
    running: list[tuple[torch.Tensor, torch.Tensor]] = field(default_factory=list)


class Callback:
    """What a training run calls as it goes; each hook does nothing unless overridden. Every
    process calls them; ``state.procs.main`` says whether this one is the first."""

    def on_start(self, state: FitState) -> None:
        """Before the first step: a resuming callback restores the state here."""

    def on_epoch_start(self, state: FitState) -> None: ...

    def on_step(self, state: FitState) -> None:
        """After every optimiser step (``state.step`` counts it already)."""

    def on_epoch_end(self, state: FitState, row: dict[str, Any]) -> None:
        """After an epoch is validated (``row``: its metrics, already in ``state.history``)."""

    def on_interrupt(self, state: FitState) -> None:
        """On Ctrl-C, before it propagates."""

    def on_end(self, state: FitState) -> None:
        """Last, however training ended."""


class OnStep(Callback):
    """Calls ``fn(epoch, step)`` after every optimiser step (0-based both)."""

    def __init__(self, fn) -> None:
        self.fn = fn

    def on_step(self, state: FitState) -> None:
        self.fn(state.epoch, state.step - 1)


def build_optimizer(model: nn.Module, cfg: TrainConfig) -> torch.optim.Optimizer:
    if cfg.optimizer == "rmsprop":
        # Keras' RMSprop: rho = 0.9, epsilon = 1e-7 (PyTorch's defaults are 0.99 and 1e-8).
        return torch.optim.RMSprop(model.parameters(), lr=cfg.lr, alpha=0.9, eps=1e-7)
    # One fused update of every parameter instead of a dozen small operations per tensor
    # (docs/performance.md); CPU and CUDA have the fused kernel.
    fused = next(model.parameters()).device.type in ("cpu", "cuda")
    return torch.optim.Adam(model.parameters(), lr=cfg.lr, fused=fused)


class LossModule(nn.Module):
    """Wraps ``model.loss`` as a forward pass, so DistributedDataParallel sees the whole graph."""

    def __init__(self, model: VAE) -> None:
        super().__init__()
        self.model = model

    def forward(
        self, x: torch.Tensor, w: float, free_bits: float, context_noise: float, y: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, ...]:
        return tuple(self.model.loss(x, w, free_bits, y, context_noise))


def fit(
    model: VAE,
    train_images: np.ndarray | DrawingSet,
    val_images: np.ndarray,
    cfg: TrainConfig,
    callbacks: tuple[Callback, ...] | list[Callback] = (),
) -> VAE:
    """Train ``model`` on uint8 (N, 28, 28) drawings (or a DrawingSet of several files), validating
    on ``val_images`` after every epoch, and return it (on the device it trained on, in train
    mode). Seed torch before building the model for a reproducible run (:func:`.devices.seed_process`)."""
    if not is_streamed(train_images):  # a DrawingSet's files were checked as they loaded
        check_drawings(train_images)
    check_drawings(val_images)
    if not len(val_images):
        raise SheepError("no validation drawings: give at least one (the training drawings will do)")
    device = pick_device(cfg.device)
    n_train = len(train_images) if is_streamed(train_images) else len(train_images[: cfg.limit])
    cfg = for_device(cfg, device, n_train)
    procs = join_processes(device)
    try:
        with cpu_threads(cfg.threads if device.type == "cpu" else 0), _layout_warning_hidden(procs):
            x_train = training_drawings(train_images, cfg.limit, cfg.seed, cfg.balance, device)
            if len(x_train) < 2 * procs.world:  # batch norm (seed preset) needs two drawings per batch
                world = f" ({2 * procs.world} for {procs.world} processes)" if procs.world > 1 else ""
                raise SheepError(f"only {len(x_train)} training drawings: need at least 2 per process{world}")
            model = model.to(device)
            training_layout(model)
            x_val = drawings_tensor(val_images[: cfg.val_limit]).to(device)
            state = FitState(
                model,
                build_optimizer(model, cfg),
                cfg,
                steps_per_epoch(len(x_train), cfg.batch_size, procs.world),
                procs,
                x_val,
            )
            _fit(state, x_train, list(callbacks))
    finally:
        leave_processes(procs)
    return model


@contextlib.contextmanager
def _layout_warning_hidden(procs: Processes):
    """Under torchrun, DistributedDataParallel warns once that a gradient's strides differ from its
    bucket's: the pixel head's masked weight (C, 1, 9, 9), whose one input channel makes both strides
    the same order in memory; nothing to act on (docs/performance.md)."""
    if procs.world == 1:  # catch_warnings would reset which warnings were shown once already
        yield
        return
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Grad strides do not match bucket view strides")
        yield


def _fit(state: FitState, x_train, callbacks: list[Callback]) -> None:
    """The epochs, from where ``on_start`` left the state."""
    for cb in callbacks:
        cb.on_start(state)
    state.running = [(b, b.clone()) for b in _running_statistics(state.model)]
    _mark_step(state, next(state.model.parameters()).device)
    shortfall = kl_shortfall_warning(state.config, state.steps)
    if shortfall and state.procs.main and state.epoch < state.config.epochs:
        warnings.warn(shortfall, SheepWarning, stacklevel=3)
    step_fn = _step_module(state.model, state.procs, state.config.compile)
    state.model.train()
    row = None  # the metrics of an epoch whose end is under way
    try:
        while state.epoch < state.config.epochs:
            for cb in callbacks:
                cb.on_epoch_start(state)
            _run_epoch(state, step_fn, x_train, callbacks)
            if state.procs.main and state.model.prior is not None:  # before the callbacks save it
                fit_prior(state.model, x_train, state.config.seed + state.epoch)
            row = _finish_epoch(state)
            for cb in callbacks:
                cb.on_epoch_end(state, row)
            if state.procs.world > 1:
                dist.barrier()
            state.epoch, state.step, state.sums, row = state.epoch + 1, 0, empty_sums(), None
    except KeyboardInterrupt:
        _back_to_last_step(state)
        if state.history and state.history[-1] is row:  # its end is done again on resume, not counted twice
            state.history.pop()
        for cb in callbacks:
            cb.on_interrupt(state)
        raise
    finally:
        for cb in callbacks:
            cb.on_end(state)


def _step_module(model: VAE, procs: Processes, compile_loss: bool = False) -> nn.Module:
    """The loss as a module; wrapped in DistributedDataParallel under torchrun."""
    device = next(model.parameters()).device
    step_fn: nn.Module = LossModule(model)
    if procs.world > 1:
        step_fn = nn.parallel.DistributedDataParallel(
            step_fn, device_ids=[device.index] if device.type == "cuda" else None
        )
    if compile_loss and device.type == "cuda":
        step_fn = torch.compile(step_fn)
    return step_fn


def _run_epoch(state: FitState, step_fn: nn.Module, x_train, callbacks: list[Callback]) -> None:
    """The optimiser steps of epoch ``state.epoch`` from step ``state.step`` on."""
    cfg, procs = state.config, state.procs
    device = next(state.model.parameters()).device
    n_local = len(x_train) // procs.world  # every rank runs the same number of steps
    order = epoch_order(x_train, cfg.seed, state.epoch)[procs.rank :: procs.world][:n_local].to(device)
    t0 = time.perf_counter()
    for step in range(state.step, state.steps):
        if procs.world > 1:
            _seed_step(cfg.seed, procs.rank, state.epoch, step, device)
        w = kl_weight(cfg, state.epoch, step, state.steps)
        idx = order[step * cfg.batch_size : (step + 1) * cfg.batch_size]
        total, values = _forward(state, step_fn, x_train, idx, w)
        _check_finite(values[0], device, state, step)  # before the step touches the weights
        state.optimizer.zero_grad(set_to_none=True)
        total.backward()
        with _signals_held():  # the weights and the step's count change together
            state.optimizer.step()
            for key, value in zip(TERMS, values, strict=True):
                state.sums[key] += value * len(idx)
            state.sums["n"] += len(idx)
            state.step, state.last_loss = step + 1, values[0]  # before the callbacks: a Ctrl-C there keeps this step
            _mark_step(state, device)
        for cb in callbacks:
            cb.on_step(state)
    state.sums["seconds"] += time.perf_counter() - t0


def _seed_step(seed: int, rank: int, epoch: int, step: int, device: torch.device) -> None:
    """Under torchrun every process seeds each step from the run's seed, its rank, the epoch and
    the step: a resumed run draws what the uninterrupted one drew, though only rank 0 saves."""
    value = (((seed * _MIX + rank) * _MIX + epoch) * _MIX + step) % 2**63
    torch.default_generator.manual_seed(value)  # the CPU's alone: torch.manual_seed visits every backend
    if device.type == "cuda":
        with torch.cuda.device(device):
            torch.cuda.manual_seed(value)


_MIX = 1_000_003  # a prime larger than any rank, epoch or step count: distinct steps get distinct seeds


def _running_statistics(model: nn.Module) -> list[torch.Tensor]:
    """The buffers a training step changes besides the weights: normalisation layers' running
    statistics (the seed's batch norm; the default preset has none)."""
    tracking = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._NormBase) and m.track_running_stats]
    return [b for m in tracking for b in m.buffers(recurse=False)]


def _mark_step(state: FitState, device: torch.device) -> None:
    """Keep what a step changes besides the weights, as it stands after the last step counted."""
    state.rng = random_state(device)
    for live, kept in state.running:
        kept.copy_(live)


def _back_to_last_step(state: FitState) -> None:
    """Undo what an interrupted step changed besides the weights (its random draws, the running
    statistics of its batch), so that a checkpoint saved now resumes into the same step, run alike."""
    set_random_state(state.rng, next(state.model.parameters()).device)
    for live, kept in state.running:
        live.copy_(kept)


def random_state(device: torch.device) -> dict[str, torch.Tensor]:
    """The random state a training step draws from: torch's CPU generator, and the GPU's there."""
    rng = {"torch": torch.get_rng_state()}
    if device.type == "cuda":
        rng["cuda"] = torch.cuda.get_rng_state(device)
    return rng


def set_random_state(rng: dict[str, torch.Tensor], device: torch.device) -> None:
    """Put back what :func:`random_state` took (the GPU's part only when training there)."""
    torch.set_rng_state(rng["torch"])
    if "cuda" in rng and device.type == "cuda":
        torch.cuda.set_rng_state(rng["cuda"], device)


@contextlib.contextmanager
def _signals_held():
    """Ctrl-C and SIGTERM wait until the block is done (they are delivered as it ends), so that
    a checkpoint saved on either never holds an optimiser update half made or not yet counted.
    Their Python handlers are swapped for ones that only note them: a signal mask would hold them
    off the main thread alone, and the kernel hands a process's signal to any thread that does not
    block it (torch's workers), whose note the main thread then acts on at once."""
    held = (signal.SIGINT, signal.SIGTERM)
    previous = {s: signal.getsignal(s) for s in held}
    if threading.current_thread() is not threading.main_thread() or None in previous.values():
        yield  # a worker thread (handlers are the main thread's), or handlers set outside Python
        return
    caught: list[int] = []
    for s in held:
        signal.signal(s, lambda signum, frame: caught.append(signum))
    try:
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
        if caught:
            signal.raise_signal(caught[0])  # to the handler in place again: KeyboardInterrupt, or SIGTERM's


def _forward(
    state: FitState, step_fn: nn.Module, x_train, idx: torch.Tensor, w: float
) -> tuple[torch.Tensor, list[float]]:
    """The loss of the drawings ``idx`` (to differentiate) and its terms as numbers."""
    device = next(state.model.parameters()).device
    autocast = torch.autocast("cuda", dtype=torch.bfloat16) if device.type == "cuda" else contextlib.nullcontext()
    xb = as_batch(x_train[idx])
    if state.config.flip:
        xb = random_flip(xb)
    yb = batch_categories(state.model, x_train, idx)
    with autocast:
        total, *rest = step_fn(xb, w, state.config.free_bits, state.config.context_noise, yb)
    values = torch.stack([torch.as_tensor(v, device=device).float() for v in (total, *rest)])
    return total, values.detach().tolist()  # the step's one wait for the device


def _check_finite(total: float, device: torch.device, state: FitState, step: int) -> None:
    """Stop on NaN/inf; the processes agree."""
    ok = math.isfinite(total)
    if state.procs.world > 1:
        flag = torch.tensor([float(ok)], device=device)
        dist.all_reduce(flag, op=dist.ReduceOp.MIN)
        ok = flag.item() == 1
    if not ok:
        raise TrainingDiverged(f"loss became {total} at epoch {state.epoch + 1}, step {step}; training stopped")


def _finish_epoch(state: FitState) -> dict[str, Any]:
    """The epoch's metrics row, summed over the processes and validated; appended to the history."""
    totals = torch.tensor([state.sums.get(key, 0.0) for key in (*TERMS, "n")], dtype=torch.float64)
    if state.procs.world > 1:  # NCCL reduces tensors on the GPU only
        totals = totals.to(state.x_val.device)
        dist.all_reduce(totals)
        totals = totals.cpu()
    n = max(totals[-1].item(), 1.0)
    row: dict[str, Any] = {"epoch": state.epoch + 1, **{key: totals[i].item() / n for i, key in enumerate(TERMS)}}
    if state.model.renderer is None:
        del row["render"]
    row.update(
        kl_weight=kl_weight(state.config, state.epoch, 0, state.steps),
        images_per_s=totals[-1].item() / max(state.sums["seconds"], 1e-9),
        seconds=state.sums["seconds"],
    )
    if state.procs.main:
        row.update(validate(state.model, state.x_val))
        state.history.append(row)
    return row


def fit_prior(model: VAE, images_u8, seed: int, batch_size: int = 1024) -> int:
    """Fit ``model.prior`` to one posterior sample of each of (at most MAX_CODES) drawings; returns
    the number of components chosen. Its own generators leave training's random stream as it was."""
    chosen = torch.randperm(len(images_u8), generator=torch.Generator().manual_seed(seed))[:MAX_CODES]
    was_training = model.training
    model.eval()
    # A class-conditional model's codes hold what its category does not say: encode each with its own.
    labelled = bool(model.config.categories) and hasattr(images_u8, "categories")
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
    sums = dict.fromkeys(TERMS, 0.0)
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
