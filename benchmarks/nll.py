"""Held-out test NLL of the seed and default presets after the same training budget.

Both presets see the same number of training images (EPOCHS passes over the 7,400 Aaron sheep)
with their own architecture, loss, optimiser and batch size. Because 2-3 epochs are too few for
the seed's schedule (KL weight 0 until epoch 12), both use the per-step linear KL ramp from 0 to
1 over the first half of the budget. Then each is scored on the 300 test sheep with the same
evaluator: negative ELBO and IWAE NLL (k samples), nats per drawing, binarised pixels.

    python benchmarks/nll.py [--epochs 2] [--k 100]
"""

from __future__ import annotations

import argparse
import tempfile
import time

from _common import data_path, machine

from electric_sheep.analysis.evaluate import evaluate_model
from electric_sheep.core.model import ModelConfig
from electric_sheep.core.train_config import make_train_config
from electric_sheep.data.drawings import load_drawings
from electric_sheep.runs.checkpoint import load_model
from electric_sheep.runs.training import train


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--k", type=int, default=100, help="importance samples for the IWAE bound")
    args = parser.parse_args()
    drawings = load_drawings(data_path())
    train_set, val, test = drawings.split("train"), drawings.split("valid"), drawings.split("test")
    print(f"machine: {machine()}")
    print(f"budget: {args.epochs} epochs x {len(train_set)} Aaron sheep each; test: {len(test)} sheep, k = {args.k}")
    rows = {}
    for preset in ("seed", "default"):
        cfg = make_train_config(
            preset,
            epochs=args.epochs,
            kl_schedule="linear",
            kl_start=0,
            kl_steep=max(1, args.epochs // 2),
            val_limit=300,
        )
        with tempfile.TemporaryDirectory() as run_dir:
            t0 = time.perf_counter()
            train(train_set, val, ModelConfig(preset=preset), cfg, run_dir, progress=False, log=lambda s: None)
            seconds = time.perf_counter() - t0
            result = evaluate_model(load_model(run_dir), test, k=args.k)
        rows[preset] = result
        print(
            f"{preset:>8}: test NLL (IWAE, k={args.k}) {result['iwae_nll']:7.2f} nats  "
            f"negative ELBO {result['nelbo']:7.2f}  MSE {result['mse']:.4f}  KL {result['kl']:6.2f}  "
            f"trained in {seconds:.0f} s"
        )
    better = rows["default"]["iwae_nll"] < rows["seed"]["iwae_nll"]
    print(
        f"default - seed: {rows['default']['iwae_nll'] - rows['seed']['iwae_nll']:+.2f} nats "
        f"({'default better' if better else 'seed better'})"
    )


if __name__ == "__main__":
    main()
