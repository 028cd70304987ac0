"""Where training runs: the device, the CPU threads, the processes of a torchrun launch."""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

from ..errors import ConfigError


@dataclass
class Processes:
    """This process's rank among ``world`` processes (one of one without torchrun)."""

    rank: int = 0
    world: int = 1

    @property
    def main(self) -> bool:
        """Only the first process reports and writes."""
        return self.rank == 0


def join_processes(device: torch.device) -> Processes:
    """Join the process group when launched by torchrun (WORLD_SIZE > 1): gloo on CPU, NCCL on GPU."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return Processes()
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return Processes(dist.get_rank(), dist.get_world_size())


def leave_processes(procs: Processes) -> None:
    if procs.world > 1 and dist.is_initialized():
        dist.destroy_process_group()


def is_main_process() -> bool:
    """True unless this is a non-zero rank under torchrun (only rank 0 prints and writes)."""
    return int(os.environ.get("RANK", "0")) == 0


def seed_process(seed: int) -> None:
    """Seed torch for a reproducible run; under torchrun each process draws its own noise."""
    torch.manual_seed(seed + int(os.environ.get("RANK", "0")))


def pick_device(name: str | None = None) -> torch.device:
    """``name`` (cpu, cuda, cuda:1, mps ...), checked now rather than mid-training; else CUDA if present."""
    if not name:
        if torch.cuda.is_available():
            return torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        return torch.device("cpu")
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


@contextlib.contextmanager
def cpu_threads(n: int):
    """Run the block with ``n`` CPU threads (0: leave the settings), then restore them: torch's
    intra-op threads and the BLAS and OpenMP pools of numpy, scipy and scikit-learn (the prior's
    Gaussian mixtures each epoch), whose threads would otherwise wait on each other on a busy machine."""
    from threadpoolctl import threadpool_limits

    before = torch.get_num_threads()
    if n:
        torch.set_num_threads(n)
    try:
        with threadpool_limits(n or None):
            yield
    finally:
        torch.set_num_threads(before)
