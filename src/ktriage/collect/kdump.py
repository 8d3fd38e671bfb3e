"""What kdump left under /var/crash, in the two layouts the distributions write.

Debian/Ubuntu kdump-tools (`kdump-config`, `kdump_save_core`): one directory per crash named by
`date +%Y%m%d%H%M` (prefixed by the host's IP or name for NFS/SSH/FTP targets), holding
`dmesg.<stamp>` (written first, by `makedumpfile --dump-dmesg`), then `dump-incomplete[.gz|.bz2|.lz4|.xz]`
while makedumpfile's output is piped through the configured compressor, renamed to
`dump.<stamp>[.ext]` when it succeeds. When makedumpfile fails it falls back to `cp /proc/vmcore`:
`vmcore-incomplete`, then `vmcore.<stamp>`. makedumpfile writes to a pipe there, so the dump is in
makedumpfile's flattened format (read in place through libkdumpfile; reassembled in a temporary file only when
libkdumpfile refuses it).

RHEL/Fedora kdump (kdump-utils' dracut module `99kdumpbase/kdump.sh`): `<HOST_IP>-<%Y-%m-%d-%T>/`
(`127.0.0.1-...` for local targets) with `vmcore-dmesg-incomplete.txt` renamed `vmcore-dmesg.txt`, then
`vmcore-incomplete` renamed `vmcore` (`vmcore.flat` for SSH targets, flattened), and `kexec-dmesg.log`
(the capture kernel's own log, not the crash).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass

__all__ = ["KdumpCrash", "find_kdump_crashes"]

DEBIAN_DIR = re.compile(r"\A(?:.+-)?(?P<stamp>\d{12})\Z")
RHEL_DIR = re.compile(r"\A.+-\d{4}-\d{2}-\d{2}-\d{2}:\d{2}:\d{2}\Z")
DEBIAN_DUMP = re.compile(r"\A(?:dump|vmcore)\.(?P<stamp>\d{12})(?P<ext>\.(?:gz|bz2|lz4|xz))?\Z")
COMPRESSION = {".gz": "gzip", ".bz2": "bzip2", ".lz4": "lz4", ".xz": "xz"}


@dataclass(frozen=True)
class KdumpCrash:
    """One crash directory: the dump (if complete), its saved dmesg, and why it may not be ready."""

    directory: str
    layout: str  # "debian" | "rhel"
    dump: str | None  # the complete dump file
    compression: str | None  # gzip | bzip2 | lz4 | xz (Debian KDUMP_COMPRESSION), None when plain
    dmesg: str | None  # dmesg.<stamp> / vmcore-dmesg.txt
    writing: str | None  # the *-incomplete file, when the capture is still being written (or died)


def _debian(d: str, names: list[str]) -> KdumpCrash:
    dump = comp = dmesg = writing = None
    for n in names:
        m = DEBIAN_DUMP.match(n)
        if m and (dump is None or n.startswith("dump.")):  # dump.* wins over a cp fallback beside it
            dump, comp = os.path.join(d, n), COMPRESSION.get(m["ext"] or "")
        elif n.startswith("dmesg.") and n[6:].isdigit():
            dmesg = os.path.join(d, n)
        elif n.startswith(("dump-incomplete", "vmcore-incomplete")):
            writing = os.path.join(d, n)
    return KdumpCrash(d, "debian", dump, comp, dmesg, writing)


def _rhel(d: str, names: list[str]) -> KdumpCrash:
    dump = dmesg = writing = None
    for n in ("vmcore", "vmcore.flat"):
        if n in names:
            dump = os.path.join(d, n)
            break
    if "vmcore-dmesg.txt" in names:
        dmesg = os.path.join(d, "vmcore-dmesg.txt")
    for n in ("vmcore-incomplete", "vmcore-dmesg-incomplete.txt"):
        if n in names and not (dump and n == "vmcore-dmesg-incomplete.txt"):
            writing = os.path.join(d, n)
            break
    return KdumpCrash(d, "rhel", dump, None, dmesg, writing)


def find_kdump_crashes(crash_dir: str) -> list[KdumpCrash]:
    """Every crash directory directly under `crash_dir`, oldest first (both layouts sort by date)."""
    try:
        entries = sorted(os.scandir(crash_dir), key=lambda e: e.name)
    except OSError:
        return []
    found = []
    for e in entries:
        if not e.is_dir(follow_symlinks=False):
            continue  # kdump-tools keeps kexec_cmd and kdump_lock files beside the crash directories
        try:
            names = sorted(os.listdir(e.path))
        except OSError:
            continue
        if RHEL_DIR.match(e.name):
            c = _rhel(e.path, names)
        elif DEBIAN_DIR.match(e.name):
            c = _debian(e.path, names)
        else:
            continue
        if c.dump or c.dmesg or c.writing:
            found.append(c)
    return found
