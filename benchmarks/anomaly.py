"""Anomaly detection per kind of intruder: every electric-sheep score against PyOD's detectors.

Each kind is planted on its own among real sheep, and every detector is fitted on the contaminated
mixture itself (the honest case: `sheep anomalies --mix ... --train-on-mix EPOCHS`, trimmed as the
CLI trims, `--trim 0.2`; PyOD's detectors on the raw pixels of the same mixture):

  cat, dog, rabbit, duck   Google-rendered bitmaps, 5% among the 1,000 Google sheep
  raw X / aaron            all real raw drawings of car, cat, pig, cow, airplane (17-27 each),
                           rasterised here, among the 7,400 Aaron sheep. To save time the five share
                           one mixture per seed (1.5% planted: harder than each alone); each row
                           scores its own kind against the sheep
  raw X / google           the same drawings, each kind alone among the 1,000 Google sheep
  raw sheep / google       the control: real Quick, Draw! sheep rasterised here, among Google's
                           sheep; nothing planted is an anomaly, so what a detector finds is the renderer
  raw sheep / aaron        the control for the raw kinds among the Aaron sheep: the same real sheep
                           alone among them; what a detector finds is the source (Quick, Draw!'s
                           20-second doodles against The Sheep Market's), not a kind
  omniglot 1%, 10%         Omniglot test symbols among the 7,400 Aaron sheep

`--group other-bases` runs a check instead (held out at first, never tuned on): another Google
category (cat, dog, duck, rabbit) is the normal one and each of the other four, sheep included, is
planted alone at 5% among its 1,000 drawings. `--group symbols` turns the Omniglot case round:
the 30,000 training symbols are the normal drawings, and the 300 Aaron test sheep and the raw
kinds (all rasterised here) are planted among them: intruders with more ink and detail than the
normal drawings, in strokes a model of symbols explains well. `--group kanji`: real kanji
(KanjiVG's strokes, `pip install kanjivg svg.path`, rasterised here) at 1% and 10% among the Aaron
sheep; held out at its first run, since then one of the groups the default is measured on.
`--group icons`: line icons of vehicles, buildings and plants (Tabler's, `pip install pytablericons
svg.path`, rasterised here), all of each among the Aaron sheep (one mixture per seed) and each kind
alone among the Google sheep; held out at its first run.

Per kind: AUROC and average precision, the median over the mix seeds, of every electric-sheep score
and of PyOD's best detector (the best by median AUROC, chosen per kind). Results are cached per
mixture and seed in ~/.cache/electric-sheep/benchmarks/anomaly, so an interrupted run continues:
PyOD's apart (they do not depend on our model), ours under a key of the default preset's settings,
so a change of the preset retrains and rescores only our side. Each mixture's trained model is kept
there too (its config.json and weights), so `--rescore` measures a change of the scores on every
mixture without training again.

`--bootstrap` adds, per kind and seed, 95% intervals of the default's AUROC and of its lead over
PyOD's best detector, from paired bootstrap draws of the planted and the normal drawings (for
kinds with few drawings, such as the 17 raw cows). `--against-source` reads the raw kinds against
their control's real sheep, rasterised as they are and planted among the same sheep: each planted
drawing's rank among its own mixture's normal drawings, and per kind and detector the AUROC of the
kind's ranks against the real sheep's (0.5: no more unusual than sheep of the same source).

    pip install pyod && python benchmarks/anomaly.py [--kinds cat omniglot-10 ...] [--seeds 0 1 2] [--rescore]
    python benchmarks/anomaly.py --group other-bases --seeds 0
    python benchmarks/anomaly.py --kinds raw/aaron --bootstrap
    python benchmarks/anomaly.py --kinds raw/aaron --against-source

`--normal FILE --planted FILE ...` measures drawings of your own with the same protocol: each
planted file a row, `--fraction` of the normal file's train split planted in all (default 5%),
the default preset trained `--epochs` (default 30) on the mixture, validated on its valid split.

    python benchmarks/anomaly.py --normal my/horse.npy --planted my/zebra.npy my/donkey.ndjson
"""

from __future__ import annotations

import argparse
import hashlib
import itertools
import json
import shutil
import tempfile
import time
import warnings
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import numpy as np
from _common import SHARED, data_path, machine
from _icons import CATEGORIES, icons
from _kanji import kanji

from electric_sheep.analysis.anomaly import CODES, DEFAULT_SCORE, SCORES, TYPICALITY, scores
from electric_sheep.core.model import make_model_config
from electric_sheep.core.train_config import make_train_config
from electric_sheep.data.drawings import default_cache_dir, load_drawings
from electric_sheep.runs.checkpoint import CONFIG, WEIGHTS, load_model, read_config
from electric_sheep.runs.mixtures import TRIM, mix, train_on_mixture, train_trimmed

RAW = ("car", "cat", "pig", "cow", "airplane")
# as `--train-on-mix 30`; 10 on the 7,400 Aaron sheep is 2,300 steps, and the symbols' the same
# epochs: the KL weight is 1 in the last two (kl_start 2, kl_steep 5)
EPOCHS = {"google": 30, "aaron": 10, "omniglot": 10}
PYOD_MAX_OCSVM = 2000  # OCSVM's kernel matrix grows as N^2: on the Aaron mixtures it takes minutes


@dataclass(frozen=True)
class Mixture:
    """One contaminated set: which sheep, which others, what share; ``rows`` names the kinds it scores."""

    base: str  # "google", "aaron" or "omniglot": see sheep()
    others: tuple[str, ...]  # data paths relative to ../shared/data
    fraction: float
    rows: tuple[str, ...]
    category: str = "sheep"  # the Google bitmaps' category that is the normal one
    epochs: int | None = None  # None: EPOCHS[base]


def custom_mixture(normal: Path, planted: list[Path], fraction: float, epochs: int) -> tuple[str, Mixture]:
    """(a cache name, the mixture) for drawings of your own: ``planted`` (each file a row, ``fraction``
    of the normal drawings planted in all) among the normal file's train split. The name holds a
    digest of the files' paths, sizes and times, so a changed file is measured afresh."""
    files = [normal, *planted]
    for f in files:
        if not f.is_file():
            raise SystemExit(f"{f}: no such file")
    stamp = [(str(f.resolve()), f.stat().st_size, f.stat().st_mtime_ns) for f in files]
    digest = hashlib.sha256(json.dumps([stamp, fraction, epochs]).encode()).hexdigest()[:8]
    rows = tuple(f"{f.stem} among {normal.stem}" for f in planted)
    others = tuple(str(f.resolve()) for f in planted)
    return f"custom {digest}", Mixture(str(normal.resolve()), others, fraction, rows, epochs=epochs)


def _raw(k: str) -> str:
    return f"quickdraw/raw/{k}.ndjson"


MIXTURES: dict[str, Mixture] = {
    **{k: Mixture("google", (f"quickdraw/bitmap/{k}.npy",), 0.05, (k,)) for k in ("cat", "dog", "rabbit", "duck")},
    "raw/aaron": Mixture("aaron", tuple(_raw(k) for k in RAW), 1.0, tuple(f"raw {k} / aaron" for k in RAW)),
    "raw sheep/aaron": Mixture("aaron", (_raw("sheep"),), 1.0, ("raw sheep / aaron",)),
    **{f"raw {k}/google": Mixture("google", (_raw(k),), 1.0, (f"raw {k} / google",)) for k in (*RAW, "sheep")},
    "omniglot-1": Mixture("aaron", ("omniglot.npz",), 0.01, ("omniglot 1%",)),
    "omniglot-10": Mixture("aaron", ("omniglot.npz",), 0.10, ("omniglot 10%",)),
}
CONTROLS = ("raw sheep / google", "raw sheep / aaron")  # sheep planted among sheep: what a detector finds is the source
# Each mixture of raw kinds and the control planted the same way among the same sheep.
CONTROL_OF = {"raw/aaron": "raw sheep/aaron", **{f"raw {k}/google": "raw sheep/google" for k in RAW}}
BITMAPS = ("cat", "dog", "duck", "rabbit", "sheep")
OTHER_BASES: dict[str, Mixture] = {
    f"{k}/{base}s": Mixture("google", (f"quickdraw/bitmap/{k}.npy",), 0.05, (f"{k} among {base}s",), base)
    for base in BITMAPS[:-1]
    for k in BITMAPS
    if k != base
}
SYMBOLS: dict[str, Mixture] = {
    "symbols": Mixture(
        "omniglot",
        ("aaron_sheep.npz", *(_raw(k) for k in RAW)),
        1.0,
        ("aaron sheep / symbols", *(f"raw {k} / symbols" for k in RAW)),
    )
}
# Drawings that are not files in ../shared/data: made from installed packages by the helper modules.
KANJI = "kanjivg"
GENERATED = {KANJI: kanji, **{f"tabler/{c.lower()}": partial(icons, c) for c in CATEGORIES}}
KANJI_MIXTURES: dict[str, Mixture] = {
    f"kanji-{p}": Mixture("aaron", (KANJI,), p / 100, (f"kanji {p}%",)) for p in (1, 10)
}
ICONS = tuple(c.lower() for c in CATEGORIES)
ICON_MIXTURES: dict[str, Mixture] = {
    "icons/aaron": Mixture(
        "aaron", tuple(f"tabler/{c}" for c in ICONS), 1.0, tuple(f"{c} icons / aaron" for c in ICONS)
    ),
    **{f"{c} icons/google": Mixture("google", (f"tabler/{c}",), 1.0, (f"{c} icons / google",)) for c in ICONS},
}
GROUPS = {
    "sheep": MIXTURES, "other-bases": OTHER_BASES, "symbols": SYMBOLS, "kanji": KANJI_MIXTURES, "icons": ICON_MIXTURES,
}  # fmt: skip
ALL_MIXTURES = {name: m for group in GROUPS.values() for name, m in group.items()}


def sheep(base: str, category: str = "sheep") -> tuple[np.ndarray, np.ndarray]:
    """(the normal drawings that are mixed, validation ones for the training curve); ``base`` is
    one of EPOCHS or the path of a file of your own."""
    if base == "google":
        d = load_drawings(SHARED / f"quickdraw/bitmap/{category}.npy")
        return np.asarray(d.images), d.split("valid")
    own = {"omniglot": "omniglot.npz", "aaron": "aaron_sheep.npz"}
    d = load_drawings(data_path(own[base]) if base in own else Path(base))
    return d.split("train"), d.split("valid")


def others(m: Mixture) -> tuple[np.ndarray, np.ndarray]:
    """(the drawings to plant, the row index of each)."""
    parts = []
    for path in m.others:
        if path in GENERATED:
            parts.append(GENERATED[path]())
            continue
        d = load_drawings(data_path(path))
        parts.append(d.split("test") if path.endswith(".npz") else np.asarray(d.images))  # sketch-rnn: its test split
    return np.concatenate(parts), np.repeat(np.arange(len(parts)), [len(p) for p in parts])


def pyod_scores(images: np.ndarray, contamination: float, only: tuple[str, ...] = ()) -> dict[str, np.ndarray]:
    """Each PyOD detector's scores of the drawings ("PyOD KNN": (N,) ...); ``only``: these names."""
    from pyod.models.auto_encoder import AutoEncoder
    from pyod.models.copod import COPOD
    from pyod.models.ecod import ECOD
    from pyod.models.hbos import HBOS
    from pyod.models.iforest import IForest
    from pyod.models.knn import KNN
    from pyod.models.lof import LOF
    from pyod.models.ocsvm import OCSVM
    from pyod.models.pca import PCA

    x = images.reshape(len(images), -1).astype(np.float32) / 255.0
    c = min(contamination, 0.5)
    detectors = {
        "KNN": KNN(contamination=c),
        "LOF": LOF(contamination=c),
        "IForest": IForest(contamination=c, random_state=0),
        "PCA": PCA(contamination=c),
        "ECOD": ECOD(contamination=c),
        "COPOD": COPOD(contamination=c),
        "HBOS": HBOS(contamination=c),
        "AutoEncoder": AutoEncoder(contamination=c, epoch_num=20, verbose=0, random_state=0),
    }
    if len(x) <= PYOD_MAX_OCSVM:
        detectors["OCSVM"] = OCSVM(contamination=c)
    out = {}
    for name, det in detectors.items():
        if only and f"PyOD {name}" not in only:
            continue
        det.fit(x)
        out[f"PyOD {name}"] = np.nan_to_num(np.asarray(det.decision_scores_, dtype=np.float64), posinf=1e300)
    return out


# Model settings that change only how a model draws: not what it learns, nor any score but `mse`.
DRAWING_ONLY = ("pixel_temperature", "calibrated_temperature")


def settings_key() -> str:
    """A short digest of the default preset's model and training settings and of how trimmed
    training chooses what it keeps: our results' cache key."""
    model = {k: v for k, v in make_model_config("default").to_dict().items() if k not in DRAWING_ONLY}
    trim = {"share": TRIM, "typical by": TYPICALITY, "codes": CODES}
    settings = {"model": model, "train": make_train_config("default").to_dict(), "trim": trim}
    return hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:12]


def run_mixture(
    name: str, m: Mixture, seed: int, cache: Path, rescore: bool = False, stage1_from: str | None = None
) -> dict:
    """Train, score and measure one mixture with one seed (ours and PyOD's, each cached as JSON).
    ``rescore``: score again with the kept model, whatever our cached result says; ``stage1_from``:
    a key whose kept stage-1 models to start from (only stage 2 is trained)."""
    stem = _stem(name, seed)
    ours, theirs = cache / settings_key() / f"{stem}.json", cache / "pyod" / f"{stem}.json"
    if rescore or not (ours.exists() and theirs.exists()):
        stage1 = None if stage1_from is None else cache / stage1_from / "models" / stem / "stage1"
        measure_mixture(m, seed, ours, theirs, _kept(cache, name, seed), rescore, stage1)
    result, pyod = json.loads(ours.read_text()), json.loads(theirs.read_text())
    for row, values in result["rows"].items():
        values.update(pyod["rows"][row])
    return result


def _stem(name: str, seed: int) -> str:
    return f"{name.replace('/', '_').replace(' ', '_')}-{seed}"


def _kept(cache: Path, name: str, seed: int) -> Path:
    """Where the model trained on this mixture and seed is kept."""
    return cache / settings_key() / "models" / _stem(name, seed)


def build_mixture(m: Mixture, seed: int):
    """(the mixture, each drawing's row index or -1 for a normal drawing, validation drawings)."""
    base, valid = sheep(m.base, m.category)
    planted_all, row_of = others(m)
    mixture = mix(base, planted_all, m.fraction, seed=seed)
    rows = np.where(mixture.planted, row_of[np.where(mixture.planted, mixture.source_index, 0)], -1)
    return mixture, rows, valid


def measure_mixture(
    m: Mixture, seed: int, ours: Path, theirs: Path, kept: Path, rescore: bool, stage1: Path | None = None
) -> None:
    """Build the mixture and write what is not cached yet: our scores' metrics, PyOD's. Our model
    is trained once and kept in ``kept`` (from the stage-1 model kept in ``stage1``, if given)."""
    mixture, rows, valid = build_mixture(m, seed)

    def measured(values: dict[str, np.ndarray]) -> dict[str, dict[str, tuple[float, float]]]:
        keep = {i: (rows == -1) | (rows == i) for i in range(len(m.rows))}
        return {
            row: {k: metrics(v[keep[i]], rows[keep[i]] == i) for k, v in values.items()} for i, row in enumerate(m.rows)
        }

    if not theirs.exists():
        theirs.parent.mkdir(parents=True, exist_ok=True)
        theirs.write_text(json.dumps({"rows": measured(pyod_scores(mixture.images, float(mixture.planted.mean())))}))
    if ours.exists() and not rescore:
        return
    if (kept / WEIGHTS).exists():
        model = load_model(kept)
        trained = json.loads(ours.read_text())["train_s"] if ours.exists() else float("nan")
    else:
        model, trained = trained_model(m, seed, mixture.images, valid, kept, stage1)
    values, seconds = {}, {}
    for kind in SCORES:
        t0 = time.perf_counter()
        values[kind] = scores(model, mixture.images, kind, seed=seed)
        seconds[kind] = time.perf_counter() - t0
    result = {"train_s": trained, "score_s": seconds, "n": len(mixture.images), "rows": measured(values)}
    ours.parent.mkdir(parents=True, exist_ok=True)
    ours.write_text(json.dumps(result))


def trained_model(m: Mixture, seed: int, images: np.ndarray, valid: np.ndarray, kept: Path, stage1: Path | None = None):
    """(the model trained on the mixture as `--train-on-mix` trains it, seconds); its config and
    weights are copied to ``kept``, stage 1's to ``kept/stage1``, so that another way to trim needs
    only stage 2 trained again: given ``stage1`` (such a kept stage-1 folder, trained with the same
    settings), only stage 2 is trained."""
    t0 = time.perf_counter()
    model_cfg = make_model_config("default")
    # gpu_batch_size 0: the CPU's batches on a GPU too
    cfg = make_train_config("default", epochs=m.epochs or EPOCHS[m.base], seed=seed, gpu_batch_size=0)
    quiet = {"progress": False, "log": lambda s: None}
    with tempfile.TemporaryDirectory() as run_dir:
        if stage1 is None:
            model = train_on_mixture(images, valid, model_cfg, run_dir, **cfg.to_dict(), **quiet)
        else:
            _check_stage1(stage1, model_cfg, cfg)
            shutil.copytree(stage1, Path(run_dir) / "stage1")
            model = train_trimmed(load_model(stage1), images, valid, model_cfg, cfg, run_dir, **quiet)
        for stage in ("stage1", "."):
            (kept / stage).mkdir(parents=True, exist_ok=True)
            for name in (CONFIG, WEIGHTS):
                shutil.copyfile(Path(run_dir) / stage / name, kept / stage / name)
    return model, time.perf_counter() - t0


def _check_stage1(stage1: Path, model_cfg, cfg) -> None:
    """Refuse a kept stage-1 model trained with other model or training settings than now."""
    recorded = read_config(stage1)
    expected = {"model": model_cfg.to_dict(), "train": cfg.to_dict()}
    if any(recorded[k] != v for k, v in expected.items()):
        raise SystemExit(f"{stage1}: trained with other settings than the default preset's now; train it afresh")


def metrics(values: np.ndarray, planted: np.ndarray) -> tuple[float, float]:
    from sklearn.metrics import average_precision_score, roc_auc_score

    return float(roc_auc_score(planted, values)), float(average_precision_score(planted, values))


BOOTSTRAP_DRAWS = 2000


def bootstrap(chosen: dict[str, Mixture], seeds: list[int], cache: Path, results: dict[str, list[dict]]) -> list[str]:
    """Markdown: per kind and mix seed, the default's AUROC and its lead over PyOD's best detector
    for that kind (by median AUROC, as in the table), each with a 95% interval from paired bootstrap
    draws of the planted and the normal drawings. Our kept models score again; PyOD's detector is
    fitted again (its per-drawing scores are not cached)."""
    lines = ["| kind (drawings) | seed | default | default - PyOD's best |", "|---|---|---|---|"]
    for name, m in chosen.items():
        best = {row: _best_pyod(results[row]) for row in m.rows}
        for seed in seeds:
            mixture, rows, _ = build_mixture(m, seed)
            ours = scores(load_model(_kept(cache, name, seed)), mixture.images, DEFAULT_SCORE, seed=seed)
            theirs = pyod_scores(mixture.images, float(mixture.planted.mean()), tuple(set(best.values())))
            rng = np.random.default_rng(seed)
            for i, row in enumerate(m.rows):
                keep = (rows == -1) | (rows == i)
                (auc, lead), (low, high) = _paired_bootstrap(ours[keep], theirs[best[row]][keep], rows[keep] == i, rng)
                lines.append(
                    f"| {row} ({(rows == i).sum()}) | {seed} | {auc:.3f} [{low[0]:.3f}, {high[0]:.3f}] | "
                    f"{lead:+.3f} [{low[1]:+.3f}, {high[1]:+.3f}] vs {best[row][5:]} |"
                )
    return lines


def against_source(
    chosen: dict[str, Mixture], seeds: list[int], cache: Path, results: dict[str, list[dict]]
) -> list[str]:
    """Markdown: for the raw kinds, each score's AUROC of the kind against the control's real
    sheep, both read as ranks among their own mixture's normal drawings (0.5: the kind looks no more
    unusual than sheep of its source), and the control's own AUROC against the normal drawings; the
    median over the seeds. Our kept models score again; PyOD's best detectors are fitted again."""
    from sklearn.metrics import roc_auc_score

    paired = {name: CONTROL_OF[name] for name in chosen if name in CONTROL_OF}
    if not paired:
        return [f"--against-source: none of the mixtures measured has a control ({', '.join(CONTROL_OF)} have)"]
    control_rows = {c: ALL_MIXTURES[c].rows[0] for c in sorted(set(paired.values()))}
    kind_rows = {row: control_rows[c] for name, c in paired.items() for row in chosen[name].rows}
    detectors = [*SCORES, *sorted({_best_pyod(results[r]) for r in [*kind_rows, *control_rows.values()]})]
    cells: dict[tuple[str, str], list[float]] = {}
    for seed in seeds:
        ranks = {}
        for name in [*paired, *control_rows]:
            ranks |= _ranks(chosen[name], _kept(cache, name, seed), seed, detectors)
        for row, d in itertools.product(control_rows.values(), detectors):
            cells.setdefault((row, d), []).append(float(ranks[row][d].mean()))
        for (row, control), d in itertools.product(kind_rows.items(), detectors):
            sheep_ranks, kind_ranks = ranks[control][d], ranks[row][d]
            labels = np.r_[np.zeros(len(sheep_ranks)), np.ones(len(kind_ranks))]
            cells.setdefault((row, d), []).append(roc_auc_score(labels, np.r_[sheep_ranks, kind_ranks]))
    lines = ["| kind | " + " | ".join(f"`{d}`" if d in SCORES else d for d in detectors) + " |"]
    lines.append("|---|" + "---|" * len(detectors))
    for row in [*control_rows.values(), *kind_rows]:
        what = "among the normal drawings" if row in CONTROLS else "against the control's sheep"
        lines.append(f"| {row}: {what} | " + " | ".join(f"{np.median(cells[(row, d)]):.3f}" for d in detectors) + " |")
    return lines


def _ranks(m: Mixture, kept: Path, seed: int, detectors: list[str]) -> dict[str, dict[str, np.ndarray]]:
    """Per row of ``m``, per detector: each planted drawing's rank among the mixture's normal
    drawings (the share it outscores, ties counted half)."""
    mixture, rows, _ = build_mixture(m, seed)
    model = load_model(kept)
    values = {d: scores(model, mixture.images, d, seed=seed) for d in detectors if d in SCORES}
    values |= pyod_scores(mixture.images, float(mixture.planted.mean()), tuple(d for d in detectors if d not in SCORES))
    out = {}
    for i, row in enumerate(m.rows):
        for d, v in values.items():
            normal = np.sort(v[rows == -1])
            below = np.searchsorted(normal, v[rows == i], "left") + np.searchsorted(normal, v[rows == i], "right")
            out.setdefault(row, {})[d] = below / (2 * len(normal))
    return out


def _paired_bootstrap(ours: np.ndarray, theirs: np.ndarray, planted: np.ndarray, rng: np.random.Generator):
    """((our AUROC, ours - theirs), (2.5% quantiles, 97.5% quantiles) of both over BOOTSTRAP_DRAWS
    draws): planted and normal drawings each drawn with replacement, the same draws for both."""
    from sklearn.metrics import roc_auc_score

    def both(pick: np.ndarray) -> tuple[float, float]:
        ours_auc = roc_auc_score(planted[pick], ours[pick])
        return ours_auc, ours_auc - roc_auc_score(planted[pick], theirs[pick])

    yes, no = np.flatnonzero(planted), np.flatnonzero(~planted)
    draws = [both(np.concatenate([rng.choice(yes, len(yes)), rng.choice(no, len(no))])) for _ in range(BOOTSTRAP_DRAWS)]
    return both(np.arange(len(planted))), tuple(np.quantile(draws, [0.025, 0.975], axis=0))


def _best_pyod(runs: list[dict]) -> str:
    """The PyOD detector with the best median AUROC over the runs of one kind."""
    med = {k: np.median([r[k][0] for r in runs]) for k in runs[0] if k.startswith("PyOD")}
    return max(med, key=med.get)


def table(results: dict[str, list[dict]]) -> list[str]:
    """Markdown: per kind the median AUROC / AP of each score and of PyOD's best; mean and worst."""
    ours = list(SCORES)
    lines = [
        "| kind | " + " | ".join(f"`{k}`" for k in ours) + " | PyOD's best | default - PyOD |",
        "|---|" + "---|" * (len(ours) + 2),
    ]
    summary = {k: [] for k in [*ours, "pyod"]}
    for row, runs in results.items():
        med = {k: np.median([r[k] for r in runs], axis=0) for k in runs[0]}
        best = _best_pyod(runs)
        cells = [f"{med[k][0]:.3f} / {med[k][1]:.3f}" for k in ours]
        cells = [f"**{c}**" if k == DEFAULT_SCORE else c for k, c in zip(ours, cells, strict=True)]
        gap = med[DEFAULT_SCORE][0] - med[best][0]
        cells += [f"{best[5:]} {med[best][0]:.3f} / {med[best][1]:.3f}", f"{gap:+.3f}"]
        lines.append(f"| {row} ({len(runs)} seeds) | " + " | ".join(cells) + " |")
        if row not in CONTROLS:
            for k in ours:
                summary[k].append(med[k][0])
            summary["pyod"].append(med[best][0])
    for what, fn in (("mean", np.mean), ("worst", np.min)) if summary["pyod"] else ():  # the control alone
        cells = [f"{fn(summary[k]):.3f}" for k in ours] + [f"{fn(summary['pyod']):.3f}", ""]
        lines.append(f"| {what} AUROC over the kinds (not the control) | " + " | ".join(cells) + " |")
    return lines


def summary(results: dict[str, list[dict]]) -> list[str]:
    """Markdown for README: per kind the default's median AUROC against PyOD's best."""
    lines = ["| kind | default (`combined`) | PyOD's best on pixels |", "|---|---|---|"]
    ours, theirs = [], []
    for row, runs in results.items():
        med = {k: float(np.median([r[k][0] for r in runs])) for k in runs[0]}
        best = _best_pyod(runs)
        tag = " (control)" if row in CONTROLS else ""
        lines.append(f"| {row}{tag} | {med[DEFAULT_SCORE]:.3f} | {med[best]:.3f} {best[5:]} |")
        if row not in CONTROLS:
            ours.append(med[DEFAULT_SCORE])
            theirs.append(med[best])
    if ours:
        lines.append(f"| mean over the kinds (not the control) | {np.mean(ours):.3f} | {np.mean(theirs):.3f} |")
        lines.append(f"| worst kind | {min(ours):.3f} | {min(theirs):.3f} |")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--group", choices=list(GROUPS), default="sheep", help="which mixtures (default: the sheep)")
    parser.add_argument("--kinds", nargs="+", choices=list(ALL_MIXTURES), help="these mixtures only")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="mix and training seeds")
    parser.add_argument("--rescore", action="store_true", help="score again with the kept models (train any missing)")
    parser.add_argument("--bootstrap", action="store_true", help="also 95%% intervals of the default and its lead")
    parser.add_argument(
        "--against-source", action="store_true", help="also the raw kinds against the real sheep of their control"
    )
    parser.add_argument(
        "--stage1-from", metavar="KEY", help="train only stage 2, from the stage-1 models kept under this earlier key"
    )
    own = parser.add_argument_group("drawings of your own (instead of --group and --kinds)")
    own.add_argument("--normal", type=Path, metavar="FILE", help="the normal drawings (any format sheep reads)")
    own.add_argument("--planted", type=Path, nargs="+", metavar="FILE", help="drawings to plant, a row each")
    own.add_argument("--fraction", type=float, default=0.05, help="planted share of the normal drawings (default 0.05)")
    own.add_argument("--epochs", type=int, default=30, help="training epochs, as --train-on-mix (default 30)")
    args = parser.parse_args()
    if (args.normal is None) != (args.planted is None):
        parser.error("--normal and --planted go together")
    warnings.simplefilter("ignore")
    cache = default_cache_dir() / "benchmarks" / "anomaly"
    cache.mkdir(parents=True, exist_ok=True)
    print(f"machine: {machine()}; our results cached under {cache / settings_key()}")
    t_start = time.perf_counter()
    results: dict[str, list[dict]] = {}
    if args.normal:
        chosen = dict([custom_mixture(args.normal, args.planted, args.fraction, args.epochs)])
    else:
        chosen = {name: ALL_MIXTURES[name] for name in args.kinds or GROUPS[args.group]}
        if args.against_source:  # the controls of the raw kinds chosen, trained if need be
            chosen |= {CONTROL_OF[name]: ALL_MIXTURES[CONTROL_OF[name]] for name in chosen if name in CONTROL_OF}
    for name, m in chosen.items():
        for seed in args.seeds:
            r = run_mixture(name, m, seed, cache, args.rescore, args.stage1_from)
            print(f"{name} seed {seed}: {r['n']} drawings, trained in {r['train_s']:.0f} s, scored in "
                  f"{sum(r['score_s'].values()):.1f} s", flush=True)  # fmt: skip
            for row, values in r["rows"].items():
                results.setdefault(row, []).append(values)
    print(f"\n{time.perf_counter() - t_start:.0f} s (cached mixtures cost nothing)\n")
    print("\n".join(table(results)))
    print("\n" + "\n".join(summary(results)))
    if args.bootstrap:
        print("\n" + "\n".join(bootstrap(chosen, args.seeds, cache, results)))
    if args.against_source:
        print("\n" + "\n".join(against_source(chosen, args.seeds, cache, results)))


if __name__ == "__main__":
    main()
