"""Batch inference speed: anomaly scores (encode + decode) of the 7,400 training Aaron sheep.

Trains each model briefly (the weights do not change the speed): the default preset (8 and 24
filters, a dense layer of 128, a pixel head), the same without its pixel head, that widened to the
earlier default's 32, 64 and 256 (`--channels 32,64 --hidden 256`), and the seed; then times
`electric_sheep.anomaly.scores` over the whole training split, best of several repeats.

    python benchmarks/scoring.py [--repeats 5]
"""

from __future__ import annotations

import argparse
import tempfile
import time

from _common import data_path, machine

from electric_sheep.anomaly import scores
from electric_sheep.checkpoint import load_model
from electric_sheep.data import load_drawings
from electric_sheep.latent import encode
from electric_sheep.model import make_model_config
from electric_sheep.train import make_train_config, train


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
    args = parser.parse_args()
    drawings = load_drawings(data_path())
    images = drawings.split("train")
    print(f"machine: {machine()}")
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
        with tempfile.TemporaryDirectory() as run_dir:
            # a briefly trained model: scoring speed does not depend on the weights (KL on: no warning)
            cfg = make_train_config(preset, epochs=1, limit=256, val_limit=32, kl_schedule="constant")
            train(
                images,
                drawings.split("valid"),
                model_cfg,
                cfg,
                run_dir,
                progress=False,
                log=lambda s: None,
            )
            model = load_model(run_dir)
        n = len(images) if preset == "default" else 1000  # the seed is ~100x slower: time fewer
        subset = images[:n]
        for what, fn in (
            ("mse score", lambda m=model, x=subset: scores(m, x, "mse")),
            ("elbo-ink score", lambda m=model, x=subset: scores(m, x, "elbo-ink")),
            ("features score", lambda m=model, x=subset: scores(m, x, "features")),
            ("encode (z_mean)", lambda m=model, x=subset: encode(m, x)),
        ):
            seconds = best_time(fn, args.repeats if preset == "default" else 1)
            print(f"{name:>9} {what:<24} {n} drawings in {seconds:.3f} s = {n / seconds:,.0f} drawings/s")


if __name__ == "__main__":
    main()
