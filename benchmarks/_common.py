"""Helpers shared by the benchmark scripts (not part of the package)."""

from __future__ import annotations

import platform
from pathlib import Path

import torch

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    return f"{cpu}, {torch.get_num_threads()} torch threads, torch {torch.__version__}"


def data_path(name: str = "aaron_sheep.npz") -> Path:
    path = SHARED / name
    if not path.is_file():
        raise SystemExit(f"benchmark data not found: {path} (the benchmarks read ../shared/data)")
    return path
