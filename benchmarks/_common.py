"""Helpers shared by the benchmark scripts (not part of the package)."""

from __future__ import annotations

import platform
from pathlib import Path

import torch

from electric_sheep.runtime import OPT_OUT, keep_freed_memory

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
