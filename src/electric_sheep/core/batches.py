"""What a training step reads: batches of uint8 drawings, in memory or streamed from files, with
their categories and random mirroring."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import torch

from .infer import drawings_tensor
from .model import SIDE, VAE

if TYPE_CHECKING:
    from ..data.sources import DrawingSet

# A class-conditional model sees "no category" for this share of its training drawings, so that it
# also draws and scores without one (the null label of classifier-free guidance, Ho & Salimans 2022).
CATEGORY_DROPOUT = 0.1


UPLOAD_ROWS = 65_536  # drawings copied to a GPU at a time: the host never holds a whole file


def is_streamed(images) -> bool:
    """A set of several files (a DrawingSet), read batch by batch, rather than one array."""
    return hasattr(images, "epoch_order")


def epoch_permutation(n: int, seed: int, epoch: int) -> torch.Tensor:
    """The shuffle of one epoch, a pure function of (seed, epoch): resume rebuilds it exactly."""
    gen = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
    return torch.randperm(n, generator=gen)


def random_flip(x: torch.Tensor) -> torch.Tensor:
    """Each drawing of (B, 1, 28, 28) mirrored left to right with probability 1/2."""
    flipped = torch.rand(len(x), device=x.device) < 0.5
    return torch.where(flipped[:, None, None, None], x.flip(-1), x)


class Streamed:
    """A DrawingSet as training reads it: batches gathered from its files' memory maps as they are
    asked for on a CPU (the set never in the process's memory); on a GPU copied there once, in
    chunks, as uint8."""

    def __init__(self, drawings: DrawingSet, seed: int, balance: bool, device: torch.device) -> None:
        self.drawings, self.seed, self.balance, self.device = drawings, seed, balance, device
        self.on_device = None
        if device.type == "cuda":
            n = len(drawings)
            self.on_device = torch.empty((n, SIDE, SIDE), dtype=torch.uint8, device=device)
            for start in range(0, n, UPLOAD_ROWS):
                part = drawings.take(np.arange(start, min(start + UPLOAD_ROWS, n)))
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


def training_drawings(images: np.ndarray | DrawingSet, limit: int | None, seed: int, balance: bool, device):
    """What training reads batches from: an array goes to the device whole (its first ``limit``);
    a DrawingSet (several files) is streamed (see Streamed)."""
    if is_streamed(images):
        return Streamed(images, seed, balance, device)
    return drawings_tensor(images[:limit]).to(device)


def epoch_order(x_train: torch.Tensor | Streamed, seed: int, epoch: int) -> torch.Tensor:
    """The seeded order in which epoch ``epoch`` visits the training drawings."""
    if isinstance(x_train, Streamed):
        return x_train.order(epoch)
    return epoch_permutation(len(x_train), seed, epoch)


def batch_categories(model: VAE, x_train, idx: torch.Tensor) -> torch.Tensor | None:
    """The categories of a batch for a class-conditional model (None for any other)."""
    if not model.config.categories or not isinstance(x_train, Streamed):
        return None
    y = x_train.categories(idx)
    dropped = torch.rand(len(y), device=y.device) < CATEGORY_DROPOUT
    return torch.where(dropped, torch.full_like(y, len(model.config.categories)), y)
