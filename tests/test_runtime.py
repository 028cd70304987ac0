"""The allocator settings that make CPU batches faster: applied, effective, and optional."""

from __future__ import annotations

import os
import platform
import subprocess
import sys

import pytest

from electric_sheep.core import runtime

glibc = pytest.mark.skipif(
    platform.system() != "Linux" or platform.libc_ver()[0] != "glibc", reason="mallopt is glibc's"
)

# Allocates and frees a 16 MB tensor in a fresh process and prints how many bytes glibc mapped
# for it with mmap, and how many freed bytes its heap still holds afterwards.
PROBE = """
import ctypes, sys, torch
from electric_sheep.core.runtime import keep_freed_memory
class Info(ctypes.Structure):
    _fields_ = [(n, ctypes.c_size_t) for n in
                "arena ordblks smblks hblks hblkhd usmblks fsmblks uordblks fordblks keepcost".split()]
libc = ctypes.CDLL("libc.so.6")
libc.mallinfo2.restype = Info
applied = keep_freed_memory()
before = libc.mallinfo2().hblkhd
t = torch.empty(16 * 2**20, dtype=torch.uint8)
mapped = libc.mallinfo2().hblkhd - before
del t
print(int(applied), mapped, libc.mallinfo2().fordblks)
"""


def _probe(opt_out: bool) -> tuple[int, int, int]:
    env = {**os.environ, runtime.OPT_OUT: "0" if opt_out else "1"}
    out = subprocess.run([sys.executable, "-c", PROBE], env=env, capture_output=True, text=True, check=True)
    applied, mapped, free = map(int, out.stdout.split())
    return applied, mapped, free


@glibc
def test_freed_batch_memory_stays_in_the_heap():
    applied, mapped, free = _probe(opt_out=False)
    assert applied == 1
    assert mapped == 0  # served from the heap ...
    assert free >= 16 * 2**20  # ... and still there for the next batch once freed
    # glibc's defaults, for contrast: a fresh process maps a 16 MB block and unmaps it on free.
    applied, mapped, _ = _probe(opt_out=True)
    assert applied == 0 and mapped >= 16 * 2**20


def test_opting_out_changes_nothing(monkeypatch):
    monkeypatch.setenv(runtime.OPT_OUT, "0")
    assert runtime.keep_freed_memory.__wrapped__() is False
