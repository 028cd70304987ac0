"""KL annealing schedules: the weight of the KL term at each point of training, one entry each.

A schedule reads ``kl_start``, ``kl_steep``, ``kl_cycles`` and ``epochs`` from the training
settings and gives the weight at ``step`` of 0-based ``epoch``. No torch: the command line offers
these names without loading a model.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

CYCLE_RISE = 0.5  # share of each cycle over which the cyclical weight rises (Fu et al.'s R)


def _epoch(cfg: Any, epoch: int, step: int, steps_per_epoch: int) -> float:
    """The post's Keras callback: at the end of each epoch i, when i > kl_start, the weight for the
    following epochs becomes min((i - kl_start) / kl_steep, 1); it starts at 0."""
    last_finished = epoch - 1
    if last_finished <= cfg.kl_start:
        return 0.0
    return 1.0 if cfg.kl_steep == 0 else min((last_finished - cfg.kl_start) / cfg.kl_steep, 1.0)


def _linear(cfg: Any, epoch: int, step: int, steps_per_epoch: int) -> float:
    """The same ramp, but per step (fractional epochs), from kl_start over kl_steep."""
    t = epoch + step / max(steps_per_epoch, 1)
    if cfg.kl_steep == 0:
        return 1.0 if t >= cfg.kl_start else 0.0
    return float(min(max((t - cfg.kl_start) / cfg.kl_steep, 0.0), 1.0))


def _cyclical(cfg: Any, epoch: int, step: int, steps_per_epoch: int) -> float:
    """kl_cycles ramps from 0 to 1 over the run, each rising during its first half, then staying at
    1 (Fu et al. 2019, "Cyclical Annealing Schedule")."""
    total = cfg.epochs * max(steps_per_epoch, 1)
    period = total / max(cfg.kl_cycles, 1)
    tau = ((epoch * steps_per_epoch + step) % period) / period
    return float(min(tau / CYCLE_RISE, 1.0))


def _constant(cfg: Any, epoch: int, step: int, steps_per_epoch: int) -> float:
    return 1.0


@dataclass(frozen=True)
class Schedule:
    weight: Callable[[Any, int, int, int], float]  # (training settings, epoch, step, steps per epoch) -> w
    purpose: str  # a few words for --help


SCHEDULES: dict[str, Schedule] = {
    "epoch": Schedule(_epoch, "the post's callback, per epoch (default)"),
    "linear": Schedule(_linear, "the same ramp per step"),
    "cyclical": Schedule(_cyclical, "kl_cycles ramps over the run"),
    "constant": Schedule(_constant, "always 1"),
}
