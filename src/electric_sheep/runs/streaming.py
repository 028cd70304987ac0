"""Per-drawing results of a whole file, computed batch by batch into a .npy on disk, resumable.

``stream_rows`` fills ``target`` (N rows) by calling ``compute(start, stop)`` on consecutive
chunks of the drawings. The rows go into ``target.partial.npy``, a memory map, and how far it got
into ``target.partial.RANK.json`` after every chunk, so that a run killed halfway and started again
with the same job continues where it stopped. Only when every row is written does the file take
its name (with ``target.job.json`` beside it, saying what it holds). Under torchrun the ranks share
the chunks.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from tqdm import tqdm

from ..errors import ConfigError, DataError, OutputError
from .fileio import NPY_ERRORS, clear_odd, ensure_dir, read_text, write_json

# Drawings per chunk, flushed and recorded as one step: the most a kill can lose, and how often the
# progress bar moves; a step's own cost (a flush, a small JSON) is small beside it.
CHUNK = 16_384
CHUNK_ENV = "ELECTRIC_SHEEP_CHUNK"  # overrides CHUNK (smaller: finer resumption, more shards)


def chunk_size() -> int:
    value = os.environ.get(CHUNK_ENV, str(CHUNK))
    if not value.isdigit() or int(value) < 1:
        raise ConfigError(f"{CHUNK_ENV} must be a number of drawings >= 1, got {value!r}")
    return int(value)


@dataclass(frozen=True)
class Shard:
    """This process's part of the work under torchrun: chunk j is computed by rank j % world."""

    rank: int = 0
    world: int = 1

    @classmethod
    def from_env(cls) -> Shard:
        """RANK and WORLD_SIZE as torchrun sets them (one process: rank 0 of 1)."""
        return cls(int(os.environ.get("RANK", "0")), int(os.environ.get("WORLD_SIZE", "1")))

    @property
    def main(self) -> bool:
        return self.rank == 0

    def barrier(self) -> None:
        if self.world > 1:
            import torch.distributed as dist

            if not dist.is_initialized():
                dist.init_process_group("gloo")  # CPU tensors only: a barrier, no data
            dist.barrier()


def stream_rows(
    n: int,
    compute: Callable[[int, int], np.ndarray],
    target: Path | None,
    *,
    width: int,
    job: dict,
    desc: str,
    progress: bool = True,
    shard: Shard = Shard(),
) -> np.ndarray:
    """(n, width) rows, ``compute(start, stop)`` giving rows start to stop, on disk at ``target``
    as float32 (returned as a read-only memory map); ``target`` None: in memory, not resumable.
    ``job`` says what is computed (data, model, split ...): a partial file of another job is
    started afresh, never mixed in, and a finished one is reused. Under torchrun (``shard``) every
    rank computes its own chunks into the one file, and all return it once it is whole."""
    if target is None:  # in memory: one call, as the caller would have made it
        return np.asarray(compute(0, n)).reshape(n, width)
    target = Path(target)
    ensure_dir(target.parent)
    job = {**job, "n": n, "width": width, "world": shard.world, "chunk": chunk_size()}
    finished, rows_path, header = (target.with_name(target.stem + suffix) for suffix in _SUFFIXES)
    state = target.with_name(f"{target.stem}.partial.{shard.rank}.json")
    for path in (finished, rows_path, header) if shard.main else ():
        clear_odd(path)
    clear_odd(state)
    if same_job(finished, job) and (done := _rows(target, n, width)) is not None:
        return done
    if shard.main and not (same_job(header, job) and _rows(rows_path, n, width) is not None):  # start afresh
        for old in target.parent.glob(f"{target.stem}.partial.*.json"):
            old.unlink()
        _allocate_rows(rows_path, n, width)
        write_json(header, job)
    shard.barrier()
    _fill(rows_path, compute, state, job, shard, desc, progress and shard.main)
    shard.barrier()
    if shard.main:  # recorded before named: a kill in between leaves the rows found, not computed again
        target.unlink(missing_ok=True)  # another job's rows, which the record must not vouch for
        write_json(finished, job)
        os.replace(rows_path, target)
        for old in [header, *target.parent.glob(f"{target.stem}.partial.*.json")]:
            old.unlink(missing_ok=True)
    shard.barrier()
    return np.load(target, mmap_mode="r")


_SUFFIXES = (".job.json", ".partial.npy", ".partial.json")  # finished marker, rows so far, their job


def _fill(rows_path: Path, compute, state: Path, job: dict, shard: Shard, desc: str, progress: bool) -> None:
    """Compute this rank's chunks not yet done into the partial file, recording each in ``state``."""
    rows = np.load(rows_path, mmap_mode="r+")
    n, width = rows.shape
    chunk = chunk_size()
    mine = list(range(shard.rank * chunk, n, shard.world * chunk))
    done = _chunks_done(state, job)
    left = sum(min(chunk, n - start) for start in mine[done:])
    with tqdm(total=left, desc=desc, unit="drawing", disable=not progress, leave=False) as bar:
        for k, start in enumerate(mine[done:], start=done + 1):
            stop = min(start + chunk, n)
            rows[start:stop] = np.asarray(compute(start, stop), np.float32).reshape(stop - start, width)
            rows.flush()
            write_json(state, {**job, "done": k})
            bar.update(stop - start)


def _allocate_rows(path: Path, n: int, width: int) -> None:
    """A new (n, width) float32 .npy with its blocks reserved on disk now: a memory map written
    into a file the disk has no room for kills the process (SIGBUS) instead of raising an error."""
    try:
        path.unlink(missing_ok=True)  # a link planted there is removed, never written through
        np.lib.format.open_memmap(path, mode="w+", dtype=np.float32, shape=(n, width)).flush()
        if hasattr(os, "posix_fallocate"):  # not on Windows
            with open(path, "r+b") as f:
                os.posix_fallocate(f.fileno(), 0, os.fstat(f.fileno()).st_size)
    except OSError as e:  # e.g. no space left on the device
        path.unlink(missing_ok=True)
        raise OutputError(path, f"cannot be written ({e.strerror or e})") from None


def _rows(path: Path, n: int, width: int) -> np.ndarray | None:
    """The (n, width) float32 rows in ``path`` (read-only memory map), or None when it holds none,
    is damaged or is not a regular file (a link or a pipe, not written here): such a file is
    computed again."""
    if path.is_symlink() or not path.is_file():
        return None
    try:
        rows = np.load(path, mmap_mode="r", allow_pickle=False)
    except NPY_ERRORS:
        return None
    return rows if rows.shape == (n, width) and rows.dtype == np.float32 else None


def same_job(path: Path, job: dict) -> bool:
    """Whether ``path`` holds ``job`` as JSON (False when it is absent or unreadable)."""
    try:
        return json.loads(read_text(path)) == job
    except (OSError, ValueError, DataError):
        return False


def _chunks_done(state: Path, job: dict) -> int:
    """This rank's chunks already written by an interrupted run of the same job."""
    try:
        recorded = json.loads(read_text(state))
    except (OSError, ValueError, DataError):
        return 0
    done = recorded.pop("done", 0)
    return done if recorded == job and isinstance(done, int) and done >= 0 else 0


@dataclass(frozen=True)
class Store:
    """Where per-drawing columns go: a folder (streamed to disk, resumable) or, with ``folder``
    None, memory."""

    folder: Path | None = None
    job: dict = field(default_factory=dict)
    progress: bool = False
    shard: Shard = Shard()

    def column(
        self, name: str, n: int, compute: Callable[[int, int], np.ndarray], width: int = 1, desc: str | None = None
    ) -> np.ndarray:
        """(n,) or (n, width) values of ``compute(start, stop)``, kept as ``folder/name.npy``
        (then a float32 memory map: the columns of millions of drawings take no memory of their
        own) or in memory as ``compute`` gave them; ``desc``: what the progress bar says
        (default: the name)."""
        target = None if self.folder is None else Path(self.folder) / f"{name}.npy"
        rows = stream_rows(
            n, compute, target, width=width, job=self.job, desc=desc or name, progress=self.progress, shard=self.shard
        )
        return rows[:, 0] if width == 1 else rows
