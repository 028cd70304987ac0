"""Training from data files: load and check them, stream them, and record what a run was trained on
(so that ``--resume`` goes on with the same data)."""

from __future__ import annotations

import dataclasses
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..core.devices import is_main_process
from ..core.model import ModelConfig, make_model_config
from ..core.train_config import TrainConfig, default_epochs, make_train_config
from ..core.trainer import Callback
from ..data.sources import DrawingSet, expand_sources, interleaved, load_sources
from ..errors import ConfigError, DataError, SheepWarning
from . import checkpoint as ckpt
from .fileio import check_unlocked
from .training import train, warn_no_validation


def _configs(
    run_dir: str | Path, resume: bool, model_options: dict[str, Any], overrides: dict[str, Any]
) -> tuple[ModelConfig, TrainConfig]:
    """The model and training settings: the preset's with the options on top, or the run's own."""
    shaped = any(model_options[k] is not None for k in ("channels", "hidden", "pixel_head", "pixel_context"))
    if shaped and model_options["preset"] == "seed":
        raise ConfigError(
            "channels, hidden, pixel_head and pixel_context shape the default preset; "
            "the seed preset keeps the post's layers"
        )
    if resume:
        return _resumed_configs(run_dir, model_options, overrides)
    options = {k: v for k, v in model_options.items() if k != "preset"}
    model_cfg = make_model_config(model_options["preset"] or "default", **options)
    return model_cfg, make_train_config(model_cfg.preset, **overrides)


def _resumed_configs(
    run_dir: str | Path, model_options: dict[str, Any], overrides: dict[str, Any]
) -> tuple[ModelConfig, TrainConfig]:
    """The run's own model and training settings; a model option that contradicts them is an error."""
    model_cfg = ckpt.read_model_config(run_dir)
    ckpt.check_resumable(run_dir, model_cfg)
    for name, value in model_options.items():
        if value is not None and value != getattr(model_cfg, name):
            raise ConfigError(
                f"{run_dir} has {name} {getattr(model_cfg, name)}; --resume keeps it "
                "(drop that option, or start a new run with another --out)"
            )
    return model_cfg, resume_train_config(run_dir, **overrides)


def train_on_data(
    data: str | Path | list[str] | None,
    run_dir: str | Path,
    *,
    preset: str | None = None,
    latent_dim: int | None = None,
    channels: tuple[int, int] | None = None,
    hidden: int | None = None,
    pixel_head: int | None = None,
    pixel_context: int | None = None,
    resume: bool = False,
    progress: bool = True,
    log: Callable[[str], None] = print,
    split_seed: int = 0,
    callbacks: Sequence[Callback] = (),
    conditional: bool = False,
    **overrides: Any,
) -> list[dict[str, Any]]:
    """Load DATA (any Quick, Draw! format), then :func:`train` on its train split, validating on
    its valid split. Several files (a list; patterns are expanded) train as one set, streamed from
    their memory maps, each drawing labelled by its file; with ``resume``, None (or an empty list)
    goes on with the files the run recorded. ``overrides`` are :class:`TrainConfig`
    fields. None keeps the defaults: for a new run the preset's (``default``;
    :data:`~electric_sheep.core.presets.PRESET_MODEL`), with ``resume`` the run's own settings.
    ``channels`` and ``hidden`` size the default preset; the seed's layers are the post's.
    ``conditional``: several files train a class-conditional model, each file a category."""
    model_options = {
        "preset": preset,
        "latent_dim": latent_dim,
        "channels": channels,
        "hidden": hidden,
        "pixel_head": pixel_head,
        "pixel_context": pixel_context,
    }
    model_cfg, cfg = _configs(run_dir, resume, model_options, overrides)
    if is_main_process():  # before loading the data, which may take minutes; rank 0 then takes the lock
        check_unlocked(run_dir, "a training run")
    train_images, val_images, val_categories, info = _training_data(data, run_dir, resume, cfg, split_seed)
    if conditional and not resume:
        model_cfg = _conditional(model_cfg, train_images)
    if not resume and overrides.get("epochs") is None:
        cfg = dataclasses.replace(cfg, epochs=default_epochs(model_cfg.preset, cfg, len(train_images)))
    options = {"resume": resume, "data_info": info, "progress": progress, "log": log, "callbacks": callbacks}
    options["val_categories"] = val_categories
    return train(train_images, val_images, model_cfg, cfg, run_dir, **options)


def _training_data(
    data: str | Path | list[str] | None, run_dir: str | Path, resume: bool, cfg: TrainConfig, split_seed: int
) -> tuple[DrawingSet, np.ndarray, tuple[np.ndarray, list[str]] | None, dict[str, Any]]:
    """(train drawings, validation drawings, the category of each of those and their names for
    several files, what config.json records); resumed, the run's own split and the same files, or
    an error that says what differs."""
    recorded = ckpt.read_data_record(run_dir) if resume else {}
    split_seed = recorded.get("split_seed", split_seed)  # the same validation drawings as before
    if not data and not resume:
        raise ConfigError("no DATA to train on: give a file, a category or a pattern")
    if not data:  # resumed without DATA: the files the run recorded
        data = _recorded_sources(run_dir, recorded)
    sources = expand_sources([data] if isinstance(data, str | Path) else [str(d) for d in data])
    train_images, val_set, info = (_several_files if len(sources) > 1 else _one_file)(sources, cfg, split_seed)
    _check_same_data(run_dir, recorded, info)
    n_val = len(val_set)
    if not n_val:
        warn_no_validation(", ".join(sources), len(train_images))
        val_set, n_val = train_images, min(len(train_images), cfg.val_limit or len(train_images))
    rows = np.arange(n_val)  # only what validation uses is read
    if len(val_set.names) == 1:
        return train_images, val_set.take(rows), None, info
    # files mixed, so that the first drawings shown (TensorBoard's reconstructions) are of each
    sizes = np.bincount(val_set.labels(rows), minlength=len(val_set.names))
    rows = interleaved([np.arange(n) for n in sizes], val_set.starts)
    return train_images, val_set.take(rows), (val_set.labels(rows), val_set.names), info


def _recorded_sources(run_dir: str | Path, recorded: dict[str, Any]) -> list[str]:
    """The files a run was trained on, as its config.json records them; one that is no longer
    there is named (the run can still be resumed with DATA where the file now lies)."""
    sources = [f.get("source") for f in recorded.get("sources", [recorded])] if recorded else []
    if not sources or not all(isinstance(s, str) for s in sources):
        raise DataError(Path(run_dir) / ckpt.CONFIG, "records no data files: give DATA")
    for source in sources:
        if not Path(source).exists():
            raise DataError(source, f"no such file (what {run_dir} was trained on; give DATA where it now lies)")
    return sources


def _conditional(model_cfg: ModelConfig, train_images: DrawingSet) -> ModelConfig:
    """The model given each file's name as its category."""
    if len(train_images.names) < 2 or model_cfg.preset == "seed":
        raise ConfigError("a class-conditional model is the default preset trained on two or more files")
    return dataclasses.replace(model_cfg, categories=tuple(train_images.names))


def _one_file(sources: list[str], cfg: TrainConfig, split_seed: int) -> tuple[DrawingSet, DrawingSet, dict[str, Any]]:
    """(train drawings, validation drawings, what config.json records) of the one file in ``sources``."""
    from ..data.drawings import data_fingerprint, load_drawings

    data = sources[0]
    drawings = load_drawings(data, seed=split_seed)
    if cfg.balance:
        warnings.warn(
            f"{data}: --balance evens out several files; one file is used as it is", SheepWarning, stacklevel=3
        )
    if drawings.format == "picture":
        warnings.warn(
            f"{drawings.source}: pictures have no held-out split; validation is measured on the "
            "training drawings themselves",
            SheepWarning,
            stacklevel=3,
        )
    train_images = DrawingSet.from_drawings([drawings], "train", cfg.limit)  # read as batches need it
    info = {
        "source": str(Path(drawings.source).resolve()),
        "format": drawings.format,
        "split_seed": split_seed,
        "n_train": int(len(train_images)),
        "fingerprint": data_fingerprint(drawings.source),
    }
    return train_images, DrawingSet.from_drawings([drawings], "valid", cfg.val_limit), info


def _several_files(sources: list[str], cfg: TrainConfig, split_seed: int) -> tuple[DrawingSet, DrawingSet, dict]:
    """The train splits of several files as one streamed DrawingSet (``limit``: of each file), the
    validation drawings (an equal share of ``val_limit`` from each) and what config.json records."""
    from ..data.drawings import data_fingerprint

    sets = load_sources(sources, seed=split_seed)  # every file checked before anything is trained
    pictures = [d.source for d in sets if d.format == "picture"]
    if pictures:
        raise DataError(pictures[0], "is a folder of pictures: it trains alone, not among several files")
    train_set = DrawingSet.from_drawings(sets, "train", cfg.limit)
    per_file = None if cfg.val_limit is None else max(cfg.val_limit // len(sets), 1)
    val_set = DrawingSet.from_drawings(sets, "valid", per_file)
    files = [
        {
            "source": str(Path(d.source).resolve()),
            "category": name,
            "format": d.format,
            "n_train": int(n),
            "fingerprint": data_fingerprint(d.source),
        }
        for d, name, n in zip(sets, train_set.names, train_set.sizes, strict=True)
    ]
    info = {"sources": files, "split_seed": split_seed, "n_train": len(train_set), "balance": cfg.balance}
    return train_set, val_set, info


def _check_same_data(run_dir: str | Path, recorded: dict[str, Any], info: dict[str, Any]) -> None:
    """--resume goes on with the data it began with: the same files by fingerprint (size, head and
    tail), wherever they now lie; runs from before fingerprints compare the path."""
    if "sources" in recorded or "sources" in info:
        before = [f.get("fingerprint") for f in recorded.get("sources", [recorded])] if recorded else None
        now = [f["fingerprint"] for f in info.get("sources", [info])]
        if before is not None and before != now:
            raise ConfigError(f"{run_dir} was trained on other data; resume it with the same DATA, in the same order")
        return
    trained_on = recorded.get("source")
    if "fingerprint" in recorded:
        if recorded["fingerprint"] != info["fingerprint"]:
            raise ConfigError(f"{run_dir} was trained on other data ({trained_on}); resume it with the same DATA")
    elif trained_on is not None and trained_on != info["source"] and Path(trained_on).exists():
        raise ConfigError(f"{run_dir} was trained on {trained_on}; resume it with the same DATA")


def resume_train_config(run_dir: str | Path, **overrides: Any) -> TrainConfig:
    """The run's saved training settings with ``overrides`` on top (None = keep the run's).

    A resumed run goes on as it started (its --lr, --kl-start, --seed ...), not with the preset's
    defaults, unless an override says otherwise (typically more ``epochs``).
    """
    path = Path(run_dir) / ckpt.CONFIG
    saved = ckpt.read_config(run_dir).get("train")
    if not isinstance(saved, dict):
        raise DataError(path, 'has no "train" settings to resume with')
    unknown = sorted(set(overrides) - {f.name for f in dataclasses.fields(TrainConfig)})
    if unknown:
        raise ConfigError(f"unknown training option(s): {', '.join(unknown)}")
    saved = {k: v for k, v in saved.items() if k != "device"}  # the machine's choice, not the run's
    saved.setdefault("gpu_batch_size", 0)  # runs saved before GPU batches keep their batch size
    try:
        return TrainConfig(**{**saved, **{k: v for k, v in overrides.items() if v is not None}})
    except (TypeError, ConfigError) as e:  # settings from another version, or hand-edited
        raise DataError(path, f"invalid training settings ({e})") from None
