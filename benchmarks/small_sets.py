"""Small sets (a folder of one's own drawings): scored among themselves, among the drawings the
model learned from, or among drawings the model drew, as `sheep anomalies` scores a set of fewer
than SMALL_SET drawings (the learned ones where it can read them, else the drawn ones).

Each trial draws a set of SIZE drawings: unseen normal drawings (the normal file's valid and test
splits, which the run did not train on when it was trained on that file with its split seed) and
``--fraction`` of planted ones (at least one), and scores it with the default score three ways:
alone; among up to REFERENCE_DRAWINGS of the run's training drawings; among as many drawn by the
model. It prints, per planted file and size, the mean over the trials of the AUROC and of the
shares of planted and normal drawings flagged by the default rule (the 0.99 quantile of the set
itself, or of the reference), each as alone / learned / drawn. Default: the built-in model,
Google's sheep as the normal drawings and its cats, dogs, rabbits and ducks planted.

    python benchmarks/small_sets.py [--run RUN_DIR --normal FILE --planted FILE ...] [--sizes 10 30 100]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from _common import SHARED, machine
from sklearn.metrics import roc_auc_score

from electric_sheep.analysis.anomaly import DEFAULT_SCORE, DRAWN, Yardstick, screen, threshold_for
from electric_sheep.data.drawings import load_drawings
from electric_sheep.runs.checkpoint import builtin_run_dir, load_model
from electric_sheep.runs.run_sources import learned_drawings
from electric_sheep.runs.screening import REFERENCE_DRAWINGS, model_drawings

GOOGLE = SHARED / "quickdraw" / "bitmap"


def trial(model, normal: np.ndarray, planted: np.ndarray, reference: Yardstick | None) -> tuple[float, float, float]:
    """(AUROC, share of the planted flagged, share of the normal flagged) of one set."""
    images = np.concatenate([normal, planted])
    values, _, yardstick = screen(model, images, DEFAULT_SCORE, reference=reference)
    cut, _ = threshold_for(values, among=yardstick)
    is_planted = np.r_[np.zeros(len(normal), bool), np.ones(len(planted), bool)]
    flagged = values > cut
    return roc_auc_score(is_planted, values), flagged[is_planted].mean(), flagged[~is_planted].mean()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", default=None, help="the run folder (default: the built-in model)")
    parser.add_argument(
        "--learned",
        default=None,
        help="the file the run learned from (default: its own; the built-in's: Google's sheep)",
    )
    parser.add_argument("--normal", default=str(GOOGLE / "sheep.npy"), help="the file of normal drawings")
    parser.add_argument(
        "--planted", nargs="+", default=[str(GOOGLE / f"{k}.npy") for k in ("cat", "dog", "rabbit", "duck")]
    )
    parser.add_argument("--sizes", type=int, nargs="+", default=[10, 30, 100])
    parser.add_argument("--fraction", type=float, default=0.05, help="planted share of a set (at least one)")
    parser.add_argument("--trials", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    print(f"machine: {machine()}")
    run = args.run or builtin_run_dir()
    learned_file = args.learned or (None if args.run else GOOGLE / "sheep.npy")
    model, learned = load_model(run), load_drawings(learned_file) if learned_file else learned_drawings(run)
    if learned is None:
        raise SystemExit(f"{run}: the drawings the model learned from were not found (sheep download sheep)")
    references = (None, Yardstick(learned.split("train", limit=REFERENCE_DRAWINGS)))
    references += (Yardstick(model_drawings(model, REFERENCE_DRAWINGS), DRAWN),)
    normal_set = load_drawings(args.normal)
    unseen = np.concatenate([normal_set.split("valid"), normal_set.split("test")])
    print(f"{len(references[1].images):,} learned drawings; {len(unseen):,} unseen normal drawings of {args.normal}")
    print("| planted | size | AUROC alone / learned / drawn | planted flagged | normal flagged |")
    print("|---|---|---|---|---|")
    rng, start = np.random.default_rng(args.seed), time.perf_counter()
    for path in args.planted:
        other = np.asarray(load_drawings(path).images)
        for size in args.sizes:
            n = min(max(1, round(size * args.fraction)), len(other))
            rows = []
            for _ in range(args.trials):
                normal = unseen[rng.choice(len(unseen), size - n, replace=False)]
                planted = other[rng.choice(len(other), n, replace=False)]
                rows.append([trial(model, normal, planted, reference) for reference in references])
            mean = np.mean(rows, axis=0)  # (way, measure)
            auroc, planted_flagged, normal_flagged = (" / ".join(f"{v:.3f}" for v in mean[:, j]) for j in range(3))
            name = path.rsplit("/", 1)[-1]
            print(f"| {name} | {size} ({n} planted) | {auroc} | {planted_flagged} | {normal_flagged} |", flush=True)
    print(f"{time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
