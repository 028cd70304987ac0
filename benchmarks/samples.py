"""Sample quality: do the model's new drawings look drawn, and like sheep?

A small CNN is trained (once, then cached) to tell the five Google bitmap categories of
../shared/data/quickdraw/bitmap apart (sheep, cat, dog, rabbit, duck; train split of each). In the
features of its last hidden layer, 1,000 new drawings of each model are compared with the real
sheep: FID and KID of 500 of them against one half of the real sheep, beside the floor of the other
half against the same half; the share the classifier calls "sheep" (beside the share of held-out
real sheep it calls sheep); the share of grey pixels (neither ink nor paper); and the held-out
IWAE NLL on the sheep test split (the built-in model's split).

    python benchmarks/samples.py                         # the built-in model
    python benchmarks/samples.py runs/a runs/b           # and any run folders
    python benchmarks/samples.py --train seed,default    # and the presets, trained on the sheep
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import time
from pathlib import Path

import numpy as np
import torch
from _common import SHARED, machine
from safetensors.torch import load_file, save_file
from torch import nn

from electric_sheep.analysis.evaluate import evaluate_model
from electric_sheep.analysis.generate import draw
from electric_sheep.analysis.quality import frechet_distance, grey_share, kernel_distance
from electric_sheep.core.model import make_model_config
from electric_sheep.core.train_config import default_epochs, make_train_config
from electric_sheep.data.drawings import data_fingerprint, default_cache_dir, load_drawings
from electric_sheep.runs.checkpoint import builtin_run_dir, load_model
from electric_sheep.runs.training import train

CATEGORIES = ("sheep", "cat", "dog", "rabbit", "duck")
BITMAPS = SHARED / "quickdraw" / "bitmap"
NEW = 1000  # new drawings per model
HALF = 500  # drawings per side of FID and KID
CLASSIFIER_EPOCHS = 8
CLASSIFIER_VERSION = "v1"  # part of the cache key: change it when the network or its training changes


class Classifier(nn.Module):
    """Two conv blocks and a 128-wide hidden layer whose activations are the features."""

    def __init__(self, classes: int = len(CATEGORIES)) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(1, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),  # (B, 32, 14, 14)
            nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),  # (B, 64, 7, 7)
            nn.Flatten(), nn.Linear(64 * 7 * 7, 128), nn.ReLU(),  # (B, 128): the features
        )  # fmt: skip
        self.head = nn.Linear(128, classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


def as_input(images: np.ndarray) -> torch.Tensor:
    """uint8 (0-255) or float (0-1) drawings (N, 28, 28) -> (N, 1, 28, 28) float in [0, 1]."""
    x = torch.as_tensor(np.asarray(images, np.float32))
    return (x / 255.0 if np.asarray(images).dtype == np.uint8 else x).unsqueeze(1)


def splits() -> dict[str, dict[str, np.ndarray]]:
    """Each category's train and test drawings (the library's seeded 80/10/10 split, seed 0)."""
    out = {}
    for name in CATEGORIES:
        drawings = load_drawings(BITMAPS / f"{name}.npy", seed=0)
        out[name] = {split: drawings.split(split) for split in ("train", "test")}
    return out


def classifier(data: dict[str, dict[str, np.ndarray]]) -> Classifier:
    """The classifier, from the cache when trained before on the same files."""
    key = hashlib.sha256(
        (CLASSIFIER_VERSION + "".join(data_fingerprint(BITMAPS / f"{c}.npy") for c in CATEGORIES)).encode()
    ).hexdigest()[:16]
    cached = default_cache_dir() / "benchmarks" / f"classifier-{key}.safetensors"
    model = Classifier()
    if cached.is_file():
        model.load_state_dict(load_file(str(cached)))
        return model.eval()
    torch.manual_seed(0)
    x = as_input(np.concatenate([data[c]["train"] for c in CATEGORIES]))
    y = torch.cat([torch.full((len(data[c]["train"]),), i) for i, c in enumerate(CATEGORIES)])
    optimiser = torch.optim.Adam(model.parameters(), lr=1e-3)
    for _ in range(CLASSIFIER_EPOCHS):
        for idx in torch.randperm(len(x)).split(64):
            loss = nn.functional.cross_entropy(model(x[idx]), y[idx])
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
    cached.parent.mkdir(parents=True, exist_ok=True)
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(cached))
    return model.eval()


@torch.no_grad()
def judged(net: Classifier, images: np.ndarray) -> tuple[np.ndarray, float]:
    """Features (N, 128) and the share called sheep."""
    x = as_input(images)
    feats = net.features(x)
    return feats.numpy(), float((net.head(feats).argmax(dim=1) == 0).float().mean())


@torch.no_grad()
def held_out_accuracy(net: Classifier, data: dict[str, dict[str, np.ndarray]]) -> float:
    hits = [(net(as_input(data[c]["test"])).argmax(dim=1) == i).float() for i, c in enumerate(CATEGORIES)]
    return float(torch.cat(hits).mean())


def row(name: str, images: np.ndarray, net: Classifier, real_feats: np.ndarray, nll: float | None) -> str:
    feats, sheep = judged(net, images)
    fid, kid = frechet_distance(feats[:HALF], real_feats), kernel_distance(feats[:HALF], real_feats)
    nll_text = f"{nll:8.1f}" if nll is not None else f"{'':>8}"
    return f"{name:<34} {fid:8.1f} {kid:8.3f} {grey_share(images):8.1%} {sheep:8.1%} {nll_text}"


def trained(preset: str, epochs: int | None, data: dict[str, dict[str, np.ndarray]]) -> Path:
    """A run of ``preset`` trained on the sheep's train split as `sheep train` would (cached by its
    settings)."""
    cfg = make_train_config(preset, epochs=epochs, val_limit=None)
    if epochs is None:
        cfg = dataclasses.replace(cfg, epochs=default_epochs(preset, cfg, len(data["sheep"]["train"])))
    model_cfg = make_model_config(preset)
    settings = json.dumps([model_cfg.to_dict(), cfg.to_dict()], sort_keys=True).encode()
    run_dir = default_cache_dir() / "benchmarks" / "runs" / f"{preset}-{hashlib.sha256(settings).hexdigest()[:12]}"
    if not (run_dir / "model.safetensors").is_file():
        sheep = load_drawings(BITMAPS / "sheep.npy", seed=0)
        started = time.perf_counter()
        train(sheep.split("train"), sheep.split("valid"), model_cfg, cfg, run_dir, log=lambda s: None)
        print(f"trained {preset} for {cfg.epochs} epochs in {time.perf_counter() - started:.0f} s: {run_dir}")
    return run_dir


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("runs", nargs="*", type=Path, help="run folders to measure beside the built-in model")
    parser.add_argument("--train", default="", help="presets to train on the sheep first, e.g. seed,default")
    parser.add_argument("--epochs", type=int, default=None, help="their epochs (default: each preset's)")
    parser.add_argument("--k", type=int, default=1000, help="importance samples of the held-out NLL")
    args = parser.parse_args()
    print(f"machine: {machine()}")
    data = splits()
    net = classifier(data)
    pool = np.random.default_rng(0).permutation(np.load(BITMAPS / "sheep.npy").reshape(-1, 28, 28))
    real_a, real_b = pool[:HALF], pool[HALF : 2 * HALF]
    feats_a, _ = judged(net, real_a)
    called = judged(net, data["sheep"]["test"])[1]
    right = held_out_accuracy(net, data)
    print(f"classifier: {right:.1%} of held-out drawings right; held-out sheep called sheep {called:.1%}")
    header = f"{'':<34} {'FID':>8} {'KID':>8} {'grey':>8} {'sheep':>8} {'NLL':>8}"
    print(header + "\n" + "-" * len(header))
    print(row("real sheep, one half vs the other", real_b, net, feats_a, None))
    print(row("real cats, for scale", data["cat"]["train"][:NEW], net, feats_a, None))
    runs = {"built-in model": builtin_run_dir(), **{str(r): r for r in args.runs}}
    runs.update({f"{p} preset": trained(p, args.epochs, data) for p in filter(None, args.train.split(","))})
    for name, run_dir in runs.items():
        model = load_model(run_dir)
        nll = evaluate_model(model, data["sheep"]["test"], k=args.k)["iwae_nll"]
        print(row(name, draw(model, NEW, seed=0), net, feats_a, nll))


if __name__ == "__main__":
    main()
