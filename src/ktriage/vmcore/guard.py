"""What a kdump-compressed dump's header promises, checked against the file before the dump reader runs.

drgn reads kdump-compressed dumps through libkdumpfile, which trusts the header and the page descriptors:
a page descriptor whose data lies past the end of the file (a dump cut short, a corrupt size) ends the
whole process with SIGBUS, without a word. This module reads the same header fields (makedumpfile's
diskdump_mod.h: `struct disk_dump_header`, `struct kdump_sub_header`, `page_desc_t`) only to compare the
offsets and sizes with the file's size; it never decodes a page. The pipeline still opens every dump in a
child process (ktriage.pipeline), so what this cannot see costs that child, not the run.

Layout (64-bit, little-endian: x86_64, arm64):
  disk_dump_header  signature[8] "KDUMP   ", header_version i32 @8, utsname 6x65 @12, timestamp @408,
                    status u32 @424, block_size i32 @428, sub_hdr_size i32 @432, bitmap_blocks u32 @436,
                    max_mapnr u32 @440 (from version 6 readers use max_mapnr_64, sub-header @96)
  layout            block 0 header, sub-header (sub_hdr_size blocks), two bitmaps (bitmap_blocks blocks),
                    then one 24-byte page_desc {offset i64, size u32, flags u32, page_flags u64} per page
                    set in the second bitmap, then the page data
"""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass, field

DUMP_DH_COMPRESSED_INCOMPLETE = 0x8  # makedumpfile: the dump was cut short (ENOSPC); see diskdump_mod.h
INCOMPLETE_NAMES = ("vmcore-incomplete", "dump-incomplete")  # kdump tools' names while makedumpfile writes
MAX_DESCS_CHECKED = 1 << 20  # 24 MiB of descriptors; beyond, only the child process protects the run
_DESC = struct.Struct("<qIIQ")


@dataclass
class Verdict:
    """`problems`: the header promises data the file does not hold (the reader may crash on it);
    `notes`: facts for the report (incomplete dump)."""

    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def incomplete_name(path: str) -> str | None:
    name = os.path.basename(path)
    if name in INCOMPLETE_NAMES:
        return (
            f"the file is named {name}: kdump names the dump so while makedumpfile is still writing it (or "
            f"when it was interrupted); it may be cut short"
        )
    return None


def validate(path: str) -> Verdict:
    """Check a dump's header and page descriptors against its size (kdump-compressed only; other formats pass)."""
    v = Verdict()
    why = incomplete_name(path)
    if why:
        v.notes.append(why)
    try:
        size = os.path.getsize(path)
        with open(path, "rb") as f:
            head = f.read(4096)
            if not head.startswith((b"KDUMP   ", b"DISKDUMP")) or len(head) < 464:
                return v
            (version,) = struct.unpack_from("<i", head, 8)
            status, block_size, sub_hdr_size, bitmap_blocks, max_mapnr = struct.unpack_from("<IiiII", head, 424)
            if status & DUMP_DH_COMPRESSED_INCOMPLETE:
                v.notes.append("makedumpfile marked the dump incomplete (it ran out of space or was interrupted)")
            if block_size < 512 or block_size > 1 << 20 or block_size & (block_size - 1):
                v.problems.append(f"block size {block_size} is not a page size")
                return v
            if not 0 <= sub_hdr_size < 1 << 16 or not 0 < bitmap_blocks < 1 << 31 or not 0 < version < 64:
                v.problems.append(
                    f"header fields out of range (version {version}, sub-header {sub_hdr_size} blocks, "
                    f"bitmaps {bitmap_blocks} blocks)"
                )
                return v
            if version >= 6 and sub_hdr_size > 0:
                f.seek(block_size)
                sub = f.read(104)
                if len(sub) == 104:
                    max_mapnr = struct.unpack_from("<Q", sub, 96)[0]  # readers use max_mapnr_64 from version 6
            bitmap_off = (1 + sub_hdr_size) * block_size
            half = bitmap_blocks * block_size // 2
            desc_off = bitmap_off + bitmap_blocks * block_size
            if desc_off > size:
                v.problems.append(
                    f"truncated: the header puts the page descriptors at byte {desc_off}, the file has {size} bytes"
                )
                return v
            if (max_mapnr + 7) // 8 > half:
                v.problems.append(f"{max_mapnr} pages do not fit the {half}-byte bitmap the header gives")
                return v
            f.seek(bitmap_off + half)
            second = f.read(min(half, (max_mapnr + 7) // 8))
            pages = int.from_bytes(second, "little").bit_count()
            f.seek(desc_off)
            descs = f.read(min(pages, MAX_DESCS_CHECKED) * _DESC.size)
    except OSError as e:
        v.problems.append(f"cannot read the header: {e.strerror}")
        return v
    data_off = desc_off + pages * _DESC.size
    if data_off > size:
        v.problems.append(
            f"truncated: the header describes {pages} pages whose descriptors end at byte {data_off}, "
            f"the file has {size} bytes"
        )
    whole = len(descs) // _DESC.size * _DESC.size
    bad = 0
    first = ""
    for i, (off, length, _flags, _pf) in enumerate(_DESC.iter_unpack(descs[:whole])):
        if off < 0 or length > block_size or off + length > size or (length and off < desc_off):
            bad += 1
            if not first:
                first = f"page {i}: {length} bytes at {off}"
    if bad:
        v.problems.append(
            f"{bad} page descriptor(s) point outside the file's {size} bytes or exceed a page (first: {first})"
        )
    return v
