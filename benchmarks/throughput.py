"""Training throughput of the seed and default presets, measured in the same run.

Each preset trains on the same first N Aaron sheep with its own batch size and optimiser, through
the real training loop (`electric_sheep.train.train`), and we report the images/s it logs (the
optimiser steps only, validation excluded). The default preset is repeated and its median kept,
because one pass over N images takes it about a second.

    python benchmarks/throughput.py [--images 2000] [--repeats 3]
    python benchmarks/throughput.py --busy    # the default preset, alone and beside a CPU-bound process

With ``--busy`` the default preset trains with one thread (its default) and with all cores, each
on an idle machine and while another process keeps one core busy, alternated, and the script
prints what share of its idle speed each keeps.
"""

from __future__ import annotations

import argparse
import multiprocessing
import statistics
import tempfile

import torch
from _common import data_path, machine

from electric_sheep.data import load_drawings
from electric_sheep.model import ModelConfig, build_model, count_parameters
from electric_sheep.train import make_train_config, train


def images_per_s(preset: str, images, val, n: int, threads: int | None = None) -> float:
    # KL weight 1 throughout: one epoch would never reach it otherwise (a warning); the cost is the same.
    cfg = make_train_config(preset, epochs=1, limit=n, val_limit=64, kl_schedule="constant", threads=threads)
    with tempfile.TemporaryDirectory() as run_dir:
        history = train(images, val, ModelConfig(preset=preset), cfg, run_dir, progress=False, log=lambda s: None)
    return history[-1]["images_per_s"]


def _spin() -> None:
    while True:
        pass


def busy_table(train_set, val, n: int, repeats: int) -> None:
    """Images/s of the default preset per thread setting, idle and beside one CPU-bound process."""
    runs: dict[tuple[int, bool], list[float]] = {}
    for _ in range(repeats):
        for busy in (False, True):
            hog = multiprocessing.Process(target=_spin, daemon=True) if busy else None
            if hog:
                hog.start()
            try:
                for threads in (1, 0):
                    runs.setdefault((threads, busy), []).append(images_per_s("default", train_set, val, n, threads))
            finally:
                if hog:
                    hog.terminate()
                    hog.join()
    print(f"{'threads':>16} {'idle':>10} {'busy':>10}  busy / idle")
    for threads in (1, 0):
        idle, busy = (statistics.median(runs[(threads, b)]) for b in (False, True))
        name = "1 (default)" if threads == 1 else f"{torch.get_num_threads()} (all cores)"
        print(f"{name:>16} {idle:10.0f} {busy:10.0f}  {busy / idle:10.0%}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=2000, help="training images per measurement")
    parser.add_argument("--repeats", type=int, default=3, help="measurements of the default preset")
    parser.add_argument("--busy", action="store_true", help="idle against one other CPU-bound process")
    args = parser.parse_args()
    drawings = load_drawings(data_path())
    train_set, val = drawings.split("train"), drawings.split("valid")
    print(f"machine: {machine()}")
    print(f"data: first {args.images} of {len(train_set)} Aaron sheep (train split)")
    if args.busy:
        busy_table(train_set, val, args.images, args.repeats)
        return
    results = {}
    for preset in ("seed", "default"):
        cfg = make_train_config(preset)
        runs = [
            images_per_s(preset, train_set, val, args.images) for _ in range(1 if preset == "seed" else args.repeats)
        ]
        results[preset] = statistics.median(runs)
        params = count_parameters(build_model(ModelConfig(preset=preset)))
        print(
            f"{preset:>8}: {results[preset]:8.0f} images/s  (batch {cfg.batch_size}, {cfg.optimizer}, "
            f"{params:,} parameters; runs: {', '.join(f'{r:.0f}' for r in runs)})"
        )
    print(f"   ratio: default / seed = {results['default'] / results['seed']:.1f}x")


if __name__ == "__main__":
    main()
