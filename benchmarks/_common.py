"""Helpers shared by the benchmark scripts (not part of the package)."""

from __future__ import annotations

import platform
import threading
from collections.abc import Callable, Iterable
from pathlib import Path

import numpy as np
import torch

from electric_sheep.core.runtime import OPT_OUT, keep_freed_memory
from electric_sheep.data.drawings import default_cache_dir
from electric_sheep.data.raster import RasterConfig, render_many

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    # Calling it here applies the settings as the library would (idempotent); set OPT_OUT=0 to compare.
    malloc = (
        "freed memory kept (glibc mallopt)"
        if keep_freed_memory()
        else f"system malloc defaults ({OPT_OUT}=0 or not glibc)"
    )
    return f"{cpu}, {torch.get_num_threads()} torch threads, torch {torch.__version__}, {malloc}"


def data_path(name: str = "aaron_sheep.npz") -> Path:
    path = SHARED / name
    if not path.is_file():
        raise SystemExit(f"benchmark data not found: {path} (the benchmarks read ../shared/data)")
    return path


def rasterised(name: str, drawings: Callable[[], Iterable[list[np.ndarray]]]) -> np.ndarray:
    """(n, 28, 28) uint8: the stroke drawings of ``drawings()`` rasterised as the raw Quick, Draw!
    drawings are, cached in the benchmarks' cache folder by ``name`` and the rendering's key."""
    cache = default_cache_dir() / "benchmarks" / f"{name}-{RasterConfig().cache_key()}.npy"
    if cache.exists():
        return np.load(cache)
    images = render_many(drawings())
    cache.parent.mkdir(parents=True, exist_ok=True)
    np.save(cache, images)
    return images


class Sampled:
    """Values of ``read()`` sampled in a thread every ``every_s`` seconds while the block runs
    (once more at its end), in ``samples``."""

    def __init__(self, read: Callable[[], float], every_s: float) -> None:
        self.read, self.every_s, self.samples, self._stop = read, every_s, [], threading.Event()

    def _sample(self) -> None:
        while not self._stop.wait(self.every_s):
            self.samples.append(self.read())

    def __enter__(self) -> Sampled:
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self.samples.append(self.read())
