"""Shared fixtures: small data files the tests write themselves, and the real shared data."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import numpy as np
import pytest

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"


@pytest.fixture(scope="session")
def _shared_rasters(tmp_path_factory) -> Path:
    """One raster cache for the whole run: rasterised files are keyed by path, size and mtime, so
    the read-only real data is rasterised once, and each test's own files keep their own entries."""
    return tmp_path_factory.mktemp("rasters")


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory, monkeypatch, _shared_rasters):
    """Every test gets its own cache folder (downloads, benchmarks): tests never touch the user's
    ~/.cache; only the raster cache inside it is the run's."""
    cache = tmp_path_factory.mktemp("cache")
    (cache / "raster").symlink_to(_shared_rasters, target_is_directory=True)
    monkeypatch.setenv("ELECTRIC_SHEEP_CACHE", str(cache))


@pytest.fixture
def shared() -> Path:
    """The real Quick, Draw! data beside the project, or skip."""
    if not (SHARED / "aaron_sheep.npz").is_file():
        pytest.skip(f"real data not found at {SHARED} (the project reads it from ../shared/data)")
    return SHARED


@pytest.fixture(scope="session")
def run(tmp_path_factory):
    """A small default-preset run on synthetic rectangles, with the post's annealing to w = 1:
    trained in memory by ``fit``, keeping only what the tests read (the checkpoint and the codes
    of every epoch), no TensorBoard."""
    from test_train import blobs

    from electric_sheep.core.devices import seed_process
    from electric_sheep.core.model import ModelConfig, build_model
    from electric_sheep.core.train_config import make_train_config
    from electric_sheep.core.trainer import fit
    from electric_sheep.data.drawings import load_drawings
    from electric_sheep.runs.callbacks import Checkpoint, LatentSnapshots

    root = tmp_path_factory.mktemp("run")
    data = root / "blobs.npy"
    np.save(data, blobs(800).reshape(800, 784))
    drawings = load_drawings(data)
    # 30 epochs: after 10 the narrow default model's codes can still sit off the prior (one seed
    # left a mean of -1.2, another collapsed to a spread of 0.01); after 30 all three seeds tried
    # were within 0.15 of mean 0.
    # No free bits: the statistics below are those of a KL pulled all the way to the prior.
    cfg = make_train_config(
        "default", epochs=30, kl_start=0, kl_steep=2, batch_size=32, val_limit=64, free_bits=0.0, flip=False
    )
    info = {"source": str(data), "format": "bitmap", "split_seed": 0}
    run_dir = root / "run"
    seed_process(cfg.seed)
    model = build_model(ModelConfig())
    keep = [LatentSnapshots(run_dir), Checkpoint(run_dir, info, False, lambda line: None)]
    fit(model, drawings.split("train"), drawings.split("valid"), cfg, keep)
    return run_dir


def square_strokes(size: float = 100.0, offset: float = 0.0) -> list[list[list[float]]]:
    """A square drawn as one stroke plus a diagonal, as Quick, Draw! [[xs], [ys]] strokes."""
    o, s = offset, size
    return [[[o, o + s, o + s, o, o], [o, o, o + s, o + s, o]], [[o, o + s], [o, o + s]]]


def write_ndjson(path: Path, n: int = 10, raw: bool = False, bad_lines: int = 0) -> Path:
    lines = []
    for i in range(n):
        strokes = square_strokes(50 + 10 * i, offset=i)
        if raw:  # raw adds timings as a third list
            strokes = [[xs, ys, list(range(len(xs)))] for xs, ys in strokes]
        rec = {"word": "square", "countrycode": "GB", "recognized": i % 2 == 0, "key_id": str(i), "drawing": strokes}
        lines.append(json.dumps(rec))
    for _ in range(bad_lines):
        lines.insert(2, '{"word": "broken", "drawing": [[[1, 2], [3')
    path.write_text("\n".join(lines) + "\n")
    return path


def write_bin(path: Path, n: int = 6) -> Path:
    out = bytearray()
    for i in range(n):
        strokes = [
            (np.array([10, 200, 200, 10, 10]), np.array([10, 10, 200, 200, 10])),
            (np.array([10, 200]), np.array([10, 200])),
        ]
        out += struct.pack("<Q2sbIH", 1000 + i, b"US", i % 2, 1490000000, len(strokes))
        for xs, ys in strokes:
            out += struct.pack("<H", len(xs)) + bytes(xs.astype(np.uint8)) + bytes(ys.astype(np.uint8))
    path.write_bytes(bytes(out))
    return path


def write_sketchrnn(path: Path, sizes=(12, 3, 3)) -> Path:
    def drawing(i):
        # A square as stroke-3 offsets: (dx, dy, pen_lifted), the last point lifts the pen.
        s = 20 + i
        return np.array([[0, 0, 0], [s, 0, 0], [0, s, 0], [-s, 0, 0], [0, -s, 1]], dtype=np.int16)

    parts = {
        name: np.array([drawing(i) for i in range(k)] + [np.zeros((1, 3), np.int16)], dtype=object)[:-1]
        for name, k in zip(("train", "valid", "test"), sizes, strict=True)
    }
    with open(path, "wb") as f:  # a file object: np.savez would add ".npz" to a bare name
        np.savez(f, **parts)
    return path


def write_bitmap(path: Path, n: int = 20, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    np.save(path, rng.integers(0, 256, size=(n, 784), dtype=np.uint8))
    return path
