"""Read ``.npz`` archives, sketch-rnn's object arrays included, without ever running pickle.

The official sketch-rnn files store each split as a NumPy object array of int16 (L, 3) arrays,
and NumPy saves object arrays as a pickle stream. ``np.load(allow_pickle=True)`` would unpickle
it, and a pickle can name any function to call: a hostile file could run code. Here the stream is
only *disassembled* (:func:`pickletools.genops` reads opcodes and never executes them) and a tiny
interpreter rebuilds the one shape NumPy writes for such arrays: ``_reconstruct`` an ndarray,
give it a ``dtype`` and its raw bytes. Any other opcode or any other callable is refused.
"""

from __future__ import annotations

import pickletools
import zipfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from numpy.lib import format as npy_format

from ..errors import DataError
from ..runs.fileio import NPY_ERRORS

# The only callables a NumPy object-array pickle names; Python 2 files and NumPy < 2 say "core",
# NumPy 2 says "_core". They are recorded as names, never imported or called.
RECONSTRUCT = {"numpy.core.multiarray._reconstruct", "numpy._core.multiarray._reconstruct"}
NDARRAY = "numpy.ndarray"
DTYPE = "numpy.dtype"
ALLOWED_GLOBALS = RECONSTRUCT | {NDARRAY, DTYPE}
ELEMENT_KINDS = "iuf"  # element arrays hold plain numbers: signed, unsigned or float
# Members read together that say they unpack to more are refused before reading: a sketch-rnn file of
# the largest category (about 330,000 drawings of under 800 bytes) unpacks to under 300 MB, a small
# archive of zeros to any size.
MAX_UNPACKED_BYTES = 2**30


class Refused(ValueError):
    """The stream is not the plain object array NumPy writes: reading it would need pickle."""


@dataclass
class _DType:
    descr: str
    byteorder: str = "="

    def build(self) -> np.dtype:
        dtype = np.dtype(self.descr)
        if dtype.kind not in ELEMENT_KINDS and dtype != np.dtype(object):
            raise Refused(f"element dtype {self.descr!r}")
        order = self.byteorder if self.byteorder in "<>=" else "="
        return dtype if dtype == np.dtype(object) else dtype.newbyteorder(order)


@dataclass
class _Array:
    shape: tuple[int, ...] = ()
    dtype: _DType | None = None
    fortran: bool = False
    data: Any = field(default=None, repr=False)

    def set_state(self, state: Any) -> None:
        if not (isinstance(state, tuple) and len(state) == 5 and isinstance(state[2], _DType)):
            raise Refused("an array state that is not (version, shape, dtype, fortran, data)")
        _, self.shape, self.dtype, self.fortran, self.data = state

    def build(self) -> np.ndarray | list:
        if self.dtype is None or not all(isinstance(s, int) and s >= 0 for s in self.shape):
            raise Refused("an array without dtype or with a bad shape")
        dtype = self.dtype.build()
        if dtype == np.dtype(object):
            if not isinstance(self.data, list) or len(self.data) != int(np.prod(self.shape)):
                raise Refused("an object array whose elements are not a list of its size")
            return [_element(item) for item in self.data]
        raw = self.data.encode("latin-1") if isinstance(self.data, str) else self.data  # Python 2 strings
        if not isinstance(raw, bytes) or len(raw) != int(np.prod(self.shape)) * dtype.itemsize:
            raise Refused("array bytes that do not match its shape")
        order = "F" if self.fortran else "C"
        return np.frombuffer(raw, dtype=dtype).reshape(self.shape, order=order)


def _element(item: Any) -> np.ndarray:
    if not isinstance(item, _Array):
        raise Refused(f"an element that is a {type(item).__name__}, not an array")
    built = item.build()
    if isinstance(built, list):
        raise Refused("an object array inside an object array")
    return built


_MARK = object()
_PUSH_ARG = {
    "BININT", "BININT1", "BININT2", "LONG1", "SHORT_BINSTRING", "BINSTRING", "SHORT_BINUNICODE",
    "BINUNICODE", "BINUNICODE8", "SHORT_BINBYTES", "BINBYTES", "BINBYTES8",
}  # fmt: skip
_CONSTANTS = {"NONE": None, "NEWTRUE": True, "NEWFALSE": False}
_TUPLE_N = {"EMPTY_TUPLE": 0, "TUPLE1": 1, "TUPLE2": 2, "TUPLE3": 3}


class _Machine:
    """A stack machine for the opcodes of an object-array pickle; builds records, calls nothing."""

    def __init__(self) -> None:
        self.stack: list[Any] = []
        self.memo: dict[int, Any] = {}

    def run(self, stream: bytes) -> Any:
        try:
            for op, arg, _pos in pickletools.genops(stream):
                if op.name == "STOP":
                    return self.stack.pop()
                self.step(op.name, arg)
        except Refused:
            raise
        except (ValueError, IndexError, KeyError, TypeError) as e:  # a malformed stream
            raise Refused(f"a damaged stream ({type(e).__name__})") from None
        raise Refused("a stream without an end")

    def step(self, name: str, arg: Any) -> None:
        if name in ("PROTO", "FRAME"):
            return
        if not (self._build_value(name, arg) or self._use_reference(name, arg)):
            raise Refused(f"the pickle opcode {name}")

    def _build_value(self, name: str, arg: Any) -> bool:
        """Opcodes that push plain values, tuples and lists; False for any other."""
        stack = self.stack
        if name in _PUSH_ARG:
            stack.append(arg)
        elif name in _CONSTANTS:
            stack.append(_CONSTANTS[name])
        elif name == "MARK":
            stack.append(_MARK)
        elif name in _TUPLE_N:
            n = _TUPLE_N[name]
            items = stack[len(stack) - n :] if n else []
            del stack[len(stack) - n :]
            stack.append(tuple(items))
        elif name == "TUPLE":
            stack.append(tuple(self._pop_to_mark()))
        elif name == "EMPTY_LIST":
            stack.append([])
        elif name == "APPEND":
            item = stack.pop()
            self._list().append(item)
        elif name == "APPENDS":
            items = self._pop_to_mark()  # first: the list lies under the mark
            self._list().extend(items)
        else:
            return False
        return True

    def _use_reference(self, name: str, arg: Any) -> bool:
        """Opcodes of the memo and of the few allowed classes (see ``_global``); False for any other."""
        stack = self.stack
        if name in ("BINPUT", "LONG_BINPUT", "PUT"):
            self.memo[int(arg)] = stack[-1]
        elif name == "MEMOIZE":
            self.memo[len(self.memo)] = stack[-1]
        elif name in ("BINGET", "LONG_BINGET", "GET"):
            stack.append(self.memo[int(arg)])
        elif name == "GLOBAL":
            stack.append(_global(*arg.split(" ", 1)))
        elif name == "STACK_GLOBAL":
            qualname, module = stack.pop(), stack.pop()
            stack.append(_global(module, qualname))
        elif name == "REDUCE":
            args, func = stack.pop(), stack.pop()
            stack.append(_reduce(func, args))
        elif name == "BUILD":
            state = stack.pop()
            _build(stack[-1], state)
        else:
            return False
        return True

    def _pop_to_mark(self) -> list[Any]:
        stack = self.stack
        at = max(i for i, v in enumerate(stack) if v is _MARK)
        items = stack[at + 1 :]
        del stack[at:]
        return items

    def _list(self) -> list:
        if not isinstance(self.stack[-1], list):
            raise Refused("items appended to something that is not a list")
        return self.stack[-1]


@dataclass(frozen=True)
class _Global:
    name: str


def _global(module: str, qualname: str) -> _Global:
    name = f"{module}.{qualname}"
    if name not in ALLOWED_GLOBALS:
        raise Refused(f"the callable {name}")
    return _Global(name)


def _reduce(func: Any, args: Any) -> Any:
    if not isinstance(func, _Global) or not isinstance(args, tuple) or not args:
        raise Refused("a call that is not _reconstruct or dtype")
    if func.name in RECONSTRUCT:
        if args[0] != _Global(NDARRAY):
            raise Refused("_reconstruct of something that is not numpy.ndarray")
        return _Array()
    if func.name == DTYPE and isinstance(args[0], str):
        return _DType(args[0])
    raise Refused(f"a call to {func.name}")


def _build(obj: Any, state: Any) -> None:
    if isinstance(obj, _Array):
        obj.set_state(state)
    elif isinstance(obj, _DType) and isinstance(state, tuple) and len(state) >= 2 and isinstance(state[1], str):
        obj.byteorder = state[1]
    else:
        raise Refused("state given to something that is neither an array nor a dtype")


def object_array_from_pickle(stream: bytes) -> list[np.ndarray]:
    """The element arrays of a pickled NumPy object array, rebuilt without unpickling."""
    top = _Machine().run(stream)
    if not isinstance(top, _Array):
        raise Refused("a stream that does not hold an array")
    built = top.build()
    if not isinstance(built, list):
        raise Refused("a numeric array where an object array was announced")
    return built


def _read_member(archive: zipfile.ZipFile, info: zipfile.ZipInfo) -> np.ndarray | list[np.ndarray]:
    with archive.open(info) as f:
        version = npy_format.read_magic(f)
        if version == (1, 0):
            shape, fortran, dtype = npy_format.read_array_header_1_0(f)
        else:
            shape, fortran, dtype = npy_format.read_array_header_2_0(f)
        if not dtype.hasobject:
            f.seek(0)
            return npy_format.read_array(f, allow_pickle=False)
        if len(shape) != 1:
            raise Refused(f"{info.filename} is an object array of shape {shape}, not a list of drawings")
        return object_array_from_pickle(f.read())


def _check_unpacked_size(path: str | Path, infos: list[zipfile.ZipInfo]) -> None:
    """Refuse members whose sizes, as the archive states them, add up to more than the limit (zipfile
    reads no more than a member's stated size)."""
    total = sum(info.file_size for info in infos)
    if total > MAX_UNPACKED_BYTES:
        limit = MAX_UNPACKED_BYTES / 1e6
        raise DataError(path, f"unpacks to {total / 1e6:,.1f} MB, over the limit of {limit:,.1f} MB; refused unread")


def read_npz(path: str | Path, names: tuple[str, ...] | None = None) -> dict[str, np.ndarray | list[np.ndarray]]:
    """The arrays of an ``.npz`` (those in ``names`` only, if given): numeric arrays as arrays,
    object arrays as lists of their element arrays. Never unpickles; a member that would need
    pickle beyond a plain object array of numbers is a :class:`DataError` naming the file."""
    try:
        with zipfile.ZipFile(path) as archive:
            members = {i.filename.removesuffix(".npy"): i for i in archive.infolist()}
            wanted = [k for k in (members if names is None else names) if k in members]
            _check_unpacked_size(path, [members[k] for k in wanted])
            return {k: _read_member(archive, members[k]) for k in wanted}
    except Refused as e:
        raise DataError(path, f"would need pickle to read ({e}); refused, nothing in it was run") from None
    # a bad zip, a member compressed by a method zipfile lacks, damaged deflate data, a bad .npy
    except (zipfile.BadZipFile, NotImplementedError, zlib.error, *NPY_ERRORS) as e:
        raise DataError(path, f"corrupt .npz ({type(e).__name__}: {e})") from None


def npz_names(path: str | Path) -> list[str]:
    """The array names in an ``.npz``, from its zip directory alone."""
    try:
        with zipfile.ZipFile(path) as archive:
            return [name.removesuffix(".npy") for name in archive.namelist()]
    except (zipfile.BadZipFile, OSError) as e:
        raise DataError(path, f"corrupt .npz ({type(e).__name__}: {e})") from None
