"""Process settings that make batched CPU inference faster.

PyTorch's CPU tensors come from the C library's ``malloc``. glibc serves blocks above a
dynamic threshold with fresh ``mmap`` pages and hands the top of its heap back to the system
as soon as more than twice that threshold is free. Batched inference allocates and frees tens
of megabytes of activations per batch, so with glibc's defaults every batch paid for its memory
again in page faults. Only ``fast_inference`` (drawing, scores, the IWAE evaluation) applies the
settings below: training gained nothing measurable from them (docs/performance.md, "The
`features` score and the allocator"). This is what the jemalloc/tcmalloc advice of PyTorch's
CPU performance guide buys, without preloading another allocator.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import os
import platform

# mallopt(3) parameters, from glibc's <malloc.h>.
M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
# The largest mmap threshold glibc accepts on 64-bit systems (DEFAULT_MMAP_THRESHOLD_MAX):
# blocks up to this size come from the heap and are reused from one batch to the next.
MMAP_THRESHOLD = 32 * 2**20
# Free memory the heap keeps before giving its top back: room for a few batches' activations.
TRIM_THRESHOLD = 256 * 2**20
OPT_OUT = "ELECTRIC_SHEEP_KEEP_FREED_MEMORY"  # set to 0 to keep glibc's defaults


@functools.cache
def keep_freed_memory() -> bool:
    """Let glibc's malloc reuse freed tensor memory instead of returning it after every batch.

    Process-wide and idempotent; the cost is that up to ``TRIM_THRESHOLD`` of freed memory stays
    with the process. Returns whether the settings were applied: False with the environment
    variable ``ELECTRIC_SHEEP_KEEP_FREED_MEMORY=0`` and off glibc (macOS, Windows, musl), where
    nothing is changed.
    """
    if os.environ.get(OPT_OUT, "1") == "0":
        return False
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = (ctypes.c_int, ctypes.c_int), ctypes.c_int
    # mallopt returns 1 on success; setting either value also stops glibc's dynamic adjustment.
    return bool(mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD))
