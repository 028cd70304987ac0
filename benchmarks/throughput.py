"""Training throughput of the seed and default presets, measured in the same run.

Each preset trains on the same first N Aaron sheep with its own batch size and optimiser, through
the real training loop (`electric_sheep.train.train`), and we report the images/s it logs (the
optimiser steps only, validation excluded). The default preset is repeated and its median kept,
because one pass over N images takes it about a second.

    python benchmarks/throughput.py [--images 2000] [--repeats 3]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile

from _common import data_path, machine

from electric_sheep.data import load_drawings
from electric_sheep.model import ModelConfig, build_model, count_parameters
from electric_sheep.train import make_train_config, train


def images_per_s(preset: str, images, val, n: int) -> float:
    # KL weight 1 throughout: one epoch would never reach it otherwise (a warning); the cost is the same.
    cfg = make_train_config(preset, epochs=1, limit=n, val_limit=64, kl_schedule="constant")
    with tempfile.TemporaryDirectory() as run_dir:
        history = train(images, val, ModelConfig(preset=preset), cfg, run_dir, progress=False, log=lambda s: None)
    return history[-1]["images_per_s"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=2000, help="training images per measurement")
    parser.add_argument("--repeats", type=int, default=3, help="measurements of the default preset")
    args = parser.parse_args()
    drawings = load_drawings(data_path())
    train_set, val = drawings.split("train"), drawings.split("valid")
    print(f"machine: {machine()}")
    print(f"data: first {args.images} of {len(train_set)} Aaron sheep (train split)")
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
