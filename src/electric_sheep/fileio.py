"""Atomic file writes: a crash or Ctrl-C never leaves a half-written file behind.

Everything electric-sheep saves goes through :func:`atomic_path`: write to a temporary name in
the same folder, then ``os.replace`` it over the target (atomic on POSIX and Windows).
"""

from __future__ import annotations

import contextlib
import csv
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from .errors import OutputError


def ensure_dir(folder: str | Path) -> Path:
    """Create ``folder`` (and its parents) if needed; an :class:`OutputError` naming it if not possible."""
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError):  # a file where the folder or one of its parents goes
        raise OutputError(folder, "cannot be created as a folder: a file is in the way") from None
    except OSError as e:
        raise OutputError(folder, f"cannot be created ({e.strerror or e})") from None
    return folder


@contextlib.contextmanager
def atomic_path(target: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside ``target``; on success it is renamed over ``target``.

    Failing to write (a folder of that name, no permission, a full disk) raises an
    :class:`OutputError` naming ``target``, and whatever was at ``target`` is left as it was.
    """
    target = Path(target)
    if target.is_dir():
        raise OutputError(target, "is a folder; give the name of a file to write")
    ensure_dir(target.parent)
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    except OSError as e:
        raise OutputError(target, f"cannot be written ({e.strerror or e})") from None
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.chmod(tmp_path, 0o666 & ~_umask())  # mkstemp makes 0600 files; give the usual mode
        os.replace(tmp_path, target)
    except OSError as e:  # e.g. the disk filled up while writing
        raise OutputError(target, f"cannot be written ({e.strerror or e})") from None
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_text(target: str | Path, text: str) -> Path:
    """Write ``text`` to ``target`` atomically."""
    with atomic_path(target) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return Path(target)


def write_json(target: str | Path, obj: Any) -> Path:
    """Write ``obj`` as indented JSON atomically."""
    return write_text(target, json.dumps(obj, indent=2, sort_keys=False) + "\n")


def write_npy(target: str | Path, array: np.ndarray) -> Path:
    """Save one array as ``.npy`` atomically."""
    with atomic_path(target) as tmp, open(tmp, "wb") as f:
        np.save(f, array)
    return Path(target)


def write_csv(target: str | Path, header: list[str], rows) -> Path:
    """Write a CSV table (header, then rows) atomically."""
    with atomic_path(target) as tmp, open(tmp, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(header)
        writer.writerows(rows)
    return Path(target)
