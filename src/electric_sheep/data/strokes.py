"""Drawings as strokes, streamed one at a time and rasterised: simplified or raw ``.ndjson``, Kaggle's
``.csv`` and the binary ``.bin``, each plain or gzipped (decompressed as it is read, a gzip bomb
refused as soon as it shows). Which format a file is: :mod:`.formats`."""

from __future__ import annotations

import contextlib
import csv
import gzip
import json
import math
import struct
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import BinaryIO

import numpy as np
from tqdm import tqdm

from ..errors import DataError
from .raster import RasterConfig, ink_strokes_to_strokes, render

PROGRESS_AFTER_S = 2.0  # rasterising shows a progress bar once it has taken this long (big files)


def progress(desc: str, total: int | None = None) -> tqdm:
    """A progress bar on stderr that appears only if the work lasts over PROGRESS_AFTER_S (a full
    category file takes minutes to rasterise; a small one stays quiet). Use it in a ``with``, so
    that it is closed however the loop ends, an error included; call ``update()`` per drawing."""
    return tqdm(desc=desc, total=total, unit="drawing", delay=PROGRESS_AFTER_S, leave=False)


def drawable(strokes: list[np.ndarray]) -> bool:
    """At least one point and only finite coordinates: anything else would render as a blank."""
    points = [s for s in strokes if len(s)]
    return bool(points) and all(np.isfinite(s).all() for s in points)


GZIP_MAGIC = b"\x1f\x8b"
# Drawings' JSON shrinks about 3x under gzip, .bin records less: one that grows 20x is not drawings.
MAX_GZIP_RATIO = 20


@contextlib.contextmanager
def open_data(path: Path) -> Iterator[BinaryIO]:
    """``path``'s data as a binary file, decompressed as it is read when gzipped; a damaged file
    (cut short, a flipped byte) is a DataError naming it, wherever the reading stops."""
    with open(path, "rb") as raw:
        gzipped = raw.read(2) == GZIP_MAGIC
        raw.seek(0)
        try:
            with gzip.GzipFile(fileobj=raw) if gzipped else contextlib.nullcontext(raw) as f:
                yield f
        except (OSError, EOFError, zlib.error) as e:  # gzip's BadGzipFile is an OSError
            raise DataError(path, f"is a damaged gzip file ({e})" if gzipped else f"cannot be read ({e})") from None


def _unpacked_limit(path: Path, f: BinaryIO) -> float:
    """How many bytes ``f`` (opened by :func:`open_data`) may give before it is a gzip bomb, not
    drawings: no limit for a plain file."""
    return MAX_GZIP_RATIO * max(path.stat().st_size, 2**20) if isinstance(f, gzip.GzipFile) else math.inf


def _gzip_bomb(path: Path) -> DataError:
    return DataError(path, f"unpacks to over {MAX_GZIP_RATIO} times its size: not drawings (a gzip bomb?)")


# A raw drawing's line takes tens of KB: one of MBs is not a drawing, and is skipped without being
# held, so that one line cannot take all the memory.
MAX_LINE_BYTES = 4 * 2**20


Records = Iterator[tuple[dict | None, int]]  # (a drawing's record, or None for a bad one; its line or row)


def iter_ndjson(path: Path, recognized: bool | None = None) -> Records:
    """Stream an ``.ndjson`` file: yield (record, line number), record None for a bad line."""
    with open_data(path) as f:
        for lineno, line in enumerate(_lines(f, path), start=1):
            if line is None:
                yield None, lineno
                continue
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


def _lines(f: BinaryIO, path: Path) -> Iterator[bytes | None]:
    """The lines of a binary file; None for one longer than MAX_LINE_BYTES, read past in pieces;
    a gzip bomb refused as soon as it has given more than its limit, even within one line."""
    limit = _unpacked_limit(path, f)

    def read(size: int) -> bytes:
        piece = f.readline(size)
        if limit < math.inf and f.tell() > limit:
            raise _gzip_bomb(path)
        return piece

    while line := read(MAX_LINE_BYTES + 1):
        if len(line) <= MAX_LINE_BYTES or line.endswith(b"\n"):
            yield line
            continue
        while (rest := read(MAX_LINE_BYTES)) and not rest.endswith(b"\n"):
            pass
        yield None


CSV_DRAWING = "drawing"  # the Kaggle CSVs' column of strokes, JSON as in the simplified .ndjson


def iter_csv(path: Path, recognized: bool | None = None) -> Records:
    """Stream a Kaggle Quick, Draw! ``.csv``: yield (record, row number) as :func:`iter_ndjson`
    does, the record's ``drawing`` parsed from its JSON column; None for a bad row. Rows are lines
    (none of Kaggle's spans two), so one past MAX_LINE_BYTES is skipped unread. A file without a
    ``recognized`` column (Kaggle's test set) counts every drawing as recognised."""
    with open_data(path) as f:
        lines = _lines(f, path)
        header = _csv_row(next(lines, b"") or b"", "utf-8-sig")
        if CSV_DRAWING not in header:
            raise DataError(path, f"its first row names no {CSV_DRAWING!r} column within {MAX_LINE_BYTES:,} bytes")
        for number, line in enumerate(lines, start=1):
            if line is not None and not line.strip():
                continue
            try:
                row = dict(zip(header, _csv_row(line), strict=True))  # a row of other length is broken
                rec = {"drawing": json.loads(row.get(CSV_DRAWING)), "recognized": row.get("recognized", "True")}
                if not isinstance(rec["drawing"], list):
                    raise ValueError("no 'drawing' list")
            except (csv.Error, ValueError, TypeError, RecursionError):  # a broken or over-long row
                yield None, number
                continue
            if recognized is not None and (rec["recognized"].strip().lower() == "true") != recognized:
                continue
            yield rec, number


def _csv_row(line: bytes | None, encoding: str = "utf-8") -> list[str]:
    """The fields of one CSV line (a ValueError for None, a line past MAX_LINE_BYTES)."""
    if line is None:
        raise ValueError(f"a row over {MAX_LINE_BYTES:,} bytes")
    return next(csv.reader([line.decode(encoding, "replace")]), [])


STROKE_STREAMS: dict[str, Callable[..., Records]] = {"ndjson": iter_ndjson, "csv": iter_csv}


def read_strokes(path: Path, fmt: str, recognized: bool | None, raster: RasterConfig) -> tuple[np.ndarray, int]:
    """Rasterise a simplified or raw ``.ndjson`` or a Kaggle ``.csv`` drawing by drawing; count
    malformed ones."""
    return _rasterise((_ink_strokes(rec) for rec, _ in STROKE_STREAMS[fmt](path, recognized)), raster)


def _ink_strokes(rec: dict | None) -> list[np.ndarray]:
    """A record's strokes as arrays; none for a bad record."""
    try:
        return ink_strokes_to_strokes(rec["drawing"]) if rec is not None else []
    except (TypeError, ValueError, LookupError, OverflowError):  # e.g. a stroke as a dict, a 400-digit number
        return []


def _rasterise(drawings: Iterator[list[np.ndarray]], raster: RasterConfig) -> tuple[np.ndarray, int]:
    """(the drawings rendered, how many were skipped: malformed, or without a single point)."""
    images, skipped = [], 0
    with progress("rasterising") as bar:
        for strokes in drawings:
            bar.update()
            if drawable(strokes):
                images.append(render(strokes, raster))
            else:
                skipped += 1
    stacked = np.stack(images) if images else np.zeros((0, raster.side, raster.side), np.uint8)
    return stacked, skipped


def iter_bin(path: Path) -> Iterator[dict]:
    """Parse the binary simplified format record by record.

    Layout (little-endian): key_id u64, countrycode 2 chars, recognized i8, timestamp u32,
    n_strokes u16, then per stroke n_points u16, x u8[n_points], y u8[n_points].
    """
    with open_data(path) as f:
        limit = _unpacked_limit(path, f)
        data = f.read() if limit == math.inf else f.read(int(limit) + 1)
        if len(data) > limit:
            raise _gzip_bomb(path)
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


def read_bin(path: Path, recognized: bool | None, raster: RasterConfig) -> tuple[np.ndarray, int]:
    """Rasterise a ``.bin`` file record by record; count drawings without a single point as skipped."""
    wanted = (rec for rec in iter_bin(path) if recognized is None or rec["recognized"] == recognized)
    return _rasterise((rec["strokes"] for rec in wanted), raster)
