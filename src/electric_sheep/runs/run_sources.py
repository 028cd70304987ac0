"""The drawings a run reads and what it learned to draw: its recorded data (one file or several),
the downloaded sheep for the built-in model, and a warning when a file changed since training."""

from __future__ import annotations

import re
import warnings
from pathlib import Path
from typing import Any

from ..data.drawings import Drawings, categories, data_fingerprint, downloaded, load_drawings
from ..data.sources import combine
from ..errors import DataError, SheepError, SheepWarning
from .checkpoint import CONFIG, WEIGHTS, is_builtin, read_data_record, read_model_config


def run_subject(run_dir: str | Path) -> str | None:
    """What a run learned to draw, in words ("a sheep", "an airplane", "a cat or a dog"): its
    categories, else the Quick, Draw! category its training file is named after (``cat.npy``,
    ``full_numpy_bitmap_cat.npy``, ``aaron_sheep.npz``); None when the name says none."""
    conditional = read_model_config(run_dir).categories
    if conditional:
        return " or ".join(_with_article(c) for c in conditional)
    if is_builtin(run_dir):
        return "a sheep"
    record = read_data_record(run_dir)
    if isinstance(record.get("sources"), list):  # several files: each a category, if each is named after one
        names = [
            _category_in_name(str(s.get("category", ""))) if isinstance(s, dict) else None for s in record["sources"]
        ]
        return " or ".join(map(_with_article, names)) if all(names) else None
    source, dataset = record.get("source"), record.get("dataset")  # a file, or words (a copied built-in model)
    name = _category_in_name(Path(source).stem if isinstance(source, str) else str(dataset or ""))
    return _with_article(name) if name else None


def _category_in_name(text: str) -> str | None:
    """The one Quick, Draw! category a file's name (or a text) holds, whole or as one of its words."""
    known = {c.lower().replace(" ", "_"): c for c in categories()}
    name = "_".join(w for w in re.split(r"[^a-z0-9]+", text.lower()) if w)
    if name in known:
        return known[name]
    found = {known[w] for w in name.split("_") if w in known}
    return found.pop() if len(found) == 1 else None


def _with_article(noun: str) -> str:
    return f"{'an' if noun[:1].lower() in 'aeiou' else 'a'} {noun}"


def run_data(run_dir: str | Path, data: str | Path | None = None, how: str = "DATA") -> Drawings:
    """The drawings a command should use: DATA if given, else the data the run was trained on
    (with the same split seed; several files as one set, each drawing labelled with its file's
    category). ``how`` is how the
    user gives DATA, for the message when neither exists (an argument, or ``--data DATA``)."""
    info = read_data_record(run_dir)
    source = data or info.get("source") or _downloaded_sheep(run_dir)
    if source is None and "sources" in info:
        return _several_files(run_dir, info, how)
    if source is None:
        trained_on = f" ({info['dataset']})" if isinstance(info.get("dataset"), str) else ""
        builtin = ", or run `sheep download sheep` once and give nothing" if is_builtin(run_dir) else ""
        raise DataError(
            run_dir,
            f"give {how}, a file or a category name after `sheep download NAME`{builtin}: the run does not say "
            f"where its training data{trained_on} is",
        )
    if data is None:
        _check_still_there(run_dir, source, how)
    drawings = load_drawings(source, seed=info.get("split_seed", 0))
    _warn_if_changed(run_dir, info, drawings.source)
    return drawings


def _downloaded_sheep(run_dir: str | Path) -> str | None:
    """For the built-in model, which records no file, the ``sheep`` category once downloaded (from
    the cache, not a file or folder that happens to be called so where the command runs)."""
    found = downloaded("sheep") if is_builtin(run_dir) else None
    return None if found is None else str(found)


def learned_drawings(run_dir: str | Path, data: str | Path | None = None) -> Drawings | None:
    """The drawings others are compared with: DATA if given (an error when it cannot be read), else
    the data the run was trained on (for the built-in model, the downloaded ``sheep``), else, for
    another model of sheep whose data cannot be read (moved, or a copy of the built-in model), the
    downloaded ``sheep`` category; None when none of them can be read."""
    if data is not None:
        return run_data(run_dir, data)
    sources = [lambda: run_data(run_dir)]
    sheep = downloaded("sheep")
    if sheep is not None and run_subject(run_dir) == "a sheep":  # sheep of the same kind, downloaded
        sources.append(lambda: load_drawings(sheep))
    for source in sources:
        try:
            return source()
        except SheepError:
            continue
    return None


def _check_still_there(run_dir: str | Path, source: str, how: str) -> None:
    if not Path(source).exists():
        raise DataError(run_dir, f"the file it was trained on, {source}, is not there any more: give {how}")


def _several_files(run_dir: str | Path, info: dict[str, Any], how: str) -> Drawings:
    """The files a run was trained on, as one set (see :func:`electric_sheep.data.sources.combine`)."""
    records = info["sources"]
    if not isinstance(records, list) or not records or not all(_is_source_record(r) for r in records):
        raise DataError(Path(run_dir) / CONFIG, '"sources" must be a list of {"source": path, "category": name}')
    sets = []
    for record in records:
        _check_still_there(run_dir, record["source"], how)
        sets.append(load_drawings(record["source"], seed=info.get("split_seed", 0)))
        _warn_if_changed(run_dir, info, sets[-1].source)
    return combine(sets, [r["category"] for r in records], Path(run_dir))


def _is_source_record(record: Any) -> bool:
    return isinstance(record, dict) and all(isinstance(record.get(k), str) for k in ("source", "category"))


def source_category(run_dir: str | Path, source: str | Path) -> str | None:
    """The category a run recorded for one of its training files (None for a file it did not train on)."""
    return (_source_record(read_data_record(run_dir), source) or {}).get("category")


def _source_record(info: dict[str, Any], source: str | Path) -> dict[str, Any] | None:
    """What the data record ``info`` says of the training file at ``source`` (one of several, or
    the only one), or None when the run did not train on it."""
    for record in info.get("sources", [info]):
        if isinstance(record, dict) and isinstance(record.get("source"), str):
            if Path(record["source"]).resolve() == Path(source).resolve():
                return record
    return None


def _warn_if_changed(run_dir: str | Path, info: dict[str, Any], source: str | Path) -> None:
    """A file the run trained on, read again: a warning when it is no longer the same file (one
    that grew or shrank is split otherwise, so its held-out drawings may be ones the run learned)."""
    record = _source_record(info, source)
    if record is not None and "fingerprint" in record and data_fingerprint(source) != record["fingerprint"]:
        warnings.warn(
            f"{source} has changed since {run_dir} was trained on it: its splits may now count drawings "
            "the run learned from among the held-out ones",
            SheepWarning,
            stacklevel=3,
        )


def streamed_job(run_dir: str | Path, drawings: Drawings, split: str) -> dict:
    """What a streamed result (codes, scores) is of: the data, the split and the model's weights,
    so that a partial file of another job is never continued."""
    return {"data": drawings.fingerprint(), "split": split, "model": data_fingerprint(Path(run_dir) / WEIGHTS)}
