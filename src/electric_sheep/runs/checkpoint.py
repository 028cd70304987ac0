"""Run folders that rebuild themselves: ``config.json`` beside safetensors weights.

A run folder holds::

    config.json                  model, training and data settings (load = build from this)
    model.safetensors            the weights (and batch-norm statistics), never pickle
    training_state.safetensors   optimiser state and RNG state, to resume exactly
    metrics.jsonl                one JSON object per finished epoch
    latents/epoch_NNN.npy        validation-set codes (z_mean) after each epoch
    events.out.tfevents.*        TensorBoard logs

Every file is written atomically (temporary name, then rename), so a crash or Ctrl-C while
saving leaves the previous checkpoint intact. ``training_state.safetensors`` is the checkpoint
itself: it also holds the weights and the metrics history, so that one rename commits an epoch;
``--resume`` restores from it alone and rewrites the other two files, mending a save that was cut
between files. Each safetensors file carries a SHA-256 of its tensors in its header, checked on
load, and weights that are not finite are refused.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file

from ..core.model import VAE, ModelConfig, build_model, check_size, count_numbers, planned_shapes
from ..errors import ConfigError, DataError, SheepError, SheepWarning
from .fileio import atomic_path, parse_json, read_json, read_npy, read_text, write_json, write_npy, write_text

CONFIG = "config.json"
WEIGHTS = "model.safetensors"
STATE = "training_state.safetensors"
METRICS = "metrics.jsonl"
LATENTS = "latents"
LATENT_CATEGORIES = "categories.npy"  # in LATENTS: each saved code's category, for a run of several files
CHECKSUM = "sha256"  # key of the tensors' checksum in a safetensors header
MODEL_PART = "model."  # prefix of the weights' names inside the training state
# A checkpoint holds the weights and at most three optimiser moments of each (Adam with AMSGrad),
# plus RNG states and counters: a file listing more numbers is not one, and is not loaded.
STATE_COPIES = 4
STATE_EXTRA = 2**20
# Saved codes are one per validation drawing: 2**29 numbers are 33 million 16-D codes, more than the
# validation tenth of all of Quick, Draw!'s 50 million drawings. A file listing more is not read.
MAX_SAVED_NUMBERS = 2**29


def save_weights(model: VAE, run_dir: Path, meta: dict[str, str] | None = None) -> Path:
    """Write the model's state dict (parameters and buffers) as safetensors, with its checksum."""
    return _save_tensors(_state_tensors(model), run_dir / WEIGHTS, meta or {})


def _state_tensors(model: VAE) -> dict[str, torch.Tensor]:
    return {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}


def tensors_digest(tensors: dict[str, torch.Tensor]) -> str:
    """SHA-256 of the tensors' names, dtypes, shapes and bytes, in name order."""
    digest = hashlib.sha256()
    for name in sorted(tensors):
        t = tensors[name].detach().cpu().contiguous()
        digest.update(f"{name}|{t.dtype}|{tuple(t.shape)}|".encode())
        digest.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def _save_tensors(tensors: dict[str, torch.Tensor], target: Path, meta: dict[str, str]) -> Path:
    with atomic_path(target) as tmp:
        try:
            save_file(tensors, str(tmp), metadata={**meta, CHECKSUM: tensors_digest(tensors)})
        except SafetensorError as e:  # how safetensors reports a full disk: atomic_path names the file
            raise _os_error(str(e)) from None
    return target


def _os_error(message: str) -> OSError:
    """safetensors' "... I/O error: No space left on device (os error 28)" as the OSError it was."""
    found = re.search(r"os error (\d+)", message)
    return OSError(int(found[1]), os.strerror(int(found[1]))) if found else OSError(message)


def _load_tensors(path: Path, what: str) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """The tensors and header metadata of a safetensors file, checked against its checksum (files
    written before checksums were stored have none to check) and for non-finite numbers."""
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
            tensors = {k: f.get_tensor(k) for k in f.keys()}
    except (SafetensorError, OSError) as e:
        raise DataError(path, f"cannot be read as {what} ({e})") from None
    if CHECKSUM in meta and tensors_digest(tensors) != meta[CHECKSUM]:
        raise DataError(path, "is damaged: its tensors do not match the checksum saved with them")
    bad = [k for k, t in tensors.items() if t.is_floating_point() and not bool(torch.isfinite(t).all())]
    if bad:
        raise DataError(path, f"holds non-finite numbers (NaN or infinity) in {bad[0]}")
    return tensors, meta


def save_config(run_dir: Path, config: dict[str, Any]) -> Path:
    return write_json(run_dir / CONFIG, config)


def read_config(run_dir: Path) -> dict[str, Any]:
    """The run's ``config.json``; a clear error when the folder is not a run."""
    path = Path(run_dir) / CONFIG
    if Path(run_dir).is_file():  # e.g. drawings given where RUN_DIR goes
        raise DataError(run_dir, "is a file, not a run folder (RUN_DIR is the folder `sheep train` writes)")
    _require_file(path, DataError(run_dir, f"not a run folder (no {CONFIG}; create one with `sheep train`)"))
    config = read_json(path)
    if not isinstance(config, dict) or not isinstance(config.get("model"), dict):
        raise DataError(path, 'has no "model" settings (was it written by `sheep train`?)')
    return config


def read_data_record(run_dir: str | Path) -> dict[str, Any]:
    """What the run's ``config.json`` records of its data ({} when nothing); an error naming the
    file when the split seed, which decides the validation drawings, is not a seed."""
    path = Path(run_dir) / CONFIG
    record = read_config(run_dir).get("data", {})
    if not isinstance(record, dict):
        raise DataError(path, f'"data" must be an object of settings, got {json.dumps(record)}')
    seed = record.get("split_seed", 0)
    if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
        raise DataError(path, f"invalid data settings (split_seed must be a whole number >= 0, got {json.dumps(seed)})")
    return record


def read_model_config(run_dir: str | Path) -> ModelConfig:
    """The run's model settings; an error naming ``config.json`` when they are invalid."""
    values = read_config(run_dir)["model"]
    try:
        return ModelConfig.from_dict(values)
    except (ConfigError, TypeError, ValueError) as e:  # unknown keys, wrong types or values
        raise DataError(Path(run_dir) / CONFIG, f"invalid model settings ({e})") from None


def load_model(run_dir: str | Path, device: str | torch.device = "cpu") -> VAE:
    """Build the model from ``config.json`` and load its weights, in eval mode. The shapes the
    weights' header lists are checked against the config before anything is loaded or built: a
    config or a weights file that asks for more than the other (a run folder someone edited) costs
    no memory."""
    run_dir = Path(run_dir)
    config = read_model_config(run_dir)
    weights = _weights_path(run_dir)
    planned = _planned_to_fit(run_dir, config, _header_shapes(weights, "safetensors"), weights)
    state = _load_tensors(weights, "safetensors")[0]
    return _into_model(build_model(config, planned), state, weights).to(device).eval()


def check_resumable(run_dir: str | Path, config: ModelConfig) -> None:
    """A DataError before training builds anything when the checkpoint's weights are not the model
    ``config.json`` describes, or when it lists more numbers than a checkpoint of that model holds
    (all read from the files' headers: no tensor is loaded)."""
    run_dir = Path(run_dir)
    path = run_dir / STATE
    _require_file(path, DataError(run_dir, f"has no {STATE} to resume from"))
    held = _header_shapes(path, "a training state")
    weights, weights_path = _model_part(held), path
    if not weights:  # runs saved before the state held the weights
        weights_path = _weights_path(run_dir)
        weights = _header_shapes(weights_path, "safetensors")
    planned = _planned_to_fit(run_dir, config, weights, weights_path)
    limit = STATE_COPIES * count_numbers(planned) + STATE_EXTRA
    if (numbers := count_numbers(held)) > limit:
        raise DataError(path, f"holds {numbers:,} numbers, more than a checkpoint of this model holds ({limit:,})")


def _planned_to_fit(
    run_dir: Path, config: ModelConfig, held: dict[str, tuple[int, ...]], path: Path
) -> dict[str, tuple[int, ...]]:
    """The config's tensor shapes, once they are known to fit in memory and to match the shapes
    ``path`` holds: the config's own problem first, then its disagreement with the weights."""
    try:
        planned = planned_shapes(config)
        check_size(planned)
    except ConfigError as e:  # sizes no memory holds
        raise DataError(run_dir / CONFIG, str(e)) from None
    _check_shapes(planned, held, path)
    return planned


def _model_part(named: dict[str, Any]) -> dict[str, Any]:
    """The training state's weights (or their shapes), by their names in the model."""
    return {k[len(MODEL_PART) :]: v for k, v in named.items() if k.startswith(MODEL_PART)}


def _header_shapes(path: Path, what: str) -> dict[str, tuple[int, ...]]:
    try:
        with safe_open(str(path), framework="pt") as f:
            return {k: tuple(f.get_slice(k).get_shape()) for k in f.keys()}
    except (SafetensorError, OSError) as e:
        raise DataError(path, f"cannot be read as {what} ({e})") from None


def load_weights(model: VAE, run_dir: Path) -> VAE:
    """Load ``RUN_DIR/model.safetensors`` into ``model`` (any dtype on disk; cast on copy)."""
    weights = _weights_path(run_dir)
    return _into_model(model, _load_tensors(weights, "safetensors")[0], weights)


def _weights_path(run_dir: Path) -> Path:
    weights = Path(run_dir) / WEIGHTS
    _require_file(weights, DataError(run_dir, f"has no {WEIGHTS} yet (training has not finished an epoch)"))
    return weights


def _check_shapes(planned: dict[str, tuple[int, ...]], held_shapes: dict[str, tuple[int, ...]], path: Path) -> None:
    """A DataError naming the first tensor the weights and the config disagree on (as torch's
    loading would, but before the model takes any memory)."""
    for name in sorted(planned.keys() | held_shapes.keys()):
        held = held_shapes.get(name)
        if held != planned.get(name):
            if held is None:
                how = "not in the file"
            elif name not in planned:
                how = "in the file, not in config.json's model"
            else:
                how = f"{list(held)} in the file, {list(planned[name])} by config.json"
            raise DataError(path, f"does not match config.json (size mismatch for {name}: {how})")


def _require_file(path: Path, missing: DataError) -> None:
    """Raise ``missing`` when ``path`` is not there, and a DataError naming it when it is not a
    regular file (or a link to one): a device such as /dev/zero, read to its end, would never stop."""
    if path.exists() and not path.is_file():
        raise DataError(path, "is not a regular file")
    if not path.is_file():
        raise missing


def _into_model(model: VAE, state: dict[str, torch.Tensor], path: Path) -> VAE:
    try:
        model.load_state_dict(state)
    except RuntimeError as e:
        # torch's first line only says that loading failed; the next says which tensor and how
        first = next((line.strip() for line in str(e).splitlines()[1:] if line.strip()), str(e))
        raise DataError(path, f"does not match config.json ({first.rstrip('.')})") from None
    return model


def save_training_state(
    run_dir: Path,
    optimizer: torch.optim.Optimizer,
    extra: dict[str, Any],
    rng: dict[str, torch.Tensor],
    model: VAE,
    history: list[dict[str, Any]],
) -> Path:
    """The whole checkpoint in one file: weights, optimiser tensors and RNG states as tensors;
    the metrics history and everything else as JSON metadata."""
    sd = optimizer.state_dict()
    tensors: dict[str, torch.Tensor] = {f"{MODEL_PART}{k}": v for k, v in _state_tensors(model).items()}
    scalars: dict[str, Any] = {}
    for pid, st in sd["state"].items():
        for key, value in st.items():
            if torch.is_tensor(value):
                tensors[f"optim.{pid}.{key}"] = value.detach().cpu().contiguous()
            else:
                scalars[f"{pid}.{key}"] = value
    for name, value in rng.items():
        tensors[f"rng.{name}"] = value.contiguous()
    body = {"param_groups": sd["param_groups"], "scalars": scalars, "history": history, **extra}
    return _save_tensors(tensors, run_dir / STATE, {"json": json.dumps(body)})


@dataclass
class TrainingState:
    """What ``--resume`` needs: the checkpoint of :func:`save_training_state`."""

    optimizer: dict[str, Any]  # an optimiser state dict
    rng: dict[str, torch.Tensor]
    extra: dict[str, Any]  # epoch, step, partial sums of an interrupted epoch, ...
    weights: dict[str, torch.Tensor] | None  # None in runs saved before the state held them
    history: list[dict[str, Any]] | None

    def restore_model(self, model: VAE, run_dir: Path) -> VAE:
        """The checkpoint's weights into ``model`` (older runs: from ``model.safetensors``)."""
        if self.weights is None:
            return load_weights(model, run_dir)
        return _into_model(model, self.weights, run_dir / STATE)


def load_training_state(run_dir: Path) -> TrainingState:
    path = run_dir / STATE
    _require_file(path, DataError(run_dir, f"has no {STATE} to resume from"))
    tensors, header = _load_tensors(path, "a training state")
    try:
        meta = json.loads(header["json"])
        state: dict[int, dict[str, Any]] = {}
        for key, value in tensors.items():
            if key.startswith("optim."):
                _, pid, name = key.split(".", 2)
                state.setdefault(int(pid), {})[name] = value
        for key, value in meta.pop("scalars").items():
            pid, name = key.split(".", 1)
            state.setdefault(int(pid), {})[name] = value
        optimizer = {"state": state, "param_groups": meta.pop("param_groups")}
        if not all(isinstance(meta.get(key), int) for key in ("epoch", "step")):
            raise ValueError("no epoch and step")
    except (KeyError, TypeError, ValueError, AttributeError) as e:
        raise DataError(path, f"cannot be read as a training state ({type(e).__name__}: {e})") from None
    rng = {k[len("rng.") :]: v for k, v in tensors.items() if k.startswith("rng.")}
    weights = _model_part(tensors) or None
    return TrainingState(optimizer, rng, meta, weights, meta.pop("history", None))


def write_metrics(run_dir: Path, history: list[dict[str, Any]]) -> Path:
    """Rewrite ``metrics.jsonl`` whole (atomically), so a resumed run never duplicates epochs."""
    return write_text(run_dir / METRICS, "".join(json.dumps(row) + "\n" for row in history))


# What every epoch's row of metrics.jsonl holds (the report shows each), beside other numbers
METRIC_KEYS = ("epoch", "loss", "recon", "kl", "kl_weight", "images_per_s", "val_loss")


def read_metrics(run_dir: str | Path) -> list[dict[str, Any]]:
    """Each finished epoch's row of numbers; a DataError naming the line that is not one (a file
    edited by hand or damaged), so that no command that reads it fails later on a strange value."""
    path = Path(run_dir) / METRICS
    if not path.is_file():
        return []
    lines = enumerate(read_text(path).splitlines(), start=1)
    return [_metrics_row(parse_json(line, path, f"line {n} "), path, n) for n, line in lines if line.strip()]


def _metrics_row(row: Any, path: Path, n: int) -> dict[str, Any]:
    if not isinstance(row, dict):
        raise DataError(path, f"line {n} is not an epoch's metrics (a JSON object of numbers)")
    if missing := [key for key in METRIC_KEYS if key not in row]:
        raise DataError(path, f"line {n} has no {missing[0]!r}")
    if not isinstance(row["epoch"], int) or isinstance(row["epoch"], bool) or row["epoch"] < 1:
        raise DataError(path, f"line {n}: 'epoch' is not a whole number from 1")
    if bad := [key for key, value in row.items() if not isinstance(value, int | float) or isinstance(value, bool)]:
        raise DataError(path, f"line {n}: {bad[0]!r} is not a number")
    return row


def last_kl_weight(run_dir: str | Path) -> float | None:
    """The KL weight of the run's last trained epoch, or None when its metrics do not say."""
    rows = read_metrics(run_dir)
    value = rows[-1].get("kl_weight") if rows and isinstance(rows[-1], dict) else None
    return float(value) if isinstance(value, int | float) else None


def warn_if_prior_unlearned(run_dir: str | Path) -> None:
    """A SheepWarning when the run ended before its KL weight reached 1: decoding samples of the
    prior only makes sense once the codes follow it."""
    try:
        weight = last_kl_weight(run_dir)
    except SheepError:  # a damaged metrics.jsonl: drawing does not need it
        return
    if weight is not None and weight < 1:
        warnings.warn(
            f"{run_dir} ended training with a KL weight of {weight:.2f} (of 1): its codes do not follow the "
            "prior, so drawings decoded from it may be noise (train longer: --resume --epochs N)",
            SheepWarning,
            stacklevel=2,
        )


def _latents_path(run_dir: Path, epoch: int) -> Path:
    return Path(run_dir) / LATENTS / f"epoch_{epoch:03d}.npy"


def save_latents(run_dir: Path, epoch: int, codes: np.ndarray) -> Path:
    return write_npy(_latents_path(run_dir, epoch), codes.astype(np.float32))


def save_latent_categories(run_dir: Path, categories: np.ndarray) -> Path:
    """The category (its file's place among the run's sources) of each validation drawing whose
    codes are saved: the snapshots colour them by it."""
    return write_npy(Path(run_dir) / LATENTS / LATENT_CATEGORIES, categories.astype(np.int16))


def latent_categories(run_dir: str | Path, n: int) -> tuple[np.ndarray, list[str]] | None:
    """(the category of each of the ``n`` saved codes, the categories' names) for a run of
    several files, else None; an error naming the file when it does not fit the codes."""
    path = Path(run_dir) / LATENTS / LATENT_CATEGORIES
    if not path.is_file():  # one file, or codes saved before categories were
        return None
    sources = read_data_record(run_dir).get("sources")
    if not isinstance(sources, list):
        return None
    names = [str(s.get("category", i)) if isinstance(s, dict) else str(i) for i, s in enumerate(sources)]
    labels = read_npy(path, "array of categories", mmap_mode="r")  # read only once it has n labels
    whole = labels.shape == (n,) and np.issubdtype(labels.dtype, np.integer)
    labels = np.array(labels) if whole else labels
    if not whole or not (labels.min(initial=0) >= 0 and labels.max(initial=0) < len(names)):
        problem = f"holds {labels.dtype} of shape {labels.shape}: not one of {len(names)} categories per saved code"
        raise DataError(path, problem)
    return labels, names


def latent_epochs(run_dir: str | Path) -> list[int]:
    """The epochs after which validation codes were saved, in order."""
    stems = (p.stem for p in (Path(run_dir) / LATENTS).glob("epoch_*.npy"))
    return sorted(int(s[len("epoch_") :]) for s in stems if s[len("epoch_") :].isdigit())


def last_latents(run_dir: str | Path) -> np.ndarray | None:
    """The codes saved after the run's last epoch, or None when it saved none."""
    saved = latent_epochs(run_dir)
    return load_latents(run_dir, saved[-1]) if saved else None


def load_latents(run_dir: str | Path, epoch: int) -> np.ndarray:
    """The (N, latent_dim) codes saved after ``epoch``; an error naming the file when damaged."""
    path = _latents_path(Path(run_dir), epoch)
    codes = read_npy(path, "array of latent codes", mmap_mode="r")  # its shape checked before it is read
    if codes.ndim != 2 or not np.issubdtype(codes.dtype, np.floating):
        raise DataError(path, f"holds {codes.dtype} of shape {codes.shape}, expected (N, latent_dim) numbers")
    if codes.shape[1] != (width := read_model_config(run_dir).latent_dim):
        raise DataError(path, f"holds codes of width {codes.shape[1]}, the run's latent has {width} dimensions")
    if codes.size > MAX_SAVED_NUMBERS:
        raise DataError(path, f"holds {len(codes):,} codes, more than any run saves ({MAX_SAVED_NUMBERS:,} numbers)")
    codes = np.array(codes)
    if not np.isfinite(codes).all():
        raise DataError(path, "holds non-finite numbers (NaN or infinity)")
    return codes


def builtin_run_dir() -> Path:
    """The pretrained sheep shipped inside the package (see its MODEL_CARD.md)."""
    from importlib import resources

    return Path(str(resources.files("electric_sheep").joinpath("pretrained")))


def is_builtin(run_dir: str | Path) -> bool:
    """The pretrained run inside the package: read-only, and it records no data file."""
    return Path(run_dir).resolve() == builtin_run_dir().resolve()


def is_run_dir(path: str | Path) -> bool:
    return (Path(path) / CONFIG).is_file()
