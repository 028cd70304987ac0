"""A seeded 64-bit hash of each row of an array: what tells copies of a drawing apart from other
drawings, and what makes samples and randomness depend on a drawing's content, not its place."""

from __future__ import annotations

import numpy as np


def row_hashes(rows: np.ndarray, seed: int = 0) -> np.ndarray:
    """(N,) uint64: a seeded hash of each row's bytes (its 64-bit words times seeded odd numbers,
    summed wrapping at 2^64). Equal rows hash alike; two others alike once in about 2^64 pairs."""
    if not len(rows):
        return np.zeros(0, np.uint64)
    raw = np.ascontiguousarray(rows).reshape(len(rows), -1).view(np.uint8)
    if raw.shape[1] % 8:
        raw = np.pad(raw, ((0, 0), (0, -raw.shape[1] % 8)))
    words = raw.view(np.uint64)
    factors = np.random.default_rng(seed).integers(1, 2**63, size=words.shape[1], dtype=np.uint64) | np.uint64(1)
    return words @ factors
