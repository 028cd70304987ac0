"""Training throughput of the seed and default presets, measured in the same run.

Each preset trains on the same first N Aaron sheep with its own batch size and optimiser, through
the real training loop (`electric_sheep.runs.training.train`), and we report the images/s it logs (the
optimiser steps only, validation excluded). The default preset is repeated and its median kept,
because one pass over N images takes it about a second.

    python benchmarks/throughput.py [--images 2000] [--repeats 3]
    python benchmarks/throughput.py --busy    # the default preset, alone and beside a CPU-bound process

Beside images/s it reports time to quality: the held-out NLL (IWAE, test split) the seed preset
has after its first QUALITY_EPOCHS epochs on the Aaron sheep, and the wall-clock seconds of training
(validation and checkpoints included) each preset needs to reach it. The default is evaluated
every EVERY_STEPS steps; the clock stops while it is.
``--skip-quality`` leaves it out (the seed's epochs take about 8 minutes on 2 cores).

With ``--device cuda`` it measures the default preset on the GPU instead: a training set of
GPU_IMAGES drawings (the Aaron sheep tiled), the batch sizes of GPU_BATCHES with the learning rate
scaled as the library scales it, with and without torch.compile, and the GPU's utilisation sampled
while it trains. Without a GPU it says so and exits 0.

With ``--busy`` the default preset trains with one thread (its default) and with all cores, each
on an idle machine and while another process keeps one core busy, alternated, and the script
prints what share of its idle speed each keeps.
"""

from __future__ import annotations

import argparse
import multiprocessing
import statistics
import sys
import tempfile
import time
import warnings

import numpy as np
import torch
from _common import Sampled, data_path, machine

from electric_sheep.analysis.evaluate import evaluate_model
from electric_sheep.core.devices import seed_process
from electric_sheep.core.model import build_model, count_parameters, make_model_config
from electric_sheep.core.train_config import make_train_config
from electric_sheep.core.trainer import OnStep, fit
from electric_sheep.data.drawings import load_drawings
from electric_sheep.errors import SheepWarning
from electric_sheep.runs.checkpoint import load_model
from electric_sheep.runs.training import train

QUALITY_EPOCHS = 3
EVERY_STEPS = 20  # the default preset's evaluations: 640 drawings apart
QUALITY_K = 100  # importance samples of those evaluations
GPU_IMAGES = 500_000
GPU_BATCHES = (1024, 4096, 16384)


def images_per_s(preset: str, images, val, n: int, threads: int | None = None) -> float:
    # KL weight 1 throughout: one epoch would never reach it otherwise (a warning); the cost is the same.
    cfg = make_train_config(preset, epochs=1, limit=n, val_limit=64, kl_schedule="constant", threads=threads)
    with tempfile.TemporaryDirectory() as run_dir:
        history = train(images, val, make_model_config(preset), cfg, run_dir, progress=False, log=lambda s: None)
    return history[-1]["images_per_s"]


class _Clock:
    """Training seconds: runs except while an evaluation is measured."""

    def __init__(self) -> None:
        self.spent, self.since = 0.0, time.perf_counter()

    def pause(self) -> float:
        self.spent += time.perf_counter() - self.since
        return self.spent

    def resume(self) -> None:
        self.since = time.perf_counter()


class _Reached(Exception):
    pass


def seed_quality(train_set, val, test) -> tuple[float, float]:
    """(test NLL, wall-clock seconds of training) of the seed preset after QUALITY_EPOCHS epochs."""
    cfg = make_train_config("seed", epochs=QUALITY_EPOCHS, val_limit=64)
    with tempfile.TemporaryDirectory() as run_dir:
        started = time.perf_counter()
        train(train_set, val, make_model_config("seed"), cfg, run_dir, progress=False, log=lambda s: None)
        seconds = time.perf_counter() - started
        nll = evaluate_model(load_model(run_dir), test, k=QUALITY_K)["iwae_nll"]
    return nll, seconds


def seconds_to_reach(preset: str, target: float, train_set, val, test, max_epochs: int = 20) -> float | None:
    """Training seconds until ``preset``'s test NLL is at most ``target`` (None: not within max_epochs)."""
    seed_process(0)
    model = build_model(make_model_config(preset))
    clock = _Clock()
    reached: list[float] = []

    def check(epoch: int, step: int) -> None:
        if step % EVERY_STEPS:
            return
        seconds = clock.pause()
        with torch.random.fork_rng():  # evaluating must not change the training's random stream
            nll = evaluate_model(model, test, k=QUALITY_K)["iwae_nll"]  # leaves the model in eval mode
        model.train()
        if nll <= target:
            reached.append(seconds)
            raise _Reached
        clock.resume()

    cfg = make_train_config(preset, epochs=max_epochs, val_limit=64)
    try:
        fit(model, train_set, val, cfg, [OnStep(check)])
    except _Reached:
        return reached[0]
    return None


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


def gpu_table(train_set, val) -> None:
    """Images/s of the default preset on CUDA per batch size, with and without torch.compile."""
    if not torch.cuda.is_available():
        print("no CUDA GPU here: nothing to measure (the CPU figures: run without --device)")
        return
    print(f"GPU: {torch.cuda.get_device_name()}")
    images = np.resize(train_set, (GPU_IMAGES, *train_set.shape[1:]))  # tiled
    print(f"data: {len(images):,} drawings (the Aaron sheep tiled), kept on the GPU as uint8")
    print(f"{'batch':>6} {'lr':>8} {'compile':>8} {'images/s':>10} {'GPU busy':>9}")
    for batch in GPU_BATCHES:
        for compiled in (False, True):
            # Two epochs: the first pays for cuDNN's autotuning and the compilation.
            cfg = make_train_config(
                "default", epochs=2, batch_size=batch, gpu_batch_size=0, compile=compiled, val_limit=64,
                kl_schedule="constant", lr=2e-3 * (batch / 32) ** 0.5, device="cuda",
            )  # fmt: skip
            with tempfile.TemporaryDirectory() as run_dir, Sampled(torch.cuda.utilization, 0.2) as busy:
                history = train(images, val, make_model_config("default"), cfg, run_dir, progress=False,
                                log=lambda s: None)  # fmt: skip
            print(f"{batch:6d} {cfg.lr:8.4f} {str(compiled):>8} {history[-1]['images_per_s']:10.0f} "
                  f"{statistics.mean(busy.samples):8.0f}%", flush=True)  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=2000, help="training images per measurement")
    parser.add_argument("--repeats", type=int, default=3, help="measurements of the default preset")
    parser.add_argument("--busy", action="store_true", help="idle against one other CPU-bound process")
    parser.add_argument("--skip-quality", action="store_true", help="images/s only, no time to quality")
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu", help="cuda: the GPU table")
    args = parser.parse_args()
    drawings = load_drawings(data_path())
    train_set, val = drawings.split("train"), drawings.split("valid")
    print(f"machine: {machine()}")
    if args.device == "cuda":
        gpu_table(train_set, val)
        sys.exit(0)
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
        params = count_parameters(build_model(make_model_config(preset)))
        print(
            f"{preset:>8}: {results[preset]:8.0f} images/s  (batch {cfg.batch_size}, {cfg.optimizer}, "
            f"{params:,} parameters; runs: {', '.join(f'{r:.0f}' for r in runs)})"
        )
    print(f"   ratio: default / seed = {results['default'] / results['seed']:.1f}x")
    if not args.skip_quality:
        quality_table(train_set, val, drawings.split("test"))


def quality_table(train_set, val, test) -> None:
    """Time to the seed preset's NLL after its first QUALITY_EPOCHS epochs, for both presets."""
    with warnings.catch_warnings():  # the seed's 3 epochs never turn the KL on, as in the post
        warnings.simplefilter("ignore", SheepWarning)
        target, seed_seconds = seed_quality(train_set, val, test)
    print(f"time to quality: the seed's test NLL after {QUALITY_EPOCHS} epochs is {target:.1f} nats (k = {QUALITY_K})")
    print(f"    seed: {seed_seconds:8.1f} s")
    seconds = seconds_to_reach("default", target, train_set, val, test)
    if seconds is None:
        print(" default: not reached within 20 epochs")
        return
    print(f" default: {seconds:8.1f} s (evaluated every {EVERY_STEPS} steps): {seed_seconds / seconds:.1f}x sooner")


if __name__ == "__main__":
    main()
