"""Anomaly detection on planted drawings: electric-sheep against PyOD's detectors on the same mixture.

Scenarios (like with like, see ../shared/data/README.md):
  cars      real Quick, Draw! cars (raw strokes, 27) among the 7,400 Aaron sheep, both rasterised here
  qd-sheep  a control: real Quick, Draw! *sheep* (raw strokes, 23) among the Aaron sheep, rasterised
            like the cars. Nothing here is an anomaly, so an ideal detector scores 0.5; what it scores
            above that is the difference between the two sources (Quick, Draw!'s 20-second doodles
            against The Sheep Market's), which the cars carry too
  omniglot  Omniglot symbols (10% of the sheep count) among the Aaron sheep
  animals   Google-rendered cats, dogs, rabbits and ducks (10%) among the 1,000 Google-rendered sheep

"Honest" protocol: every detector is fitted on the contaminated mixture itself (no clean training
set), then scores the same mixture; we report AUROC, average precision and precision at k (k = number
planted). electric-sheep trains its default preset on the mixture with trimming
(`electric_sheep.anomaly.train_on_mixture`: a first model, the 20% it scores highest set aside, a
fresh model on the rest) and scores with every score it has; "untrimmed" is the first model alone.
PyOD runs on raw pixels in [0, 1]. "GEOM rotations" is a self-supervised baseline that does not
reconstruct: a classifier learns which of four rotations was applied to each drawing, and a drawing
whose rotation it cannot tell is anomalous (Golan & El-Yaniv 2018, "Deep Anomaly Detection Using
Geometric Transformations"; rotations only, as flipped sheep are still sheep). "PixelCNN ratio" is a
likelihood ratio of two autoregressive models (Ren et al. 2019, "Likelihood Ratios for
Out-of-Distribution Detection"; Schirrmeister et al. 2020, "Understanding Anomaly Detection with
Deep Invertible Networks through Hierarchies of Distributions and Features"): a PixelCNN (van den
Oord et al. 2016) of the mixture, against one of generic strokes, the 30,000 Omniglot training
symbols (the omniglot scenario plants symbols of the test split): a drawing that the generic model
finds likelier than the model of the mixture does is anomalous; "PixelCNN ratio + GEOM" adds the two
detectors' ranks. Last, for scale and not as a competitor: a logistic regression on the pixels that
is given the labels (5-fold cross-validation).

    pip install pyod && python benchmarks/anomaly.py [--scenarios cars qd-sheep omniglot animals] [--seeds 0]
        [--detectors ours geom pixelcnn pyod supervised]
"""

from __future__ import annotations

import argparse
import tempfile
import time
import warnings

import numpy as np
import torch
import torch.nn.functional as F
from _common import SHARED, data_path, machine
from scipy.stats import rankdata
from torch import nn

from electric_sheep.anomaly import SCORES, TRIM, detection_metrics, mix, scores, train_on_mixture
from electric_sheep.checkpoint import load_model
from electric_sheep.data import load_drawings
from electric_sheep.model import ModelConfig, build_model
from electric_sheep.train import as_batch


def scenario(name: str):
    """(sheep uint8, others uint8, fraction, validation sheep) for a scenario."""
    if name in ("cars", "qd-sheep", "omniglot"):
        sheep = load_drawings(data_path("aaron_sheep.npz"))
        if name == "omniglot":
            other = load_drawings(data_path("omniglot.npz")).split("test")
        else:
            raw = "car" if name == "cars" else "sheep"
            other = load_drawings(SHARED / f"quickdraw/raw/{raw}.ndjson").images
        return sheep.split("train"), np.asarray(other), 0.1, sheep.split("valid")
    sheep = load_drawings(SHARED / "quickdraw/bitmap/sheep.npy")
    others = np.concatenate(
        [
            np.asarray(load_drawings(SHARED / f"quickdraw/bitmap/{a}.npy").images)
            for a in ("cat", "dog", "rabbit", "duck")
        ]
    )
    return np.asarray(sheep.images), others, 0.1, sheep.split("valid")


# Latent size and epochs per scenario: 4-D for the 7,400 Aaron sheep, 8-D for the 1,000 Google sheep
# (1-2 points of AUROC better than 2-D in our runs); 30 epochs (60 overfit the 1,100-drawing mixture).
SETTINGS = {"cars": (4, 30), "qd-sheep": (4, 30), "omniglot": (4, 30), "animals": (8, 30)}


def ours(images: np.ndarray, val: np.ndarray, epochs: int, latent_dim: int, trim: float) -> dict[str, np.ndarray]:
    with tempfile.TemporaryDirectory() as run_dir:
        model = train_on_mixture(
            images, val, ModelConfig(latent_dim=latent_dim), run_dir, epochs=epochs, trim=trim,
            progress=False, log=lambda s: None,
        )  # fmt: skip
        out = {f"electric-sheep {kind}": scores(model, images, kind) for kind in SCORES}
        if trim > 0:
            out["untrimmed elbo-ink"] = scores(load_model(f"{run_dir}/stage1"), images, "elbo-ink")
    return out


def pyod_scores(images: np.ndarray, contamination: float) -> dict[str, np.ndarray]:
    from pyod.models.auto_encoder import AutoEncoder
    from pyod.models.iforest import IForest
    from pyod.models.knn import KNN
    from pyod.models.vae import VAE

    x = images.reshape(len(images), -1).astype(np.float32) / 255.0
    detectors = {
        "PyOD AutoEncoder": AutoEncoder(contamination=contamination, epoch_num=20, verbose=0),
        "PyOD VAE": VAE(contamination=contamination, epoch_num=20, verbose=0),
        "PyOD IForest": IForest(contamination=contamination, random_state=0),
        "PyOD KNN": KNN(contamination=contamination),
    }
    out = {}
    for name, det in detectors.items():
        det.fit(x)
        out[name] = np.asarray(det.decision_scores_)
    return out


ROTATIONS = 4  # 0, 90, 180, 270 degrees
GEOM_EPOCHS = 5  # cars AUROC moved by under 0.02 between epochs 1 and 10


def rotate(x: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
    """Rotate each drawing of x (B, 1, 28, 28) by k[i] quarter turns."""
    out = torch.empty_like(x)
    for r in range(ROTATIONS):
        out[k == r] = torch.rot90(x[k == r], r, dims=(2, 3))
    return out


def geom_scores(images: np.ndarray, seed: int = 0, batch: int = 128) -> np.ndarray:
    """GEOM with rotations: mean cross-entropy of the true rotation over the four rotations, (N,)."""
    torch.manual_seed(seed)
    x = as_batch(torch.from_numpy(np.ascontiguousarray(images)))  # (N, 1, 28, 28) in [0, 1]
    cfg = ModelConfig()  # the default preset's encoder up to its dense layer, then a 4-way head
    net = torch.nn.Sequential(*build_model(cfg).encoder[:-1], torch.nn.Linear(cfg.hidden, ROTATIONS))
    opt = torch.optim.Adam(net.parameters(), 1e-3)
    for _ in range(GEOM_EPOCHS):
        for idx in torch.randperm(len(x)).split(batch):
            k = torch.randint(0, ROTATIONS, (len(idx),))
            loss = F.cross_entropy(net(rotate(x[idx], k)), k)
            opt.zero_grad()
            loss.backward()
            opt.step()
    net.eval()
    with torch.inference_mode():
        per_rotation = [
            F.cross_entropy(net(torch.rot90(x, r, dims=(2, 3))), torch.full((len(x),), r), reduction="none")
            for r in range(ROTATIONS)
        ]
    return torch.stack(per_rotation).mean(dim=0).double().numpy()


PIXELCNN_EPOCHS = 8  # on the mixture: cars AUROC 0.93-0.96 after 4 to 16 epochs (two seeds)
BACKGROUND_EPOCHS = 4  # on the 30,000 Omniglot symbols (~95 s an epoch on 2 cores); 2 gave 0.94-0.96 too
PIXELCNN_CHANNELS = 32
PIXELCNN_BLOCKS = 5  # residual 3x3 masked convs after the 7x7 first one: each pixel sees 8 rows up, 8 columns aside


class MaskedConv2d(nn.Conv2d):
    """A convolution that sees only the pixels above and to the left (van den Oord et al. 2016):
    mask "A" (the first layer) hides the centre pixel too, mask "B" lets a pixel see its own features."""

    def __init__(self, c_in: int, c_out: int, k: int, mask: str) -> None:
        super().__init__(c_in, c_out, k, padding=k // 2)
        keep = torch.ones_like(self.weight)  # (c_out, c_in, k, k)
        keep[:, :, k // 2, k // 2 + (mask == "B") :] = 0  # the centre row from the centre (A) or after it (B)
        keep[:, :, k // 2 + 1 :] = 0  # every row below
        self.register_buffer("keep", keep)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(x, self.weight * self.keep, self.bias, padding=self.padding)


class PixelCNN(nn.Module):
    """(B, 1, 28, 28) in [0, 1] -> (B, 1, 28, 28) logits of each pixel given the pixels before it."""

    def __init__(self, ch: int = PIXELCNN_CHANNELS, blocks: int = PIXELCNN_BLOCKS) -> None:
        super().__init__()
        self.first = MaskedConv2d(1, ch, 7, "A")
        self.blocks = nn.ModuleList(MaskedConv2d(ch, ch, 3, "B") for _ in range(blocks))
        self.head = nn.Sequential(nn.ReLU(), nn.Conv2d(ch, ch, 1), nn.ReLU(), nn.Conv2d(ch, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.first(x)
        for block in self.blocks:
            h = h + block(F.relu(h))
        return self.head(h)

    def nll(self, x: torch.Tensor) -> torch.Tensor:
        """Cross-entropy of the intensities under the per-pixel Bernoulli, summed per drawing: (B,),
        the same treatment of grey pixels as the VAE's reconstruction term."""
        return F.binary_cross_entropy_with_logits(self(x), x, reduction="none").flatten(1).sum(dim=1)


def fit_pixelcnn(images: np.ndarray, epochs: int, seed: int = 0, batch: int = 64) -> PixelCNN:
    torch.manual_seed(seed)
    x = as_batch(torch.from_numpy(np.ascontiguousarray(images)))
    net = PixelCNN()
    opt = torch.optim.Adam(net.parameters(), 1e-3)
    for _ in range(epochs):
        for idx in torch.randperm(len(x)).split(batch):
            loss = net.nll(x[idx]).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
    return net.eval()


def pixelcnn_nll(net: PixelCNN, images: np.ndarray, batch: int = 1024) -> np.ndarray:
    x = as_batch(torch.from_numpy(np.ascontiguousarray(images)))
    with torch.inference_mode():
        return torch.cat([net.nll(x[i : i + batch]) for i in range(0, len(x), batch)]).double().numpy()


def pixelcnn_background(seed: int = 0) -> PixelCNN:
    """The generic model of strokes: a PixelCNN of the Omniglot training symbols."""
    symbols = np.asarray(load_drawings(data_path("omniglot.npz")).split("train"))
    return fit_pixelcnn(symbols, BACKGROUND_EPOCHS, seed=seed)


def pixelcnn_ratio_scores(images: np.ndarray, background: PixelCNN, seed: int = 0) -> np.ndarray:
    """log p_background(x) - log p_mixture(x), (N,): high where generic strokes explain x better."""
    mixture = fit_pixelcnn(images, PIXELCNN_EPOCHS, seed=seed)
    return pixelcnn_nll(mixture, images) - pixelcnn_nll(background, images)


def supervised_reference(images: np.ndarray, planted: np.ndarray, seed: int = 0) -> np.ndarray:
    """Not a detector: a logistic regression on the pixels that is *given* the labels, scored by
    5-fold cross-validation. How separable the planted drawings are at 28x28, for scale."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold, cross_val_predict

    x = images.reshape(len(images), -1).astype(np.float32) / 255.0
    clf = LogisticRegression(C=0.1, max_iter=2000, class_weight="balanced")  # C: mild L2, 784 inputs
    folds = StratifiedKFold(5, shuffle=True, random_state=seed)
    return cross_val_predict(clf, x, planted, cv=folds, method="decision_function")


DETECTORS = ("ours", "geom", "pixelcnn", "pyod", "supervised")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scenarios", nargs="+", choices=list(SETTINGS), default=list(SETTINGS))
    parser.add_argument("--detectors", nargs="+", choices=DETECTORS, default=list(DETECTORS))
    parser.add_argument("--epochs", type=int, default=None, help="default: per scenario, see SETTINGS")
    parser.add_argument("--latent-dim", type=int, default=None, help="default: per scenario, see SETTINGS")
    parser.add_argument("--trim", type=float, default=TRIM)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0], help="mix seeds, one run each")
    args = parser.parse_args()
    warnings.simplefilter("ignore")
    print(f"machine: {machine()}")
    if "pixelcnn" in args.detectors:
        t0 = time.perf_counter()
        background = pixelcnn_background()  # trained once, for every scenario and seed
        took = time.perf_counter() - t0
        print(f"PixelCNN background: {BACKGROUND_EPOCHS} epochs on the Omniglot symbols, {took:.0f} s")
    for name in args.scenarios:
        sheep, other, fraction, val = scenario(name)
        for seed in args.seeds:
            m = mix(sheep, other, fraction, seed=seed)
            print(f"\n{name} (mix seed {seed}): {int(m.planted.sum())} planted among {int((~m.planted).sum())} sheep")
            results = {}
            if "ours" in args.detectors:
                t0 = time.perf_counter()
                dim, epochs = SETTINGS[name]
                dim, epochs = args.latent_dim or dim, args.epochs or epochs
                results.update(ours(m.images, val, epochs, dim, args.trim))
                took = time.perf_counter() - t0
                print(f"  (electric-sheep, {dim}-D latent, {epochs} epochs, trim {args.trim:g}: {took:.0f} s)")
            if "geom" in args.detectors:
                results["GEOM rotations"] = geom_scores(m.images, seed=seed)
            if "pixelcnn" in args.detectors:
                results["PixelCNN ratio"] = pixelcnn_ratio_scores(m.images, background, seed=seed)
                if "geom" in args.detectors:  # they rank drawings differently, so their ranks add up
                    both = rankdata(results["PixelCNN ratio"]) + rankdata(results["GEOM rotations"])
                    results["PixelCNN ratio + GEOM"] = both
            if "pyod" in args.detectors:
                results.update(pyod_scores(m.images, float(m.planted.mean())))
            if "supervised" in args.detectors:
                results["supervised (labels given)"] = supervised_reference(m.images, m.planted, seed=seed)
            for method, values in results.items():
                r = detection_metrics(values, m.planted)
                print(
                    f"  {method:<26} AUROC {r['auroc']:.4f}  AP {r['average_precision']:.4f}  "
                    f"P@{r['k']} {r['precision_at_k']:.4f}",
                    flush=True,
                )


if __name__ == "__main__":
    main()
