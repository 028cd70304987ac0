"""Training settings: one dataclass, the presets' values, what a device and a set's size change,
and the KL weight at each step (see :mod:`.schedules`)."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import asdict, dataclass, fields
from typing import Any, Literal

import torch

from ..errors import ConfigError
from .fieldtypes import check_field_types
from .presets import PRESET_TRAINING
from .schedules import SCHEDULES

OptimizerName = Literal["adam", "rmsprop"]


@dataclass(frozen=True)
class TrainConfig:
    """Training settings. Defaults are the ``default`` preset's; see :data:`PRESET_TRAINING`."""

    epochs: int = 20
    # Per process under torchrun. 32 rather than 128: the narrow default model learns more from
    # more, smaller steps per epoch (docs/performance.md, "Width").
    batch_size: int = 32
    lr: float = 2e-3
    optimizer: OptimizerName = "adam"
    kl_schedule: str = "epoch"  # a name in schedules.SCHEDULES; "epoch" = the post's callback
    kl_start: int = 2
    kl_steep: int = 5
    kl_cycles: int = 4  # cyclical schedule only
    free_bits: float = 0.0  # minimum KL (nats) per latent dim; 0 = off
    # Share of the pixel head's context flipped at random while training: a head that learns to
    # doubt the pixels before it follows the decoder's plan when drawing, where those pixels are its
    # own, imperfect samples (docs/samples.md). 0: the drawings as they are.
    context_noise: float = 0.0
    limit: int | None = None  # train on the first N drawings of the train split
    val_limit: int | None = 2000  # validate on at most this many drawings (speed)
    seed: int = 0
    device: str | None = None  # None: CUDA when present, else CPU
    # CPU threads while training (0: torch's default, all cores). One thread is somewhat slower on
    # an idle machine but keeps its speed when another program takes a core, where threads that
    # wait for each other at every operation lose most of theirs (docs/performance.md).
    threads: int = 1
    # Mirror each drawing left to right at random (a sheep facing the other way is a sheep). False
    # here for runs saved before it existed; the default preset turns it on. Not for writing.
    flip: bool = False
    # On a GPU, small batches leave it idle between kernel launches: train with batches of up to
    # this many drawings there (0: batch_size everywhere); see for_device().
    gpu_batch_size: int = 1024
    compile: bool = False  # torch.compile the loss on a GPU
    balance: bool = False  # several files: every category equally often in an epoch

    def __post_init__(self) -> None:
        check_field_types(self)
        if self.epochs < 1 or self.batch_size < 2:
            raise ConfigError("epochs must be >= 1 and batch_size >= 2 (batch norm needs two drawings)")
        if self.kl_schedule not in SCHEDULES:
            raise ConfigError(f"unknown kl_schedule {self.kl_schedule!r}; choose one of {', '.join(SCHEDULES)}")
        if self.optimizer not in ("adam", "rmsprop"):
            raise ConfigError(f"unknown optimizer {self.optimizer!r}")
        if not 0 <= self.context_noise < 0.5:
            raise ConfigError(f"context_noise must be in [0, 0.5), got {self.context_noise}")
        if min(self.kl_start, self.kl_steep, self.free_bits, self.threads, self.gpu_batch_size) < 0 or self.lr <= 0:
            raise ConfigError("kl_start, kl_steep, free_bits, threads and gpu_batch_size must be >= 0 and lr > 0")
        if self.kl_cycles < 1 or not 0 <= self.seed < 2**32:
            raise ConfigError(f"kl_cycles must be >= 1 and seed from 0 to 2**32 - 1, got {self.kl_cycles}, {self.seed}")
        if (self.limit is not None and self.limit < 2) or (self.val_limit is not None and self.val_limit < 1):
            raise ConfigError(
                f"limit must be >= 2 and val_limit >= 1 (or null: all), got {self.limit}, {self.val_limit}"
            )

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


# The default preset trains at least this many steps: on a small set (the 800 Google sheep) its 20
# epochs would stop long before its validation NLL does.
MIN_STEPS = 2000


def default_epochs(preset: str, cfg: TrainConfig, n_train: int) -> int:
    """The epochs a run trains when none are asked for: ``cfg.epochs``, and for the default preset
    more where that is fewer than MIN_STEPS optimiser steps on ``n_train`` drawings (the seed
    trains the post's 30)."""
    if preset != "default":
        return cfg.epochs
    return max(cfg.epochs, math.ceil(MIN_STEPS / steps_per_epoch(n_train, cfg.batch_size)))


# On a GPU an epoch keeps at least this many steps: larger batches on a small set would leave too
# few updates for the same number of epochs.
MIN_GPU_STEPS_PER_EPOCH = 100


def for_device(cfg: TrainConfig, device: torch.device, n_train: int) -> TrainConfig:
    """The settings a run trains with on ``device``: on CUDA, batches of up to ``gpu_batch_size``
    (as many as keep MIN_GPU_STEPS_PER_EPOCH steps per epoch) and the learning rate scaled by the
    square root of the batch ratio, Adam's rule (Malladi et al. 2022). The result is what config.json
    records (gpu_batch_size 0), so a resumed run keeps it on any device."""
    if device.type != "cuda" or not cfg.gpu_batch_size:
        return cfg
    batch = max(cfg.batch_size, min(cfg.gpu_batch_size, n_train // MIN_GPU_STEPS_PER_EPOCH))
    lr = cfg.lr * math.sqrt(batch / cfg.batch_size)
    return dataclasses.replace(cfg, batch_size=batch, lr=lr, gpu_batch_size=0)


def make_train_config(preset: str, **overrides: Any) -> TrainConfig:
    """The preset's training settings with ``overrides`` on top (None = keep the preset's).

    Unknown keys are rejected, so a typo in a script fails loudly instead of being ignored.
    """
    known = {f.name for f in fields(TrainConfig)}
    unknown = sorted(set(overrides) - known)
    if unknown:
        raise ConfigError(f"unknown training option(s): {', '.join(unknown)}")
    if preset not in PRESET_TRAINING:
        raise ConfigError(f"unknown preset {preset!r}; choose one of {', '.join(PRESET_TRAINING)}")
    values = {**PRESET_TRAINING[preset], **{k: v for k, v in overrides.items() if v is not None}}
    if overrides.get("batch_size") is not None and overrides.get("gpu_batch_size") is None:
        values["gpu_batch_size"] = 0  # a batch size asked for is kept on a GPU too
    return TrainConfig(**values)


def kl_weight(cfg: TrainConfig, epoch: int, step: int = 0, steps_per_epoch: int = 1) -> float:
    """The KL weight used at ``step`` of 0-based ``epoch`` (see :mod:`.schedules`)."""
    return SCHEDULES[cfg.kl_schedule].weight(cfg, epoch, step, steps_per_epoch)


def kl_shortfall_warning(cfg: TrainConfig, steps_per_epoch: int = 1) -> str | None:
    """A message when the KL weight has not reached 1 by the last step, else None.

    Until it does, the loss does not pull the codes towards the prior N(0, I), so drawings decoded
    from prior samples (``sheep draw``) may not look like the data: a common surprise on a short
    trial run (the default schedule starts after epoch 2 and needs 8 epochs to reach 1).
    """
    final = kl_weight(cfg, cfg.epochs - 1, steps_per_epoch - 1, steps_per_epoch)
    if final >= 1.0:
        return None
    return (
        f"the KL weight only reaches {final:.2f} (of 1) by the last of {cfg.epochs} epochs "
        f"(--kl-start {cfg.kl_start}, --kl-steep {cfg.kl_steep}): the codes will not follow the prior, "
        "so drawings sampled by `sheep draw` may not look like the data; train longer or lower "
        "--kl-start/--kl-steep"
    )


def steps_per_epoch(n: int, batch_size: int, world: int = 1) -> int:
    """Optimiser steps per epoch for n drawings (a last batch of one drawing is dropped)."""
    n_local = n // world
    return max(n_local // batch_size + (1 if n_local % batch_size >= 2 else 0), 1)
