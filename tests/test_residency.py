"""ktriage.residency: the clean pages of a mapped file are dropped from the resident set, never a written one."""

from __future__ import annotations

import mmap
import os
import sys

import pytest

from ktriage.residency import clean_file_mappings, drop_resident

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="/proc/self/smaps and madvise are Linux's")


def _resident_kb(path: str) -> int:
    """Rss of this process's mappings of `path`, from /proc/self/smaps."""
    total, inside = 0, False
    with open("/proc/self/smaps") as f:
        for line in f:
            head = line.split()
            if "-" in head[0] and len(head) >= 5 and ":" not in head[0]:
                inside = len(head) >= 6 and head[-1] == os.path.realpath(path)
            elif inside and head[0] == "Rss:":
                total += int(head[1])
    return total


def test_clean_mapping_is_dropped_and_still_reads(tmp_path):
    p = tmp_path / "blob"
    data = bytes(range(256)) * (4 << 12)  # 4 MiB
    p.write_bytes(data)
    with open(p, "rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_COPY) as m:  # private, writable, as libelf
        assert sum(m[i] for i in range(0, len(m), 4096)) == 0  # every page touched (byte 0 of each page is 0)
        assert _resident_kb(str(p)) >= 4000
        assert clean_file_mappings(str(p))
        assert drop_resident(str(p)) >= len(data)
        assert _resident_kb(str(p)) < 100
        assert m[4097] == 1 and m[:256] == bytes(range(256))  # faulted back in from the file, unchanged


def test_written_private_mapping_is_left_alone(tmp_path):
    p = tmp_path / "blob"
    p.write_bytes(b"\0" * (1 << 20))
    with open(p, "rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_COPY) as m:
        m[0:4] = b"kept"  # a private copy: MADV_DONTNEED would throw it away
        assert clean_file_mappings(str(p)) == []
        assert drop_resident(str(p)) == 0
        assert m[0:4] == b"kept"


def test_no_mapping_no_path():
    assert drop_resident(None) == 0
    assert drop_resident("/nonexistent/vmlinux") == 0
