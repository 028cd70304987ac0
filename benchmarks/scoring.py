"""Batch inference speed: anomaly scores (encode + decode) of the 7,400 training Aaron sheep.

Trains each model briefly (the weights do not change the speed): the default preset (8 and 24
filters, a dense layer of 128, a pixel head), the same without its pixel head, that widened to the
earlier default's 32, 64 and 256 (`--channels 32,64 --hidden 256`), and the seed; then times
`electric_sheep.analysis.anomaly.scores` over the whole training split, best of several repeats.
`--synthetic N` then scores N drawings (the Aaron sheep tiled, each shifted by up to 2 pixels,
written once to a memory-mapped temporary file) with the default score, and reports the time and
the process's peak resident memory. `--device cuda` runs the models on a GPU (the descriptors and
neighbour searches stay on the CPU, as in `sheep anomalies --device cuda`); without one it says so
and exits 0.

    python benchmarks/scoring.py [--repeats 5] [--synthetic 1000000] [--skip-models] [--device cuda]
"""

from __future__ import annotations

import argparse
import resource
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from _common import data_path, machine

from electric_sheep.analysis.anomaly import DEFAULT_SCORE, scores
from electric_sheep.analysis.latent import encode
from electric_sheep.core.model import make_model_config
from electric_sheep.core.train_config import make_train_config
from electric_sheep.data.drawings import load_drawings
from electric_sheep.runs.checkpoint import load_model
from electric_sheep.runs.training import train


def best_time(fn, repeats: int) -> float:
    fn()  # warm-up: first calls allocate
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--synthetic", type=int, default=0, help="also score this many tiled drawings")
    parser.add_argument("--skip-models", action="store_true", help="only the --synthetic run")
    parser.add_argument("--device", default="cpu", help="where the models run (cpu, cuda, ...)")
    args = parser.parse_args()
    print(f"machine: {machine()}")
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        print("no CUDA GPU here: nothing to measure (the CPU figures: run without --device)")
        return
    drawings = load_drawings(data_path())
    images, valid = drawings.split("train"), drawings.split("valid")
    if not args.skip_models:
        compare_models(images, valid, args.repeats, args.device)
    if args.synthetic:
        score_synthetic(images, valid, args.synthetic, args.device)


def brief_model(images: np.ndarray, valid: np.ndarray, model_cfg, device: str = "cpu"):
    """A briefly trained model on ``device``: scoring speed does not depend on the weights (KL on: no
    warning)."""
    with tempfile.TemporaryDirectory() as run_dir:
        cfg = make_train_config(model_cfg.preset, epochs=1, limit=256, val_limit=32, kl_schedule="constant")
        train(images, valid, model_cfg, cfg, run_dir, progress=False, log=lambda s: None)
        return load_model(run_dir, device)


def tiled(images: np.ndarray, n: int, path: Path, seed: int = 0) -> np.ndarray:
    """n drawings: ``images`` repeated, each copy rolled up to 2 pixels each way, as a .npy memmap."""
    rng = np.random.default_rng(seed)
    out = np.lib.format.open_memmap(path, mode="w+", dtype=np.uint8, shape=(n, 28, 28))
    for start in range(0, n, len(images)):
        block = images[: min(len(images), n - start)]
        dy, dx = rng.integers(-2, 3, size=2)
        out[start : start + len(block)] = np.roll(block, (int(dy), int(dx)), axis=(1, 2))
    out.flush()
    return np.load(path, mmap_mode="r")


def score_synthetic(images: np.ndarray, valid: np.ndarray, n: int, device: str) -> None:
    model = brief_model(images, valid, make_model_config("default"), device)
    with tempfile.TemporaryDirectory() as tmp:
        many = tiled(images, n, Path(tmp) / "tiled.npy")
        t0 = time.perf_counter()
        values = scores(model, many, DEFAULT_SCORE)
        seconds = time.perf_counter() - t0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB -> MiB
    print(
        f"default score ({DEFAULT_SCORE}) of {n:,} tiled drawings: {seconds:.0f} s = {n / seconds:,.0f} drawings/s, "
        f"peak resident memory {peak:,.0f} MiB (including the memory-mapped file's pages), {len(values):,} scores"
    )


def compare_models(images: np.ndarray, valid: np.ndarray, repeats: int, device: str) -> None:
    # the default preset, it without its pixel head (the default until 2026-12-02), the same
    # widened (docs/performance.md, "Width"), and the seed
    models = {
        "default": make_model_config("default"),
        "no head": make_model_config("default", pixel_head=0),
        "32,64/256": make_model_config("default", pixel_head=0, channels=(32, 64), hidden=256),
        "seed": make_model_config("seed"),
    }
    for name, model_cfg in models.items():
        preset = model_cfg.preset
        model = brief_model(images, valid, model_cfg, device)
        n = len(images) if preset == "default" else 1000  # the seed is ~100x slower: time fewer
        subset = images[:n]
        for what, fn in (
            ("combined score (default)", lambda m=model, x=subset: scores(m, x, "combined")),
            ("mse score", lambda m=model, x=subset: scores(m, x, "mse")),
            ("elbo-ink score", lambda m=model, x=subset: scores(m, x, "elbo-ink")),
            ("features score", lambda m=model, x=subset: scores(m, x, "features")),
            ("encode (z_mean)", lambda m=model, x=subset: encode(m, x)),
        ):
            seconds = best_time(fn, repeats if preset == "default" else 1)
            print(f"{name:>9} {what:<24} {n} drawings in {seconds:.3f} s = {n / seconds:,.0f} drawings/s")


if __name__ == "__main__":
    main()
