"""The Quick, Draw! file formats: which one a file is (from its first bytes, never only from its
name), and the readers of those that are not strokes streamed one at a time (:mod:`.strokes`):

- ``bitmap``: Google's ``numpy_bitmap`` ``.npy``, shape (N, 784) uint8, memory-mapped so that
  even the full 345-category set never has to fit in memory.
- ``ndjson``, ``csv``, ``bin``: simplified or raw ``.ndjson``, Kaggle's "Doodle Recognition
  Challenge" ``.csv`` and the binary simplified ``.bin``, plain or gzipped (:mod:`.strokes`).
- ``sketchrnn``: sketch-rnn stroke-3 ``.npz`` with keys train/valid/test.
- ``picture``: your own drawings as pictures (PICTURE_KINDS): one file, or a
  folder of them (one drawing each, in file-name order), brought to 28x28 like Google's bitmaps
  (:func:`electric_sheep.data.pictures.picture_to_bitmap`).
"""

from __future__ import annotations

import functools
import struct
import warnings
from pathlib import Path
from typing import Literal

import numpy as np
from numpy.lib import format as npy_format

from ..errors import DataError
from ..runs.fileio import NPY_ERRORS, read_npy
from .npz import npz_names, read_npz
from .pictures import picture_to_bitmap
from .raster import RasterConfig, render, stroke3_to_strokes
from .strokes import CSV_DRAWING, GZIP_MAGIC, STROKE_STREAMS, drawable, iter_bin, open_data, progress

# "several": files of different formats used as one set (data.sources.combine)
Format = Literal["bitmap", "ndjson", "bin", "csv", "sketchrnn", "picture", "several"]
FLAGGED: tuple[Format, ...] = ("ndjson", "bin", "csv")  # the formats that say whether the game recognised a drawing

SPLITS = ("train", "valid", "test")
PIXELS = 28 * 28
BITMAPS_GO = "28x28 bitmaps go in a .npy of (N, 784) uint8"
BACKGROUND_SAMPLE = 1000  # drawings read to tell ink on paper from paper on ink: a memory map's first pages
FULL_INK = 250  # pixels this dark are ink, or, over most of a canvas, paper saved as 255
DTYPE_HINTS = {  # numpy dtype kind -> how to convert such an array
    "f": "; save floats in [0, 1] as (x * 255).round().astype(np.uint8)",
    "b": "; save booleans (True = ink) as x.astype(np.uint8) * 255",
    "i": "; save integers 0-255 as x.astype(np.uint8)",
    "u": "; save integers 0-255 as x.astype(np.uint8)",
}


_NPY_MAGIC = b"\x93NUMPY"


_ZIP_MAGIC = b"PK\x03\x04"


_LFS_MAGIC = b"version https://git-lfs"


def _is_picture(head: bytes) -> bool:
    """Does ``head`` start like a picture file (PICTURE_KINDS)?"""
    if head.startswith((b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff", b"GIF87a", b"GIF89a", b"II*\x00", b"MM\x00*")):
        return True
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return True
    if _is_heif(head) or (head[4:8] == b"ftyp" and head[8:12] in (b"avif", b"avis")):
        return True
    # BMP: "BM" then a known DIB header size at byte 14 (two letters alone could begin a .bin key id)
    return head[:2] == b"BM" and len(head) >= 18 and struct.unpack_from("<I", head, 14)[0] in (12, 40, 52, 56, 108, 124)


def _is_heif(head: bytes) -> bool:
    """Does ``head`` start like a HEIC/HEIF picture (a phone's photo; an ISO media file's brand)?"""
    return head[4:8] == b"ftyp" and head[8:12] in (b"heic", b"heix", b"hevc", b"hevx", b"heim", b"heis", b"mif1")


PICTURE_SUFFIXES = (".png", ".jpg", ".jpeg", ".gif", ".bmp", ".webp", ".tif", ".tiff", ".avif", ".heic", ".heif")
PICTURE_KINDS = "PNG, JPEG, GIF, BMP, WebP, TIFF, AVIF, HEIC"
# Pillow's readers a picture is opened with, never another: its EPS reader, say, hands the file to
# Ghostscript, a PostScript interpreter, which would run the program a file named x.png holds
PICTURE_READERS = ("PNG", "JPEG", "GIF", "BMP", "WEBP", "TIFF", "AVIF", "HEIF")


def picture_files(folder: Path) -> list[Path]:
    """The picture files directly inside ``folder``, in file-name order (the drawings' order): those
    that start like one, and those named like one (an empty or damaged one is then reported as
    unreadable, not passed over in silence)."""
    found = []
    for path in sorted(folder.iterdir()):
        if path.is_file() and not path.name.startswith("."):
            try:
                with open(path, "rb") as f:
                    if _is_picture(f.read(32)) or path.suffix.lower() in PICTURE_SUFFIXES:
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
            raise DataError(path, f"is a folder without pictures ({PICTURE_KINDS}), not a data file")
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
    if head.startswith(GZIP_MAGIC):
        return _gzipped_format(path)
    if head.startswith(_NPY_MAGIC):
        return "bitmap"
    if head.startswith(_ZIP_MAGIC):
        return "sketchrnn"
    if _is_picture(head):
        return "picture"
    if head.startswith(_LFS_MAGIC):
        raise DataError(path, "is a Git LFS pointer, not the data (run `git lfs pull` or download the real file)")
    stripped = head.lstrip().lower()
    page = stripped.startswith(b"<!doctype html") or b"<html" in stripped
    if b"<svg" in stripped and not page:  # Inkscape's and drawing apps' start <?xml, as pages can
        raise DataError(path, "is an SVG drawing: vector pictures are not read; export it as PNG first")
    if stripped.startswith((b"<!doctype html", b"<html", b"<?xml", b"<head")) or b"<html" in stripped[:512]:
        raise DataError(path, "is an HTML page, not data (a web page was saved instead of the raw file)")
    if fmt := _stroke_format(head):
        return fmt
    raise DataError(
        path, "unrecognised format (expected Quick, Draw! .npy, .ndjson, .bin, Kaggle .csv, sketch-rnn .npz, a picture)"
    )


def _gzipped_format(path: Path) -> Format:
    """The format of a gzipped file (``.ndjson.gz``, ``.bin.gz``), read as it is decompressed."""
    with open_data(path) as f:  # a damaged gzip is a DataError naming it
        head = f.read(4096)
    if head.startswith(_NPY_MAGIC):
        raise DataError(
            path, "is a gzipped .npy: gunzip it first (a .npy is memory-mapped, which a compressed file cannot be)"
        )
    if fmt := _stroke_format(head):
        return fmt
    raise DataError(path, "is gzipped, but not a Quick, Draw! .ndjson, .csv or .bin inside")


def _stroke_format(head: bytes) -> Format | None:
    """Which of the streamed stroke formats ``head`` starts as, if any."""
    if head.lstrip().startswith(b"{"):
        return "ndjson"
    if _looks_like_csv(head):
        return "csv"
    if _looks_like_bin(head):
        return "bin"
    return None


def _looks_like_csv(head: bytes) -> bool:
    """Does ``head`` start with a Kaggle Quick, Draw! CSV header (a drawing column and an id)?"""
    columns = head.split(b"\n", 1)[0].strip().lstrip(b"\xef\xbb\xbf").split(b",")
    return CSV_DRAWING.encode() in columns and bool({b"key_id", b"word"} & set(columns))


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
        read_bitmap(path)  # memory-mapped: reads the header, checks shape and size
    elif fmt == "sketchrnn":
        if not read_npz(path, SPLITS):  # parsed whole, without pickle: a hostile file is refused here
            raise _no_splits(path)
    elif fmt == "picture":
        read_pictures(path if path.is_file() else picture_files(path)[0], strict=True)
    elif fmt in STROKE_STREAMS:
        first = next(STROKE_STREAMS[fmt](path), None)
        if first is None or first[0] is None:
            raise DataError(path, f"first {'row' if fmt == 'csv' else 'line'} is not a Quick, Draw! drawing")
    else:
        next(iter_bin(path), None)
    return fmt


def read_bitmap(path: Path) -> np.ndarray:
    """Memory-map a ``numpy_bitmap`` file and check it is uint8 drawings: (N, 784), or (N, 28, 28) with or
    without a channel axis of 1."""
    if _npy_holds_objects(path):
        raise DataError(path, "holds Python objects (dtype object), which would need pickle to read: refused")
    arr = read_npy(path, "file of drawings", mmap_mode="r")
    if arr.dtype != np.uint8:
        hint = DTYPE_HINTS.get(arr.dtype.kind, "")  # say how to convert, not only what is wrong
        raise DataError(path, f"dtype is {arr.dtype}, expected uint8 (0 = background, 255 = ink){hint}")
    # the official (N, 784), or images (N, 28, 28) with or without a channel axis of 1 (Keras, PyTorch)
    drawing = tuple(d for d in arr.shape[1:] if d != 1)
    if arr.ndim < 2 or drawing not in ((PIXELS,), (28, 28)):
        single = " (one drawing? save it as x.reshape(1, 784))" if arr.size == PIXELS else ""
        raise DataError(path, f"shape is {tuple(arr.shape)}, expected (N, 784) rows of 28x28 pixels{single}")
    if len(arr) == 0:  # as for the stroke formats: nothing to train on, show or score
        raise DataError(path, "holds no drawings")
    return arr.reshape(-1, 28, 28)


def light_background(images: np.ndarray) -> float | None:
    """The share of full-ink pixels (255) in the first drawings when over half, else None. A line
    drawing covers a small part of its canvas, so such a file was most likely saved dark on light
    (255 = paper), which every model and score here reads as a black square."""
    share = float(np.mean(np.asarray(images[:BACKGROUND_SAMPLE]) >= FULL_INK))
    return share if share > 0.5 else None


def _npy_holds_objects(path: Path) -> bool:
    """Does the ``.npy`` header announce an object dtype? (False when the header is unreadable:
    np.load then says what is wrong.)"""
    try:
        with open(path, "rb") as f:
            version = npy_format.read_magic(f)
            read = npy_format.read_array_header_1_0 if version == (1, 0) else npy_format.read_array_header_2_0
            return read(f)[2].hasobject
    except NPY_ERRORS:
        return False


def read_pictures(
    files: Path | list[Path], raster: RasterConfig = RasterConfig(), strict: bool = False
) -> tuple[np.ndarray, list[Path]]:
    """Convert picture files to (N, 28, 28) uint8 drawings; return them and the files kept.

    A blank or unreadable picture is skipped, or with ``strict`` (a single file given as DATA) an
    error naming it."""
    images, kept = [], []
    files = [files] if isinstance(files, Path) else files
    with progress("reading pictures", len(files)) as bar:
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
    from PIL import Image, UnidentifiedImageError

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # Pillow's notes on a damaged file: it is read or refused below
            bitmap = _decode_picture(file, raster)
    # Pillow reports a broken PNG chunk as a SyntaxError
    except (OSError, UnidentifiedImageError, Image.DecompressionBombError, ValueError, SyntaxError) as e:
        if strict:
            raise DataError(file, f"cannot be read as a picture ({_why_unread(file, e)})") from None
        return None
    if bitmap is None and strict:
        raise DataError(file, "shows no drawing (blank: no ink stands out from the paper)")
    return bitmap


def _decode_picture(file: Path, raster: RasterConfig) -> np.ndarray | None:
    from PIL import Image, ImageOps

    _heif_opener()  # once: Pillow learns HEIC where pillow-heif is installed
    Image.init()
    readers = [name for name in PICTURE_READERS if name in Image.OPEN]  # those this Pillow has
    # opening reads the header only: the size is known before decoding
    with Image.open(file, formats=readers) as picture:
        _reduce_on_decode(picture)
        upright = ImageOps.exif_transpose(picture)  # a phone's photo is stored turned, with a tag
        return picture_to_bitmap(upright, raster)


def _why_unread(file: Path, error: Exception) -> str:
    """What to tell about a picture Pillow could not read: for a HEIC photo without pillow-heif, what to do."""
    try:
        with open(file, "rb") as f:
            heic = _is_heif(f.read(16))
    except OSError:
        heic = False
    if heic and not _heif_opener():
        return "a HEIC photo: reading it needs pillow-heif (pip install pillow-heif), or save it as JPEG"
    return str(error)


@functools.cache
def _heif_opener() -> bool:
    """Teach Pillow HEIC/HEIF through pillow-heif, where it is installed (it is not a requirement)."""
    try:
        import pillow_heif
    except ImportError:
        return False
    pillow_heif.register_heif_opener()
    return True


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


def _no_splits(path: Path) -> DataError:
    """The error for an .npz without sketch-rnn's splits: what it holds, and where bitmaps go."""
    has = ", ".join(npz_names(path)) or "none"
    return DataError(path, f"has none of sketch-rnn's keys {'/'.join(SPLITS)} (has {has}); {BITMAPS_GO}")


def read_sketchrnn(path: Path, raster: RasterConfig) -> tuple[np.ndarray, dict[str, np.ndarray], int]:
    """Rasterise a sketch-rnn ``.npz``, keeping its own train/valid/test split; count the drawings
    without a drawable point (skipped, as in the other stroke formats)."""
    parts = read_npz(path, SPLITS)  # object arrays rebuilt without pickle: no file can run code
    if not parts:
        raise _no_splits(path)
    images, splits, start, skipped = [], {}, 0, 0
    for name, drawings in parts.items():
        try:
            rendered = []
            with progress(f"rasterising {name}", len(drawings)) as bar:
                for d in drawings:
                    strokes = stroke3_to_strokes(d)
                    if drawable(strokes):
                        rendered.append(render(strokes, raster))
                    else:  # no point, or a coordinate that is not finite
                        skipped += 1
                    bar.update()
        except (IndexError, ValueError, TypeError) as e:
            shape = getattr(drawings, "shape", ())[1:]
            hint = f"; {BITMAPS_GO}" if shape in ((28, 28), (PIXELS,)) else ""
            raise DataError(path, f"split {name!r} is not stroke-3 data ({e}){hint}") from None
        images.extend(rendered)
        splits[name] = np.arange(start, start + len(rendered))
        start += len(rendered)
    stacked = np.stack(images) if images else np.zeros((0, raster.side, raster.side), np.uint8)
    return stacked, splits, skipped
