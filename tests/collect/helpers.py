"""Build what a crashed machine leaves on disk, from the lab's real console logs, the way the tools write it.

Layouts as the packages write them: Debian's kdump-tools 1.8.1 `kdump-config` (kdump_save_core), RHEL's
kdump-utils `dracut/99kdumpbase/kdump.sh` (dump_fs, save_vmcore_dmesg_fs), and the kernel's
fs/pstore/platform.c `pstore_dump` (parts of one backend buffer each, newest text in Part1).
"""

from __future__ import annotations

import os
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
LAB_LOGS = REPO / "tests" / "fixtures" / "lab"


def crashed_kernel_log(name: str) -> str:
    """The crashed kernel's own printk lines of a lab console log (not the capture kernel's, not init's)."""
    lines = (LAB_LOGS / f"{name}.console.log").read_text().splitlines()
    out = []
    for line in lines:
        if line.startswith("LAB: capture kernel up"):
            break
        if line.startswith("["):
            out.append(line)
    return "\n".join(out) + "\n"


def debian_crash(root: Path, stamp: str, log: str, dump: bytes | None = None, ext: str = "") -> Path:
    d = root / stamp
    d.mkdir(parents=True)
    (d / f"dmesg.{stamp}").write_text(log)
    if dump is not None:
        (d / f"dump.{stamp}{ext}").write_bytes(dump)
    return d


def rhel_crash(root: Path, date: str, log: str, dump: bytes | None = None, name: str = "vmcore") -> Path:
    d = root / f"127.0.0.1-{date}"
    d.mkdir(parents=True)
    (d / "vmcore-dmesg.txt").write_text(log)
    if dump is not None:
        (d / name).write_bytes(dump)
    return d


def efi_id(seconds: int, part: int, count: int) -> int:
    """efi-pstore's record id (generic_id): (timestamp * 100 + part) * 1000 + count."""
    return (seconds * 100 + part) * 1000 + count


def pstore_parts(
    log: str, bufsize: int = 1024, kmsg_bytes: int = 10240, why: str = "Oops", count: int = 1
) -> list[bytes]:
    """What pstore_dump() writes for this log: Part1 = the newest records that fit one buffer after the
    "Oops#1 Part1" header, Part2 the ones before, ... until kmsg_bytes are written. Lines carry the syslog
    prefix (`<level>`) kmsg_dump_get_buffer(syslog=true) adds."""
    records = [f"<{4 if i > 200 else 6}>{line}\n".encode() for i, line in enumerate(log.splitlines())]
    parts: list[bytes] = []
    total = 0
    end = len(records)
    part = 1
    while total < kmsg_bytes and end > 0:
        header = f"{why}#{count} Part{part}\n".encode()
        room = bufsize - len(header)
        start, size = end, 0
        while start > 0 and size + len(records[start - 1]) <= room:
            start -= 1
            size += len(records[start])
        body = b"".join(records[start:end])
        parts.append(header + body)
        total += len(header) + len(body)
        end = start
        part += 1
    return parts


def write_pstore(d: Path, parts: list[bytes], seconds: int = 1796500000, count: int = 1) -> list[Path]:
    d.mkdir(parents=True, exist_ok=True)
    out = []
    for i, data in enumerate(parts, 1):
        p = d / f"dmesg-efi-{efi_id(seconds, i, count)}"
        p.write_bytes(data)
        out.append(p)
    return out


def snapshot(paths: list[Path]) -> dict[str, tuple[bytes, int]]:
    """Bytes and mtime of each file: a collector must leave both as they were."""
    return {str(p): (p.read_bytes(), os.stat(p).st_mtime_ns) for p in paths}
