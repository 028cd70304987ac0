"""Files electric-sheep writes and reads back.

Writes are atomic: a crash or Ctrl-C never leaves a half-written file behind. Everything saved goes
through :func:`atomic_path`: write to a temporary name in the same folder, then ``os.replace`` it
over the target (atomic on POSIX and Windows); into a device or pipe (``-o /dev/stdout``) as a
stream; never through a symbolic link the user did not name. Reads (:func:`read_json`,
:func:`read_npy`) turn a damaged file into a :class:`DataError` naming it.
"""

from __future__ import annotations

import contextlib
import csv
import json
import math
import os
import shutil
import stat
import tempfile
import tokenize
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import DataError, OutputError


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
    """Yield a temporary path to write; on success it becomes ``target``.

    A regular file (or a new name) is replaced atomically: the temporary file sits beside it and
    is renamed over it. Anything else that exists (a terminal, a pipe, or a link to one such as
    ``/dev/stdout``) is never replaced: the finished bytes are streamed into it. Any other symbolic
    link is refused, never written through: one planted in a run folder someone shared must not
    make a command overwrite the file it names (a link the user gives as ``-o`` is followed on
    purpose, by :func:`user_output`). Failing to write (a folder of that name, no permission, a
    full disk) raises an :class:`OutputError` naming ``target``; what was there is left as it was.
    """
    target = Path(target)
    if _streams(target):
        with _streamed(target) as tmp:
            yield tmp
        return
    if target.is_symlink():
        raise OutputError(target, "is a symbolic link, which is never written through: remove it or write elsewhere")
    if target.is_dir():
        raise OutputError(target, "is a folder; give the name of a file to write")
    with _replaced(target, shown=target) as tmp:
        yield tmp


def user_output(path: Path) -> Path:
    """The file a user names with ``-o``: a symbolic link to a file (or to a name not yet taken)
    is followed here, so that the file it points to is replaced and the link stays."""
    return Path(os.path.realpath(path)) if path.is_symlink() and not _streams(path) else path


def _streams(target: Path) -> bool:
    """Is ``target`` written by streaming into it: something other than a regular file or a folder
    (a terminal, a pipe), or a symbolic link to a terminal or a pipe (``/dev/stdout``)?"""
    try:
        mode = os.stat(target).st_mode
    except OSError:  # nothing there yet, or a dangling link
        return False
    if target.is_symlink():
        return stat.S_ISCHR(mode) or stat.S_ISFIFO(mode) or stat.S_ISSOCK(mode)
    return not (stat.S_ISREG(mode) or stat.S_ISDIR(mode))


@contextlib.contextmanager
def _replaced(final: Path, shown: Path) -> Iterator[Path]:
    """A temporary file beside ``final``, renamed over it on success (errors name ``shown``)."""
    ensure_dir(final.parent)
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{final.name}.", suffix=".tmp", dir=final.parent)
    except OSError as e:
        raise OutputError(shown, f"cannot be written ({e.strerror or e})") from None
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.chmod(tmp_path, 0o666 & ~_umask())  # mkstemp makes 0600 files; give the usual mode
        os.replace(tmp_path, final)
    except OSError as e:  # e.g. the disk filled up while writing
        raise OutputError(shown, f"cannot be written ({e.strerror or e})") from None
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


@contextlib.contextmanager
def _streamed(target: Path) -> Iterator[Path]:
    """A private temporary file whose finished bytes are then copied into the device or pipe
    ``target``, which keeps its place: nothing half-made ever reaches it."""
    fd, tmp = tempfile.mkstemp(prefix="electric-sheep-", suffix=".tmp")
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        with open(tmp_path, "rb") as src, open(target, "wb") as dst:
            shutil.copyfileobj(src, dst)
    except OSError as e:  # /dev/full, a closed pipe ...
        raise OutputError(target, f"cannot be written ({e.strerror or e})") from None
    finally:
        tmp_path.unlink(missing_ok=True)


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
    """Write ``obj`` as indented JSON atomically (a number that is not finite as null)."""
    return write_text(target, json_text(obj, indent=2) + "\n")


def json_text(obj: Any, indent: int | None = None) -> str:
    """``obj`` as strict JSON: NaN and infinity, which JSON lacks (``json.dumps`` would write them
    anyway, and other readers reject the file), become null, "not defined"."""
    return json.dumps(_finite(obj), indent=indent, allow_nan=False)


def _finite(obj: Any) -> Any:
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_finite(v) for v in obj]
    return obj


def write_npy(target: str | Path, array: np.ndarray) -> Path:
    """Save one array as ``.npy`` atomically."""
    with atomic_path(target) as tmp, open(tmp, "wb") as f:
        np.save(f, array)
    return Path(target)


# What numpy raises for a damaged .npy: a bad header can fail in its tokenizer or parser, not only
# with the ValueError numpy documents.
NPY_ERRORS = (ValueError, OSError, EOFError, SyntaxError, tokenize.TokenError)


def read_npy(path: str | Path, what: str = "array", mmap_mode: str | None = None) -> np.ndarray:
    """The array in a ``.npy`` file (never unpickled); a :class:`DataError` naming it when damaged
    or not a regular file (a pipe would make the read wait forever)."""
    try:
        os.close(_open_regular(path))
        return np.load(path, mmap_mode=mmap_mode, allow_pickle=False)
    except NPY_ERRORS as e:
        reason = (str(e).splitlines() or [""])[0]  # numpy's first line says what; the rest is advice
        raise DataError(path, f"is not a readable .npy {what}, truncated or damaged ({reason})") from None


# The text files electric-sheep writes (config.json, metrics.jsonl, anomalies.json, a streamed job's
# record) take kilobytes; one far larger is not ours and is refused once this much is read (a sparse
# file of any size costs no disk, and reading it whole would cost that much memory).
MAX_TEXT_CHARS = 64 * 2**20
# A figure a command draws takes kilobytes; one past this is not ours.
MAX_FIGURE_BYTES = 32 * 2**20
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def read_text(path: str | Path) -> str:
    """A UTF-8 text file; a :class:`DataError` naming it when it is not UTF-8 or is far larger
    than any file electric-sheep writes."""
    try:
        with open(_open_regular(path), encoding="utf-8") as f:
            text = f.read(MAX_TEXT_CHARS + 1)
    except UnicodeDecodeError as e:
        raise DataError(path, f"is not UTF-8 text (byte {e.start})") from None
    if len(text) > MAX_TEXT_CHARS:
        raise DataError(path, f"holds over {MAX_TEXT_CHARS // 2**20} MiB of text, far more than electric-sheep writes")
    return text


def read_figure(path: str | Path, remedy: str) -> bytes:
    """The bytes of a PNG figure a command wrote, to be copied into a page. A symbolic link (it
    could name any file of the user's, which would then be copied into a page made to be shared),
    anything but a regular file, or a file that is not a PNG is refused: a DataError that ends
    with ``remedy`` ("run `sheep anomalies` again")."""
    path = Path(path)
    try:
        fd = _open_regular(path, follow=False)
    except OSError as e:
        if path.is_symlink():
            raise DataError(path, f"is a symbolic link, never copied into a page: remove it and {remedy}") from None
        raise DataError(path, f"cannot be read ({e.strerror or e})") from None
    with os.fdopen(fd, "rb") as f:
        data = f.read(MAX_FIGURE_BYTES + 1)
    if not data.startswith(PNG_SIGNATURE) or len(data) > MAX_FIGURE_BYTES:
        raise DataError(path, f"is not a PNG figure electric-sheep wrote: {remedy}")
    return data


def _open_regular(path: str | Path, follow: bool = True) -> int:
    """A read-only descriptor of the regular file at ``path``; a DataError for anything else. The
    open never waits (O_NONBLOCK: a pipe someone put there would block until written to) and, with
    ``follow`` False, refuses a link as it opens (O_NOFOLLOW), not after a check it could outrun."""
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | (0 if follow else getattr(os, "O_NOFOLLOW", 0))
    fd = os.open(path, flags)
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise DataError(path, "is not a regular file")
    return fd


def clear_odd(path: Path) -> None:
    """Remove what is at ``path`` unless it is a regular file or a folder: where a command keeps its
    own working files, a link, a pipe or a device was put there by someone else (writing into a
    pipe would wait forever for a reader)."""
    try:
        mode = os.lstat(path).st_mode
    except FileNotFoundError:
        return
    if not (stat.S_ISREG(mode) or stat.S_ISDIR(mode)):
        try:
            path.unlink()
        except OSError as e:
            raise OutputError(path, f"is not a file we wrote and cannot be removed ({e.strerror or e})") from None


def read_json(path: str | Path) -> Any:
    """The JSON value in ``path``; a :class:`DataError` naming it when it is not valid JSON."""
    return parse_json(read_text(path), path)


def parse_json(text: str, path: str | Path, where: str = "") -> Any:
    """``text`` (read from ``path``; ``where`` in it, e.g. "line 3 ") parsed as JSON, or a :class:`DataError`."""
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        detail = e.msg if where else f"{e.msg} at line {e.lineno}"
        raise DataError(path, f"{where}is not valid JSON ({detail})") from None
    except RecursionError:  # arrays nested thousands deep
        raise DataError(path, f"{where}is not valid JSON (nested too deeply)") from None


# What a spreadsheet reads as the start of a formula in a cell (OWASP's "CSV injection")
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def spreadsheet_text(text: str) -> str:
    """A name for a CSV cell (a file's, a category's) that a spreadsheet will show, not run: one
    starting like a formula (``=HYPERLINK(...).png``) gets a leading apostrophe."""
    return f"'{text}" if text.startswith(FORMULA_START) else text


def write_csv(target: str | Path, header: list[str], rows) -> Path:
    """Write a CSV table (header, then rows) atomically."""
    with atomic_path(target) as tmp, open(tmp, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(header)
        writer.writerows(rows)
    return Path(target)


LOCK_FILE = ".lock"


class FolderInUse(OutputError):
    """Another process is writing into the folder (it holds the folder's lock)."""


@contextlib.contextmanager
def folder_lock(folder: str | Path, what: str = "a run") -> Iterator[Path]:
    """Hold an OS lock on ``folder`` (created if needed) while the block runs.

    The lock is the kernel's (``flock``; ``msvcrt.locking`` on Windows): it is released when the
    block ends or the process dies however it dies, so a stale lock file never blocks anyone. A
    second writer fails at once with :class:`FolderInUse`, naming the holder's process id. A
    folder made here is removed again when the block fails before writing anything into it.
    """
    made = not Path(folder).exists()
    folder = ensure_dir(folder)
    path = folder / LOCK_FILE
    try:
        if path.is_symlink():  # never ours: writing the id through it would overwrite what it names
            path.unlink()
        fd = os.open(path, os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0), 0o644)
    except OSError as e:
        raise OutputError(folder, f"cannot be locked ({e.strerror or e})") from None
    try:
        if not _try_lock(fd):
            raise FolderInUse(folder, f"is in use: {_holder(path)} is writing {what} into it; wait or choose another")
        with contextlib.suppress(OSError):  # the holder's id, for a second writer's message (a full disk: none)
            os.ftruncate(fd, 0)
            os.write(fd, str(os.getpid()).encode())
        yield folder
    except BaseException:
        if made:
            _remove_if_only_lock(folder)
        raise
    finally:
        os.close(fd)  # closing the descriptor releases the lock


def _remove_if_only_lock(folder: Path) -> None:
    """Remove ``folder`` if the lock file is all it holds (a failed command leaves no empty run)."""
    with contextlib.suppress(OSError):
        if [p.name for p in folder.iterdir()] == [LOCK_FILE]:
            (folder / LOCK_FILE).unlink()
            folder.rmdir()


def check_unlocked(folder: str | Path, what: str = "a run") -> None:
    """Fail now with :class:`FolderInUse` if another process holds ``folder``'s lock (a cheap
    look before long work such as loading data); an absent folder is free."""
    if (Path(folder) / LOCK_FILE).exists():
        with folder_lock(folder, what):
            pass


def _try_lock(fd: int) -> bool:
    try:
        import fcntl
    except ImportError:  # Windows
        import msvcrt

        try:
            msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
        except OSError:
            return False
        return True
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


PID_BYTES = 20  # a process id as the lock file holds it; a larger file is not read whole


def _holder(path: Path) -> str:
    try:
        with open(path, "rb") as f:
            pid = f.read(PID_BYTES).decode("ascii", "replace").strip()
    except OSError:
        pid = ""
    return f"process {pid}" if pid.isdigit() else "another process"
