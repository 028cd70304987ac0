"""Retrain the built-in sheep model from the shared Quick, Draw! data, reproducibly.

    python scripts/train_pretrained.py    # train the candidates, ship the best on the validation split

The candidates are the default preset trained for each length and head window in CANDIDATES; the
one with the lowest validation NLL is shipped, and its test NLL is reported, never used to choose.

Data: ``../shared/data/quickdraw/bitmap/sheep.npy``, 1,000 real Quick, Draw! sheep rendered by
Google (CC BY 4.0), split 800/100/100 with seed 0. Only CC BY data is used, so the shipped weights
carry no non-commercial restriction.
"""

from __future__ import annotations

import argparse
import datetime
import json
import shutil
import tempfile
from pathlib import Path

import numpy as np
from safetensors.torch import load_file, save_file

from electric_sheep.analysis.anomaly import scores
from electric_sheep.analysis.evaluate import evaluate_model
from electric_sheep.analysis.generate import CANDIDATES as DRAW_CANDIDATES
from electric_sheep.analysis.generate import TEMPERATURES
from electric_sheep.analysis.quality import grey_share
from electric_sheep.analysis.sketchbook import REFERENCE_SCORES, SCORE
from electric_sheep.core.model import count_parameters, make_model_config
from electric_sheep.core.train_config import make_train_config
from electric_sheep.data.drawings import load_drawings
from electric_sheep.runs.checkpoint import CHECKSUM, load_model, tensors_digest
from electric_sheep.runs.training import train

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data" / "quickdraw" / "bitmap" / "sheep.npy"
TARGET = ROOT / "src" / "electric_sheep" / "pretrained"
# The default preset as it is; only the length of training is chosen, on the validation split.
EPOCHS = (40, 60, 80)
CONTEXTS = (5, 9)  # the pixel head's window: the earlier preset's, and the preset's now (docs/samples.md)
CANDIDATES = [{"model": {"pixel_context": c}, "train": {"epochs": e, "seed": 0}} for c in CONTEXTS for e in EPOCHS]


def run(setting: dict, run_dir: Path, k: int) -> dict:
    """Train one candidate into ``run_dir``; its validation NLL (what chooses) and test NLL."""
    drawings = load_drawings(DATA)
    # No path: the built-in model must not point at a folder of the machine that trained it.
    info = {
        "source": None,
        "dataset": "Quick, Draw! numpy_bitmap sheep (1,000 of shared/data)",
        "format": "bitmap",
        "split_seed": 0,
        "n_train": len(drawings.splits["train"]),
    }
    train(
        drawings.split("train"),
        drawings.split("valid"),
        make_model_config("default", **setting["model"]),
        make_train_config("default", **setting["train"]),
        run_dir,
        progress=False,
        log=lambda s: None,
        data_info=info,
    )
    model = load_model(run_dir)
    result = evaluate_model(model, drawings.split("test"), k=k)
    result["valid_iwae_nll"] = evaluate_model(model, drawings.split("valid"), k=k)["iwae_nll"]
    result["parameters"] = count_parameters(model)
    return result


def ship(run_dir: Path, result: dict, setting: dict) -> None:
    """Copy what the built-in model needs into the package: config, float16 weights, history."""
    if TARGET.exists():
        shutil.rmtree(TARGET)
    (TARGET / "latents").mkdir(parents=True)
    config = json.loads((run_dir / "config.json").read_text())
    temperature = load_model(run_dir).pixel_temperature  # read off the training drawings as it trained
    grey = grey_share(load_drawings(DATA).split("train"))
    (TARGET / "config.json").write_text(json.dumps(config, indent=2) + "\n")
    shutil.copy(run_dir / "metrics.jsonl", TARGET / "metrics.jsonl")
    epochs = setting["train"]["epochs"]
    for e in sorted({1, 5, 10, 15, 20, 30, 50, 100, epochs}):  # snapshots for the report, not every epoch
        src = run_dir / "latents" / f"epoch_{e:03d}.npy"
        if src.exists():
            shutil.copy(src, TARGET / "latents" / src.name)
    # float16 halves the download; the loader casts back to float32. The prior's Cholesky factors
    # stay float32: they are few, and a density needs their precision; so does the temperature.
    weights = {
        k: (v.half() if v.is_floating_point() and not k.startswith("prior.") and k != "calibrated" else v)
        for k, v in load_file(str(run_dir / "model.safetensors")).items()
    }
    meta = {"dtype": "float16", CHECKSUM: tensors_digest(weights)}  # checked on every load
    save_file(weights, str(TARGET / "model.safetensors"), metadata=meta)
    (TARGET / "model.safetensors").chmod(0o644)
    (TARGET / "eval.json").write_text(json.dumps(result, indent=2) + "\n")
    # The app's percentiles for users without the data: scores of the held-out drawings, no drawings.
    valid = load_drawings(DATA, seed=0).split("valid")
    np.save(TARGET / REFERENCE_SCORES, scores(load_model(TARGET), valid, SCORE).astype(np.float32))
    card = (
        (ROOT / "scripts" / "MODEL_CARD.template.md")
        .read_text()
        .format(
            date=datetime.date.today().isoformat(),
            epochs=epochs,
            nll=result["iwae_nll"],
            valid_nll=result["valid_iwae_nll"],
            candidates=f"{', '.join(map(str, EPOCHS))} epochs with a head window of {' or '.join(map(str, CONTEXTS))}",
            context=setting["model"]["pixel_context"],
            nelbo=result["nelbo"],
            k=result["k"],
            n=result["n"],
            params=f"{result['parameters']:,}",
            settings=json.dumps(setting),
            temperature=temperature,
            temperatures=", ".join(map(str, TEMPERATURES)),
            drawn=DRAW_CANDIDATES,
            grey=grey,
        )
    )
    (TARGET / "MODEL_CARD.md").write_text(card)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--k", type=int, default=1000, help="importance samples for the NLLs")
    args = parser.parse_args()
    if not DATA.is_file():
        raise SystemExit(f"data not found: {DATA}")
    with tempfile.TemporaryDirectory() as d:
        results = []
        for i, setting in enumerate(CANDIDATES):
            r = run(setting, Path(d) / str(i), args.k)
            print(
                f"valid NLL {r['valid_iwae_nll']:7.2f}  test NLL {r['iwae_nll']:7.2f}  {json.dumps(setting)}",
                flush=True,
            )
            results.append(r)
        best = min(range(len(CANDIDATES)), key=lambda i: results[i]["valid_iwae_nll"])
        ship(Path(d) / str(best), results[best], CANDIDATES[best])
    r = results[best]
    print(f"shipped to {TARGET}: valid NLL {r['valid_iwae_nll']:.2f}, test NLL {r['iwae_nll']:.2f} nats (k = {r['k']})")


if __name__ == "__main__":
    main()
