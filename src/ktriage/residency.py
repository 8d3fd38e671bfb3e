"""Give back the page-table entries of a debug file drgn has mapped and finished reading through.

Why: drgn (libelf) maps a vmlinux privately and reads it through the mapping. Indexing the DWARF of a
distribution kernel touches all of `.debug_info` (166 MB of Debian 6.1's 633 MB -dbg vmlinux), and the kernel's
fault-around maps neighbouring pages too, so the process keeps ~180 MB of the file resident although the
index is built and only a few DIEs will be read again. A second drgn program on the same file (the log-level
debug info session) maps it again, and the resident set counts those page-cache pages once per mapping.
After loading, the clean pages of those mappings are dropped with madvise(MADV_DONTNEED): they stay in the
page cache, and a later read faults the page it needs back in (a minor fault, no I/O). A mapping holding any
private (written) page is left alone: for a private mapping MADV_DONTNEED would discard what was written.

Measured on the stock Debian 6.1 kernel's -dbg vmlinux (bench/vmcore_bench.py --target stock): peak RSS of a
vmcore report with DWARF from ~440 MB to the figure in README's benchmark table; the report is identical.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import os
import re
import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import drgn

MADV_DONTNEED = 4
_HEX = frozenset("0123456789abcdef")
_RANGE = re.compile(r"^([0-9a-f]+)-([0-9a-f]+) (\S+) \S+ \S+ \S+\s*(.*)$")


@functools.cache
def _libc() -> ctypes.CDLL:
    try:
        lib = ctypes.CDLL("libc.so.6", use_errno=True)  # find_library runs `ldconfig -p` in a subprocess
    except OSError:
        lib = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
    lib.madvise.argtypes = (ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int)
    lib.madvise.restype = ctypes.c_int
    return lib


def clean_file_mappings(path: str, smaps: str = "/proc/self/smaps") -> list[tuple[int, int]]:
    """(start, end) of this process's mappings of `path` that hold no private (written) page. Only `Anonymous`
    says that: a file page not yet written back counts as Private_Dirty, but it lives in the page cache."""
    want = os.path.realpath(path)
    out: list[tuple[int, int]] = []
    cur: tuple[int, int] | None = None
    dirty = False
    try:
        f = open(smaps)
    except OSError:
        return out
    with f:
        for line in f:
            # a mapping's first line starts with its address (lowercase hex); its fields start with a capital
            m = _RANGE.match(line) if line[:1] in _HEX else None
            if m:
                if cur is not None and not dirty:
                    out.append(cur)
                cur, dirty = None, False
                if m.group(4).strip() == want:
                    cur = (int(m.group(1), 16), int(m.group(2), 16))
                continue
            if cur is not None and line.startswith("Anonymous:"):  # copies written into the private mapping
                dirty = dirty or int(line.split()[1]) != 0
    if cur is not None and not dirty:
        out.append(cur)
    return out


def drop_resident(path: str | None) -> int:
    """Drop the resident clean pages of every mapping of `path`; the number of bytes of mappings trimmed.
    Never raises: on another OS, without /proc or when madvise refuses, nothing changes."""
    if not path or not sys.platform.startswith("linux"):
        return 0
    try:
        lib = _libc()
        done = 0
        for start, end in clean_file_mappings(path):
            if lib.madvise(ctypes.c_void_p(start), end - start, MADV_DONTNEED) == 0:
                done += end - start
        return done
    except (OSError, AttributeError, ValueError):
        return 0


def drop_resident_vmlinux(prog: drgn.Program) -> int:
    """drop_resident for the kernel's debug file a vmcore's program loaded (0 when it has none)."""
    try:
        return drop_resident(prog.main_module().debug_file_path)
    except LookupError:
        return 0
