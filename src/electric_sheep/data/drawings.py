"""Drawings from any official Quick, Draw! format (see :mod:`.formats`), pictures or a downloaded
category, as (N, 28, 28) uint8 with seeded splits.

Pictures are for using a model: every split holds all of them.

Stroke formats are rasterised once (see :mod:`electric_sheep.data.raster`) and cached on disk, keyed
by the file's identity and the rendering settings, so a second load is a plain ``np.load``.
Images stay uint8; normalisation to float32 [0, 1] happens per batch
(:func:`electric_sheep.core.infer.as_batch`).
"""

from __future__ import annotations

import difflib
import glob
import hashlib
import os
import shlex
import warnings
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

import numpy as np

from ..errors import DataError, OutputError, SheepWarning
from ..runs.fileio import atomic_path
from ..wording import counted, listed
from .formats import (
    FLAGGED,
    PICTURE_SUFFIXES,
    SPLITS,
    Format,
    detect_format,
    light_background,
    picture_files,
    read_bitmap,
    read_pictures,
    read_sketchrnn,
)
from .raster import RasterConfig
from .sources import GLOB_CHARS
from .strokes import STROKE_STREAMS, read_bin, read_strokes

SPLIT_FRACTIONS = (0.8, 0.1, 0.1)  # train/valid/test for files that come without splits
CACHE_ENV = "ELECTRIC_SHEEP_CACHE"


@dataclass
class Drawings:
    """A set of 28x28 drawings and its train/valid/test split.

    ``images`` is (N, 28, 28) uint8, 0 = background, 255 = ink; it may be a read-only memory map.
    ``splits`` maps each split name to sorted indices into ``images``.
    """

    images: np.ndarray
    splits: dict[str, np.ndarray]
    format: Format
    source: Path
    skipped: int = 0  # malformed stroke drawings, or blank/unreadable pictures, that were skipped
    meta: dict[str, object] = field(default_factory=dict)

    def __len__(self) -> int:
        return int(self.images.shape[0])

    def split(self, name: str, limit: int | None = None) -> np.ndarray:
        """The uint8 images of one split (its first ``limit`` drawings if given), in memory."""
        if name not in self.splits:
            raise DataError(self.source, f"no split {name!r} (have {', '.join(self.splits)})")
        idx = self.splits[name][:limit] if limit is not None else self.splits[name]
        return np.ascontiguousarray(self.images[idx])

    def name(self) -> str:
        """What the drawings are, in a title: the file's name, or the categories of several files."""
        names = self.meta.get("categories")
        if names is None:
            return Path(self.source).name
        return listed(names)

    def categories(self, split: str, limit: int | None = None) -> tuple[np.ndarray, list[str]] | None:
        """For several files as one set (:func:`electric_sheep.data.sources.combine`): the category
        (its file's place) of each drawing of ``split`` ("all": every drawing, in order; its first
        ``limit``, as :meth:`split` gives them) and the categories' names; None for one file."""
        if "categories" not in self.meta:
            return None
        return self.images.labels(self._indices(split)[:limit]), list(self.meta["categories"])

    def rows_in_files(self, split: str) -> np.ndarray | None:
        """For several files as one set: each drawing of ``split``'s row in its own file; else None."""
        if "categories" not in self.meta:
            return None
        idx = self._indices(split)
        return idx - self.images.starts[self.images.labels(idx)]

    def _indices(self, split: str) -> np.ndarray:
        return np.arange(len(self)) if split == "all" else self.splits[split]

    def files(self) -> list[str]:
        """The file the drawings are from, or every file of several."""
        return [str(f) for f in self.meta.get("sources", [self.source])]

    def fingerprint(self) -> str:
        """The identity of the file (see :func:`data_fingerprint`), or of every file of several."""
        parts = [data_fingerprint(source) for source in self.files()]
        return parts[0] if len(parts) == 1 else hashlib.sha256("|".join(parts).encode()).hexdigest()

    def check_split(self, name: str) -> None:
        """Refuse a split with no drawing in it (a file of a few drawings: 10% of 4 rounds to none)."""
        if name in self.splits and not len(self.splits[name]):
            problem = f"has no drawing in its {name} split ({len(self)} in all); choose another split"
            raise DataError(self.source, problem)

    def mean_ink(self) -> float:
        """Mean pixel value (0-255) over all drawings: how much ink a drawing has on average."""
        total, n = 0.0, len(self)
        for start in range(0, n, 65536):  # chunked: never loads a huge memmap at once
            total += float(self.images[start : start + 65536].astype(np.float64).mean(axis=(1, 2)).sum())
        return total / max(n, 1)


def summary(drawings: Drawings) -> dict[str, object]:
    """What ``sheep info`` prints: path, format, count, split sizes, mean ink, skipped, files."""
    return {
        "path": str(drawings.source),
        "format": drawings.format,
        "count": len(drawings),
        "splits": {k: int(len(v)) for k, v in drawings.splits.items()},
        "mean_ink": drawings.mean_ink(),
        "skipped": drawings.skipped,
        **({"files": list(drawings.meta["files"])} if "files" in drawings.meta else {}),
    }


def categories() -> list[str]:
    """The 345 official Quick, Draw! category names, shipped with the package."""
    text = resources.files("electric_sheep").joinpath("categories.txt").read_text("utf-8")
    return [line.strip() for line in text.splitlines() if line.strip() and not line.startswith("#")]


def check_category(name: str) -> str:
    """Return the official spelling of ``name`` or raise with a "did you mean" suggestion."""
    cats = categories()
    by_lower = {c.lower(): c for c in cats}
    if name.lower() in by_lower:
        return by_lower[name.lower()]
    close = difflib.get_close_matches(name.lower(), list(by_lower), n=3, cutoff=0.6)
    hint = f"; did you mean {', '.join(repr(by_lower[c]) for c in close)}?" if close else ""
    raise DataError(name, f"not a Quick, Draw! category{hint} (see `sheep download --list`)")


def default_cache_dir() -> Path:
    """``$ELECTRIC_SHEEP_CACHE``, else ``$XDG_CACHE_HOME/electric-sheep``, else ``~/.cache/...``."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "electric-sheep"


FILE_FORMATS: dict[str, str] = {  # download format -> file suffix
    "bitmap": ".npy",
    "sketchrnn": ".npz",
    "simplified": ".ndjson",
    "binary": ".bin",
    "raw": ".ndjson",
}


def cached_category_path(category: str, fmt: str, cache_dir: Path | None = None) -> Path:
    """Where ``sheep download`` puts ``category`` in format ``fmt``."""
    root = cache_dir or default_cache_dir()
    return root / "quickdraw" / fmt / f"{category}{FILE_FORMATS[fmt]}"


def resolve_source(source: str | Path, cache_dir: Path | None = None) -> Path:
    """A path to an existing file, or a category name already downloaded into the cache."""
    path = Path(source).expanduser()
    if path.is_file() or path.is_dir():  # a folder may hold pictures (detect_format says)
        return path
    if path.exists() or path.is_symlink():  # reading a pipe would wait for a writer forever
        raise DataError(path, "is not a file or folder of drawings (a device, a pipe, or a link to nothing)")
    if _looks_like_path(source):
        raise DataError(path, _missing_path(path))
    category = check_category(str(source))
    found = downloaded(category, cache_dir)
    if found is None:
        raise _not_downloaded([category], cache_dir)
    return found


def _looks_like_path(source: str | Path) -> bool:
    """A folder in it or a suffix: a file meant, not a category name."""
    return os.sep in str(source) or Path(source).suffix != ""


def downloaded(category: str, cache_dir: Path | None = None) -> Path | None:
    """The cached file of an official category name, in any format; None before its download."""
    for fmt in FILE_FORMATS:  # the order is the preference: bitmaps need no rasterising
        candidate = cached_category_path(category, fmt, cache_dir)
        if candidate.is_file():
            return candidate
    return None


def _not_downloaded(names: list[str], cache_dir: Path | None = None) -> DataError:
    root = cache_dir or default_cache_dir()
    command = f"sheep download {shlex.join(names)}" + (f" --dir {shlex.quote(str(cache_dir))}" if cache_dir else "")
    return DataError(", ".join(names), f"not downloaded yet (looked in {root}); run `{command}`")


def check_downloaded(sources: list[str], cache_dir: Path | None = None) -> None:
    """Raise naming every category among ``sources`` (names and paths) that is neither a file nor
    downloaded, so that one command fetches them all; files are left to their loading."""
    missing = []
    for source in sources:
        path = Path(source).expanduser()
        if path.exists() or path.is_symlink() or _looks_like_path(source):
            continue
        category = check_category(source)  # a misspelt name first: its download would fail
        if downloaded(category, cache_dir) is None:
            missing.append(category)
    if missing:
        raise _not_downloaded(list(dict.fromkeys(missing)), cache_dir)


def _missing_path(path: Path) -> str:
    """Why a path names no file: a pattern (which ``sheep train`` expands, one-file commands do
    not) is told apart from a plain missing file."""
    if not any(c in str(path) for c in GLOB_CHARS):
        return "no such file"
    found = len(glob.glob(str(path)))
    return f"is a pattern ({found} files match); this command reads one file" if found else "matches no file"


FINGERPRINT_BYTES = 2**20  # a data file's fingerprint reads this much of its head and of its tail


def data_fingerprint(source: str | Path) -> str:
    """A cheap identity of a data file, wherever it lies: SHA-256 of its size, its first and its
    last MiB (for a folder of pictures: of each picture's name and bytes, in order)."""
    path = Path(source)
    digest = hashlib.sha256()
    for file in picture_files(path) if path.is_dir() else [path]:
        size = file.stat().st_size
        digest.update(f"{file.name if path.is_dir() else ''}|{size}|".encode())
        with open(file, "rb") as f:
            digest.update(f.read(FINGERPRINT_BYTES))
            if size > FINGERPRINT_BYTES:
                f.seek(max(FINGERPRINT_BYTES, size - FINGERPRINT_BYTES))
                digest.update(f.read())
    return digest.hexdigest()


def load_drawings(
    source: str | Path,
    *,
    recognized: bool | None = None,
    seed: int = 0,
    cache_dir: Path | None = None,
    use_cache: bool = True,
    raster: RasterConfig = RasterConfig(),
) -> Drawings:
    """Load drawings from any Quick, Draw! format, pictures, or a downloaded category name.

    ``recognized`` keeps only drawings the game recognised (True) or did not (False); it applies
    to the stroke formats, which carry that flag. ``seed`` fixes the train/valid/test split of
    formats that come without one. Skipped drawings are counted in ``skipped`` and announced with
    a :class:`~electric_sheep.errors.SheepWarning`.
    """
    path = resolve_source(source, cache_dir)
    fmt = detect_format(path)
    if recognized is not None and fmt not in FLAGGED:
        warnings.warn(
            f"{path}: a {fmt} file does not say which drawings the game recognised: every drawing is kept",
            SheepWarning,
            stacklevel=2,
        )
    if fmt == "bitmap":
        images = read_bitmap(path)
        share = light_background(images)
        if share is not None:
            warnings.warn(
                f"{path}: most pixels are ink ({share:.0%} of them 255 in its first drawings), as if saved dark on "
                "light; bitmaps are 0 = background, 255 = ink: save 255 - x",
                SheepWarning,
                stacklevel=2,
            )
        return Drawings(images, seeded_splits(len(images), seed), "bitmap", path)
    if fmt == "picture":  # a few of the user's own: quick to convert, not cached
        return _announce(_load_pictures(path, raster))
    cache_file = _raster_cache_file(path, fmt, recognized, raster, cache_dir)
    cached = _read_raster_cache(cache_file) if use_cache and cache_file.is_file() else None
    if cached is not None:
        images, splits, skipped = cached
        meta = {"cached": str(cache_file)}
    else:
        images, splits, skipped = _rasterise(path, fmt, recognized, raster)
        meta = {}
        if use_cache:
            _write_raster_cache(cache_file, images, splits, skipped)
    splits = seeded_splits(len(images), seed) if splits is None else splits
    return _announce(Drawings(images, splits, fmt, path, skipped=skipped, meta=meta))


def _why_none(files: list[Path], raster: RasterConfig) -> str:
    """Why no picture of a folder was read: how many there were and what is wrong with the first."""
    try:
        read_pictures(files[:1], raster, strict=True)
    except DataError as e:
        return f"{counted(len(files), 'picture')}, all blank or unreadable; the first, {Path(e.path).name}: {e.problem}"
    return f"{counted(len(files), 'picture')}, all blank or unreadable"


def _load_pictures(path: Path, raster: RasterConfig) -> Drawings:
    """A picture or a folder of them; every split holds all of them (they are for using a model)."""
    files = [path] if path.is_file() else picture_files(path)
    images, kept = read_pictures(files, raster, strict=path.is_file())
    if len(images) == 0:
        raise DataError(path, f"holds no readable drawing ({_why_none(files, raster)})")
    every = np.arange(len(images))
    left_out = [f.name for f in files if f not in kept]
    meta = {"files": [f.name for f in kept], "skipped_files": left_out, "unread_folders": _picture_subfolders(path)}
    return Drawings(images, dict.fromkeys(SPLITS, every), "picture", path, len(left_out), meta)


def _picture_subfolders(path: Path) -> list[str]:
    """The folders inside picture folder ``path`` with pictures somewhere in them (not read: a
    folder's drawings are the pictures directly in it)."""
    if not path.is_dir():
        return []

    def has_pictures(folder: Path) -> bool:
        return any(f.suffix.lower() in PICTURE_SUFFIXES for f in folder.rglob("*") if not f.name.startswith("."))

    return [d.name for d in sorted(path.iterdir()) if d.is_dir() and not d.name.startswith(".") and has_pictures(d)]


def _rasterise(
    path: Path, fmt: Format, recognized: bool | None, raster: RasterConfig
) -> tuple[np.ndarray, dict[str, np.ndarray] | None, int]:
    """A stroke file's drawings, its own split (sketch-rnn files only) and how many were skipped."""
    splits, skipped = None, 0
    if fmt == "sketchrnn":
        images, splits, skipped = read_sketchrnn(path, raster)
    elif fmt in STROKE_STREAMS:
        images, skipped = read_strokes(path, fmt, recognized, raster)
    else:
        images, skipped = read_bin(path, recognized, raster)
    if len(images) == 0:
        raise DataError(path, "holds no drawings" + (f" ({skipped} malformed skipped)" if skipped else ""))
    return images, splits, skipped


def _announce(drawings: Drawings) -> Drawings:
    """Warn (SheepWarning, pointing at load_drawings' caller) when drawings were skipped."""
    if drawings.skipped:
        noun = "blank or unreadable picture" if drawings.format == "picture" else "malformed drawing"
        names = list(drawings.meta.get("skipped_files", []))
        listed = f": {', '.join(names[:5])}" if names else ""
        listed += f" and {len(names) - 5} more" if len(names) > 5 else ""
        message = f"{drawings.source}: skipped {counted(drawings.skipped, noun)}{listed}"
        warnings.warn(message, SheepWarning, stacklevel=3)
    folders = drawings.meta.get("unread_folders", [])
    if folders:
        listed = ", ".join(folders[:5]) + (f" and {len(folders) - 5} more" if len(folders) > 5 else "")
        warnings.warn(
            f"{drawings.source}: the pictures in {counted(len(folders), 'folder')} inside it are not read ({listed}): "
            "give each folder on its own",
            SheepWarning,
            stacklevel=3,
        )
    return drawings


def seeded_splits(
    n: int, seed: int = 0, fractions: tuple[float, float, float] = SPLIT_FRACTIONS
) -> dict[str, np.ndarray]:
    """A reproducible random train/valid/test partition of ``range(n)``; each split sorted so
    that a memory-mapped file is read in order."""
    perm = np.random.default_rng(seed).permutation(n)
    n_train = int(round(fractions[0] * n))
    n_valid = int(round(fractions[1] * n))
    parts = (perm[:n_train], perm[n_train : n_train + n_valid], perm[n_train + n_valid :])
    return {name: np.sort(p) for name, p in zip(SPLITS, parts, strict=True)}


def _raster_cache_file(
    path: Path, fmt: str, recognized: bool | None, raster: RasterConfig, cache_dir: Path | None
) -> Path:
    st = path.stat()
    ident = f"{path.resolve()}|{st.st_size}|{st.st_mtime_ns}|{fmt}|{recognized}|{raster.cache_key()}"
    digest = hashlib.sha1(ident.encode()).hexdigest()[:16]
    return (cache_dir or default_cache_dir()) / "raster" / f"{path.stem}-{digest}.npz"


def _write_raster_cache(target: Path, images: np.ndarray, splits: dict[str, np.ndarray] | None, skipped: int) -> None:
    arrays = {"images": images, "skipped": np.array(skipped)}
    for name, idx in (splits or {}).items():
        arrays[f"split_{name}"] = idx
    try:
        with atomic_path(target) as tmp:
            with open(tmp, "wb") as f:
                np.savez(f, **arrays)
    except (OSError, OutputError):
        pass  # a read-only cache must not stop the user: the data is loaded, only not cached


def _read_raster_cache(target: Path) -> tuple[np.ndarray, dict[str, np.ndarray] | None, int] | None:
    try:
        with np.load(target, allow_pickle=False) as z:
            images = z["images"]
            splits = {k[len("split_") :]: z[k] for k in z.files if k.startswith("split_")} or None
            return images, splits, int(z["skipped"])
    except Exception:  # a damaged cache file is rebuilt, never fatal
        return None
