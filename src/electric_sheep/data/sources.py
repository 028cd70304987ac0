"""Several drawing files as one training set: memory-mapped, labelled by file, never concatenated.

A ``DrawingSet`` addresses one split of several files with one index, file after file
(0 .. n_0 - 1 are the first file's drawings, and so on); rows are read from each file's memory map
only when a batch asks for them, so a set of millions of drawings costs the process next to no
memory of its own. The label of a drawing is the position of its file among the sources.
:func:`combine` makes several files one ``Drawings`` (what a run trained on them uses without DATA).
"""

from __future__ import annotations

import glob
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ..errors import DataError

if TYPE_CHECKING:
    from .drawings import Drawings

GLOB_CHARS = "*?["  # what makes a source a pattern (glob)


def expand_sources(sources: list[str | Path] | tuple[str | Path, ...]) -> list[str]:
    """Category names and paths as given; a pattern (``runs/*.npy``) becomes its files, sorted."""
    out: list[str] = []
    for source in map(str, sources):
        if any(c in source for c in GLOB_CHARS) and not Path(source).exists():
            matches = sorted(glob.glob(str(Path(source).expanduser())))
            if not matches:
                raise DataError(source, "matches no file")
            out.extend(matches)
        else:
            out.append(source)
    if len(set(out)) != len(out):
        raise DataError(", ".join(sorted({s for s in out if out.count(s) > 1})), "given more than once")
    return out


def source_name(drawings: Drawings) -> str:
    """A drawing set's category name: its file's name without the format's suffix."""
    return Path(drawings.source).name.split(".")[0]


def split_view(drawings: Drawings, split: str) -> np.ndarray | DrawingSet:
    """A split of ``drawings`` ("all": every drawing), read from the file as it is needed: a whole
    category is never in memory."""
    if split == "all":
        return drawings.images
    drawings.check_split(split)
    return DrawingSet.from_drawings([drawings], split)


@dataclass
class DrawingSet:
    """One split of several drawing files; see the module's doc."""

    parts: list[tuple[np.ndarray, np.ndarray]]  # per file: its (N, 28, 28) images (a memmap) and the split's rows
    names: list[str]  # per file: its category name

    @classmethod
    def from_drawings(cls, sets: list[Drawings], split: str, limit: int | None = None) -> DrawingSet:
        """``split`` of each set (at most ``limit`` drawings from each)."""
        for d in sets:
            if split not in d.splits:
                raise DataError(d.source, f"no split {split!r} (have {', '.join(d.splits)})")
        parts = [(d.images, d.splits[split][:limit]) for d in sets]
        return cls(parts, [source_name(d) for d in sets])

    def __post_init__(self) -> None:
        self.sizes = np.array([len(rows) for _, rows in self.parts], dtype=np.int64)
        self.ends = np.cumsum(self.sizes)  # the global index after each file's last drawing
        self.starts = self.ends - self.sizes

    def __len__(self) -> int:
        return int(self.ends[-1]) if len(self.ends) else 0

    dtype = np.dtype(np.uint8)

    @property
    def shape(self) -> tuple[int, int, int]:
        return (len(self), 28, 28)

    def __getitem__(self, rows: slice | np.ndarray) -> np.ndarray:
        """Drawings by a slice or an array of global indices, read from the files (as ``take``)."""
        if isinstance(rows, slice):
            return self.take(np.arange(*rows.indices(len(self))))
        return self.take(np.asarray(rows))

    def __array__(self, dtype: np.dtype | None = None, copy: bool | None = None) -> np.ndarray:
        """Every drawing, read from the files into memory: what ``np.asarray`` gives."""
        if copy is False:
            raise ValueError("a DrawingSet is read from its files: it cannot be viewed without a copy")
        every = self.take(np.arange(len(self)))
        return every if dtype is None else every.astype(dtype)

    def labels(self, idx: np.ndarray) -> np.ndarray:
        """The file (category) of each global index."""
        return np.searchsorted(self.ends, idx, side="right")

    def take(self, idx: np.ndarray) -> np.ndarray:
        """The drawings at global indices ``idx``, (len(idx), 28, 28) uint8, in that order. Each
        file is read in ascending row order, which is what a memory map reads fastest."""
        idx = np.asarray(idx, dtype=np.int64)
        out = np.empty((len(idx), 28, 28), dtype=np.uint8)
        labels = self.labels(idx)
        for k in np.unique(labels):
            where = np.flatnonzero(labels == k)
            images, rows = self.parts[k]
            wanted = rows[idx[where] - self.starts[k]]
            order = np.argsort(wanted, kind="stable")
            out[where[order]] = np.asarray(images[wanted[order]]).reshape(-1, 28, 28)
        return out

    def epoch_order(self, seed: int, epoch: int, balance: bool) -> np.ndarray:
        """The global indices of one epoch, a pure function of (seed, epoch). ``balance``: every
        category equally often (len(self) // categories drawings of each; a small one repeats,
        a large one is subsampled afresh each epoch)."""
        if not balance or len(self.parts) == 1:
            from ..core.batches import epoch_permutation  # torch's shuffle, as for arrays in memory

            return epoch_permutation(len(self), seed, epoch).numpy()
        rng = np.random.default_rng([seed, epoch])
        each = len(self) // len(self.parts)
        picks = [
            start + (rng.permutation(size)[:each] if size >= each else rng.integers(0, size, each))
            for start, size in zip(self.starts, self.sizes, strict=True)
        ]
        return rng.permutation(np.concatenate(picks))


def combine(sets: list[Drawings], names: list[str], source: Path) -> Drawings:
    """Several files' drawings as one :class:`Drawings` (``source``: what it is named by, such as the
    run trained on them): its images every drawing of each file, as a DrawingSet; each of its
    splits the files' own, interleaved in proportion to their sizes, so that the first drawings
    of a split (a report's, an explorer's) are of every category. ``names``: each file's category."""
    from .drawings import Drawings

    every = DrawingSet([(d.images, np.arange(len(d))) for d in sets], names)
    splits = {split: interleaved([d.splits[split] for d in sets], every.starts) for split in sets[0].splits}
    formats = {d.format for d in sets}
    meta = {"sources": [str(d.source) for d in sets], "categories": list(names)}
    return Drawings(every, splits, formats.pop() if len(formats) == 1 else "several", source, meta=meta)


def interleaved(rows: list[np.ndarray], starts: np.ndarray) -> np.ndarray:
    """Each file's rows, offset to the global index (``starts``: each file's first), merged in order
    of their place within their own file (as a share of it): the files mixed in proportion all along."""
    offset = np.concatenate([r + start for r, start in zip(rows, starts, strict=True)])
    place = np.concatenate([(np.arange(len(r)) + 0.5) / len(r) for r in rows]) if len(offset) else np.zeros(0)
    return offset[np.argsort(place, kind="stable")]


def load_sources(sources: list[str], *, seed: int = 0) -> list[Drawings]:
    """Each source loaded (and checked) before anything is trained; a bad one is named."""
    from .drawings import check_downloaded, load_drawings  # rasterising, pictures: only when data is loaded

    sources = expand_sources(sources)
    check_downloaded(sources)  # every missing category in one message, before anything is read
    return [load_drawings(source, seed=seed) for source in sources]
