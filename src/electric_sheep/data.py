"""Read every official Quick, Draw! format into (N, 28, 28) uint8 drawings with seeded splits.

Formats (detected from the file's first bytes, never only from its name):

- ``bitmap``: Google's ``numpy_bitmap`` ``.npy``, shape (N, 784) uint8, memory-mapped so that
  even the full 345-category set never has to fit in memory.
- ``ndjson``: simplified or raw ``.ndjson``, one JSON drawing a line, streamed and rasterised.
- ``bin``: the binary simplified format (googlecreativelab/quickdraw-dataset, "binary files").
- ``sketchrnn``: sketch-rnn stroke-3 ``.npz`` with keys train/valid/test.
- ``picture``: your own drawings as pictures (PNG, JPEG, GIF, BMP, WebP, TIFF): one file, or a
  folder of them (one drawing each, in file-name order), brought to 28x28 like Google's bitmaps
  (:func:`electric_sheep.pictures.picture_to_bitmap`). Pictures are for using a model: every split
  holds all of them.

Stroke formats are rasterised once (see :mod:`electric_sheep.raster`) and cached on disk, keyed
by the file's identity and the rendering settings, so a second load is a plain ``np.load``.
Images stay uint8; normalisation to float32 [0, 1] happens per batch
(:func:`electric_sheep.infer.as_batch`).
"""

from __future__ import annotations

import difflib
import hashlib
import json
import os
import struct
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Literal

import numpy as np
from numpy.lib import format as npy_format
from tqdm import tqdm

from .errors import DataError, OutputError, SheepWarning
from .fileio import atomic_path
from .npz import npz_names, read_npz
from .pictures import picture_to_bitmap
from .raster import RasterConfig, ink_strokes_to_strokes, render, stroke3_to_strokes

Format = Literal["bitmap", "ndjson", "bin", "sketchrnn", "picture"]
SPLITS = ("train", "valid", "test")
PIXELS = 28 * 28
SPLIT_FRACTIONS = (0.8, 0.1, 0.1)  # train/valid/test for files that come without splits
CACHE_ENV = "ELECTRIC_SHEEP_CACHE"
PROGRESS_AFTER_S = 2.0  # rasterising shows a progress bar once it has taken this long (big files)


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


# --------------------------------------------------------------------------- categories & cache


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
    looks_like_path = os.sep in str(source) or path.suffix != ""
    if looks_like_path:
        raise DataError(path, "no such file")
    category = check_category(str(source))
    for fmt in FILE_FORMATS:  # the order is the preference: bitmaps need no rasterising
        candidate = cached_category_path(category, fmt, cache_dir)
        if candidate.is_file():
            return candidate
    root = cache_dir or default_cache_dir()
    raise DataError(category, f"not downloaded yet (looked in {root}); run `sheep download {category!r}`")


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


# --------------------------------------------------------------------------- format detection

_NPY_MAGIC = b"\x93NUMPY"
_ZIP_MAGIC = b"PK\x03\x04"
_LFS_MAGIC = b"version https://git-lfs"


def _is_picture(head: bytes) -> bool:
    """Does ``head`` start like a picture file Pillow reads (PNG, JPEG, GIF, BMP, WebP, TIFF)?"""
    if head.startswith((b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff", b"GIF87a", b"GIF89a", b"II*\x00", b"MM\x00*")):
        return True
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return True
    # BMP: "BM" then a known DIB header size at byte 14 (two letters alone could begin a .bin key id)
    return head[:2] == b"BM" and len(head) >= 18 and struct.unpack_from("<I", head, 14)[0] in (12, 40, 52, 56, 108, 124)


def picture_files(folder: Path) -> list[Path]:
    """The picture files directly inside ``folder``, in file-name order (the drawings' order)."""
    found = []
    for path in sorted(folder.iterdir()):
        if path.is_file() and not path.name.startswith("."):
            try:
                with open(path, "rb") as f:
                    if _is_picture(f.read(32)):
                        found.append(path)
            except OSError:
                continue
    return found


OUTPUT_SUFFIXES = (".json", ".jsonl", ".csv", ".npy", ".html", ".safetensors")  # what our commands write


def is_picture_folder(folder: Path) -> bool:
    """Does ``folder`` look like a folder of drawings: pictures, and none of the files our commands
    write beside their figures (a folder of figures with JSON and CSV is more likely our output)?"""
    if not folder.is_dir() or not picture_files(folder):
        return False
    return not any(p.suffix.lower() in OUTPUT_SUFFIXES for p in folder.iterdir() if p.is_file())


def detect_format(path: Path) -> Format:
    """Tell the format from the content; raise a one-line DataError for anything unreadable."""
    if path.is_dir():
        if not picture_files(path):
            raise DataError(path, "is a folder without pictures (PNG, JPEG, GIF, BMP, WebP, TIFF), not a data file")
        return "picture"
    try:
        with open(path, "rb") as f:
            head = f.read(4096)
    except FileNotFoundError:
        raise DataError(path, "no such file") from None
    except IsADirectoryError:
        raise DataError(path, "is a folder, not a data file") from None
    except OSError as e:
        raise DataError(path, f"cannot be read ({e.strerror})") from None
    if not head:
        raise DataError(path, "is empty")
    if head.startswith(_NPY_MAGIC):
        return "bitmap"
    if head.startswith(_ZIP_MAGIC):
        return "sketchrnn"
    if _is_picture(head):
        return "picture"
    if head.startswith(_LFS_MAGIC):
        raise DataError(path, "is a Git LFS pointer, not the data (run `git lfs pull` or download the real file)")
    stripped = head.lstrip().lower()
    if stripped.startswith((b"<!doctype html", b"<html", b"<?xml", b"<head")) or b"<html" in stripped[:512]:
        raise DataError(path, "is an HTML page, not data (a web page was saved instead of the raw file)")
    if stripped.startswith(b"{"):
        return "ndjson"
    if _looks_like_bin(head):
        return "bin"
    raise DataError(
        path, "unrecognised format (expected Quick, Draw! .npy, .ndjson, .bin, sketch-rnn .npz or a picture)"
    )


def _looks_like_bin(head: bytes) -> bool:
    """Does ``head`` start with a plausible binary-format drawing record?"""
    try:
        _key, country, recognized, _ts, n_strokes = struct.unpack_from("<Q2sbIH", head, 0)
    except struct.error:
        return False
    plausible_country = all(65 <= c <= 90 or c in (0, 32) for c in country)  # "GB", "US", or blank
    return plausible_country and recognized in (0, 1) and 0 < n_strokes < 2000


def check_file(path: Path) -> Format:
    """Check that ``path`` is a readable data file: cheaply (header and first record) except for
    sketch-rnn files, whose arrays are parsed whole since a pickle stream has no cheap check."""
    fmt = detect_format(path)
    if fmt == "bitmap":
        _load_bitmap(path)  # memory-mapped: reads the header, checks shape and size
    elif fmt == "sketchrnn":
        if not read_npz(path, SPLITS):  # parsed whole, without pickle: a hostile file is refused here
            raise DataError(path, "has none of the keys train/valid/test")
    elif fmt == "picture":
        _read_pictures(path if path.is_file() else picture_files(path)[0], strict=True)
    elif fmt == "ndjson":
        first = next(iter_ndjson(path), None)
        if first is None or first[0] is None:
            raise DataError(path, "first line is not a Quick, Draw! JSON drawing")
    else:
        next(iter_bin(path), None)
    return fmt


# --------------------------------------------------------------------------- loaders


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
    if fmt == "bitmap":
        images = _load_bitmap(path)
        return Drawings(images, seeded_splits(len(images), seed), "bitmap", path)
    if fmt == "picture":  # a few of the user's own: quick to convert, not cached
        files = [path] if path.is_file() else picture_files(path)
        images, kept = _read_pictures(files, raster, strict=path.is_file())
        if len(images) == 0:
            raise DataError(path, f"holds no readable drawing ({len(files)} pictures, all blank or unreadable)")
        every = np.arange(len(images))  # a picture is for using a model, not for holding out
        names = [f.name for f in kept]
        left_out = [f.name for f in files if f not in kept]
        meta = {"files": names, "skipped_files": left_out}
        return _announce(Drawings(images, dict.fromkeys(SPLITS, every), "picture", path, len(left_out), meta))
    cache_file = _raster_cache_file(path, fmt, recognized, raster, cache_dir)
    if use_cache and cache_file.is_file():
        cached = _read_raster_cache(cache_file)
        if cached is not None:
            images, splits, skipped = cached
            if splits is None:
                splits = seeded_splits(len(images), seed)
            return _announce(Drawings(images, splits, fmt, path, skipped=skipped, meta={"cached": str(cache_file)}))
    splits: dict[str, np.ndarray] | None = None  # only sketch-rnn files carry their own split
    if fmt == "sketchrnn":
        images, splits = _load_sketchrnn(path, raster)
        skipped = 0
    elif fmt == "ndjson":
        images, skipped = _load_ndjson(path, recognized, raster)
    else:
        images, skipped = _load_bin(path, recognized, raster)
    if len(images) == 0:
        raise DataError(path, "holds no drawings" + (f" ({skipped} malformed skipped)" if skipped else ""))
    if use_cache:
        _write_raster_cache(cache_file, images, splits, skipped)
    if splits is None:
        splits = seeded_splits(len(images), seed)
    return _announce(Drawings(images, splits, fmt, path, skipped=skipped))


def _announce(drawings: Drawings) -> Drawings:
    """Warn (SheepWarning, pointing at load_drawings' caller) when drawings were skipped."""
    if drawings.skipped:
        what = "blank or unreadable picture(s)" if drawings.format == "picture" else "malformed drawing(s)"
        names = list(drawings.meta.get("skipped_files", []))
        listed = f": {', '.join(names[:5])}" if names else ""
        listed += f" and {len(names) - 5} more" if len(names) > 5 else ""
        warnings.warn(f"{drawings.source}: skipped {drawings.skipped} {what}{listed}", SheepWarning, stacklevel=3)
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


def _load_bitmap(path: Path) -> np.ndarray:
    """Memory-map a ``numpy_bitmap`` file and check it is (N, 784) uint8."""
    if _npy_holds_objects(path):
        raise DataError(path, "holds Python objects (dtype object), which would need pickle to read: refused")
    try:
        arr = np.load(path, mmap_mode="r", allow_pickle=False)
    except ValueError as e:
        raise DataError(path, f"truncated or corrupt .npy file ({e})") from None
    except OSError as e:
        raise DataError(path, f"cannot be read as .npy ({e})") from None
    if arr.dtype != np.uint8:
        raise DataError(path, f"dtype is {arr.dtype}, expected uint8 (0 = background, 255 = ink)")
    rows_of_pixels = arr.ndim == 2 and arr.shape[1] == PIXELS  # the official layout
    images = arr.ndim == 3 and arr.shape[1:] == (28, 28)
    if not (rows_of_pixels or images):
        raise DataError(path, f"shape is {tuple(arr.shape)}, expected (N, 784) rows of 28x28 pixels")
    if len(arr) == 0:  # as for the stroke formats: nothing to train on, show or score
        raise DataError(path, "holds no drawings")
    return arr.reshape(-1, 28, 28)


def _npy_holds_objects(path: Path) -> bool:
    """Does the ``.npy`` header announce an object dtype? (False when the header is unreadable:
    np.load then says what is wrong.)"""
    try:
        with open(path, "rb") as f:
            version = npy_format.read_magic(f)
            read = npy_format.read_array_header_1_0 if version == (1, 0) else npy_format.read_array_header_2_0
            return read(f)[2].hasobject
    except (ValueError, OSError, EOFError):
        return False


def _read_pictures(
    files: Path | list[Path], raster: RasterConfig = RasterConfig(), strict: bool = False
) -> tuple[np.ndarray, list[Path]]:
    """Convert picture files to (N, 28, 28) uint8 drawings; return them and the files kept.

    A blank or unreadable picture is skipped, or with ``strict`` (a single file given as DATA) an
    error naming it."""
    images, kept = [], []
    files = [files] if isinstance(files, Path) else files
    with _progress("reading pictures", len(files)) as bar:
        for file in files:
            bar.update()
            bitmap = _read_picture(file, raster, strict)
            if bitmap is not None:
                images.append(bitmap)
                kept.append(file)
    side = raster.side
    return (np.stack(images) if images else np.zeros((0, side, side), np.uint8)), kept


def _read_picture(file: Path, raster: RasterConfig, strict: bool) -> np.ndarray | None:
    """One picture file as a bitmap; None (with ``strict``, an error) when blank or unreadable."""
    from PIL import Image, ImageOps, UnidentifiedImageError

    try:
        with Image.open(file) as picture:  # reads the header only: the size is known before decoding
            _reduce_on_decode(picture)
            upright = ImageOps.exif_transpose(picture)  # a phone's photo is stored turned, with a tag
            bitmap = picture_to_bitmap(upright, raster)
    except (OSError, UnidentifiedImageError, Image.DecompressionBombError, ValueError) as e:
        if strict:
            raise DataError(file, f"cannot be read as a picture ({e})") from None
        return None
    if bitmap is None and strict:
        raise DataError(file, "shows no drawing (blank: no ink stands out from the paper)")
    return bitmap


MAX_PICTURE_PIXELS = 40_000_000  # decoding memory grows with the pixels: above this, refused (docs/pictures.md)


def _reduce_on_decode(picture) -> None:
    """Keep a picture's decoding within MAX_PICTURE_PIXELS: a larger JPEG is decoded at 1/2, 1/4
    or 1/8 scale (``Image.draft``); any other picture that large is refused (a ValueError)."""
    pixels = picture.width * picture.height
    if pixels <= MAX_PICTURE_PIXELS:
        return
    if picture.format == "JPEG":
        scale = next((s for s in (2, 4, 8) if pixels / s**2 <= MAX_PICTURE_PIXELS), 8)
        picture.draft(picture.mode, (picture.width // scale, picture.height // scale))
    if picture.width * picture.height > MAX_PICTURE_PIXELS:
        raise ValueError(
            f"{picture.width} x {picture.height} pixels is over the limit of {MAX_PICTURE_PIXELS // 10**6} "
            "megapixels; scale it down first"
        )


def _load_sketchrnn(path: Path, raster: RasterConfig) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Rasterise a sketch-rnn ``.npz``, keeping its own train/valid/test split."""
    parts = read_npz(path, SPLITS)  # object arrays rebuilt without pickle: no file can run code
    if not parts:
        raise DataError(path, f"has none of the keys train/valid/test (has {', '.join(npz_names(path)) or 'none'})")
    images, splits, start = [], {}, 0
    for name, drawings in parts.items():
        try:
            rendered = []
            with _progress(f"rasterising {name}", len(drawings)) as bar:
                for d in drawings:
                    rendered.append(render(stroke3_to_strokes(d), raster))
                    bar.update()
        except (IndexError, ValueError, TypeError) as e:
            raise DataError(path, f"split {name!r} is not stroke-3 data ({e})") from None
        images.extend(rendered)
        splits[name] = np.arange(start, start + len(rendered))
        start += len(rendered)
    stacked = np.stack(images) if images else np.zeros((0, raster.side, raster.side), np.uint8)
    return stacked, splits


def iter_ndjson(path: Path, recognized: bool | None = None) -> Iterator[tuple[dict | None, int]]:
    """Stream an ``.ndjson`` file: yield (record, line number), record None for a bad line."""
    with open(path, "rb") as f:
        for lineno, line in enumerate(f, start=1):
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
                if not isinstance(rec, dict) or not isinstance(rec.get("drawing"), list):
                    raise ValueError("no 'drawing' list")
            except (ValueError, RecursionError):  # not JSON, not a drawing, or nested past Python's limit
                yield None, lineno
                continue
            if recognized is not None and bool(rec.get("recognized", True)) != recognized:
                continue
            yield rec, lineno


def _load_ndjson(path: Path, recognized: bool | None, raster: RasterConfig) -> tuple[np.ndarray, int]:
    """Rasterise a simplified or raw ``.ndjson`` file line by line; count malformed lines."""
    images, skipped = [], 0
    with _progress("rasterising") as bar:
        for rec, _lineno in iter_ndjson(path, recognized):
            bar.update()
            try:
                strokes = ink_strokes_to_strokes(rec["drawing"]) if rec is not None else []
            except (TypeError, ValueError, IndexError, OverflowError):  # e.g. a coordinate of 400 digits
                strokes = []
            if _drawable(strokes):
                images.append(render(strokes, raster))
            else:  # a malformed line, or a drawing without a point
                skipped += 1
    stacked = np.stack(images) if images else np.zeros((0, raster.side, raster.side), np.uint8)
    return stacked, skipped


def iter_bin(path: Path) -> Iterator[dict]:
    """Parse the binary simplified format record by record.

    Layout (little-endian): key_id u64, countrycode 2 chars, recognized i8, timestamp u32,
    n_strokes u16, then per stroke n_points u16, x u8[n_points], y u8[n_points].
    """
    data = path.read_bytes()
    pos, n = 0, len(data)
    while pos < n:
        start = pos
        try:
            key, country, recognized, ts, n_strokes = struct.unpack_from("<Q2sbIH", data, pos)
            pos += 17
            strokes = []
            for _ in range(n_strokes):
                (n_points,) = struct.unpack_from("<H", data, pos)
                pos += 2
                if pos + 2 * n_points > n:
                    raise struct.error("stroke runs past the end")
                xy = np.frombuffer(data, np.uint8, 2 * n_points, pos).reshape(2, n_points)
                pos += 2 * n_points
                strokes.append(xy.T.astype(np.float64))
        except struct.error:
            raise DataError(path, f"truncated or corrupt .bin drawing at byte {start}") from None
        yield {
            "key_id": key,
            "countrycode": country.decode("ascii", "replace"),
            "recognized": bool(recognized),
            "timestamp": ts,
            "strokes": strokes,
        }


def _progress(desc: str, total: int | None = None) -> tqdm:
    """A progress bar on stderr that appears only if the work lasts over PROGRESS_AFTER_S (a full
    category file takes minutes to rasterise; a small one stays quiet). Use it in a ``with``, so
    that it is closed however the loop ends, an error included; call ``update()`` per drawing."""
    return tqdm(desc=desc, total=total, unit="drawing", delay=PROGRESS_AFTER_S, leave=False)


def _drawable(strokes: list[np.ndarray]) -> bool:
    """At least one point and only finite coordinates: anything else would render as a blank."""
    points = [s for s in strokes if len(s)]
    return bool(points) and all(np.isfinite(s).all() for s in points)


def _load_bin(path: Path, recognized: bool | None, raster: RasterConfig) -> tuple[np.ndarray, int]:
    """Rasterise a ``.bin`` file record by record; count drawings without a single point as skipped."""
    images, skipped = [], 0
    with _progress("rasterising") as bar:
        for rec in iter_bin(path):
            bar.update()
            if recognized is not None and rec["recognized"] != recognized:
                continue
            if _drawable(rec["strokes"]):
                images.append(render(rec["strokes"], raster))
            else:
                skipped += 1
    stacked = np.stack(images) if images else np.zeros((0, raster.side, raster.side), np.uint8)
    return stacked, skipped


# --------------------------------------------------------------------------- raster cache


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
