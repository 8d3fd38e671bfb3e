"""Every place a crashed machine leaves its crash, as one list of things to analyze.

A `Found` is one crash's worth of evidence with the key that recognises it at the next run: kdump's
directories (the dump file's key, or the dmesg's when there is no dump), pstore dumps (their content) and
the previous boot's journal (its boot id).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from dataclasses import dataclass

from ktriage.collect.kdump import find_kdump_crashes
from ktriage.collect.pstore import find_pstore_dumps
from ktriage.collect.state import file_key

__all__ = ["Found", "discover", "previous_boot_journal"]

JOURNAL_TIMEOUT = 120


@dataclass(frozen=True)
class Found:
    key: str
    what: str  # what the user reads: the crash directory, the pstore file, "journal of boot <id>"
    source: str  # kdump-debian | kdump-rhel | pstore | journal
    dump: str | None = None
    dmesg: str | None = None
    compression: str | None = None
    text: bytes | None = None  # pstore and journal: the log itself
    skip: str | None = None  # why it is not analyzed this time (still being written)
    seen: str | None = None  # when the crash happened, ISO UTC: the dump's (or pstore record's) mtime


def _mtime_iso(path: str) -> str:
    """kdump writes the dump right after the crash, and pstore gives each record the crash's time as mtime
    (fs/pstore/inode.c, pstore_mkfile): a better date for the fleet than the collector's run."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(os.stat(path).st_mtime))


def _kdump(crash_dir: str, settle: float, now: float) -> list[Found]:
    out = []
    for c in find_kdump_crashes(crash_dir):
        src = f"kdump-{c.layout}"
        if c.writing and not c.dump:
            age = now - os.stat(c.writing).st_mtime
            if age < settle:
                out.append(Found("", c.directory, src, skip=f"{os.path.basename(c.writing)} is still being written"))
                continue
            if not c.dmesg:
                out.append(
                    Found(
                        file_key(c.writing),
                        c.directory,
                        src,
                        skip="the capture was interrupted "
                        f"({os.path.basename(c.writing)} left, no dmesg): nothing complete to analyze",
                    )
                )
                continue
        main = c.dump or c.dmesg
        assert main is not None
        out.append(Found(file_key(main), c.directory, src, c.dump, c.dmesg, c.compression, seen=_mtime_iso(main)))
    return out


def previous_boot_journal() -> tuple[str, bytes] | None:
    """(boot id, `journalctl -k -b -1 -o export` output), or None when there is no previous boot logged."""
    exe = shutil.which("journalctl")
    if not exe:
        return None
    try:
        r = subprocess.run(
            [exe, "-k", "-b", "-1", "-o", "export", "--no-pager"], capture_output=True, timeout=JOURNAL_TIMEOUT
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    if r.returncode != 0 or not r.stdout:
        return None
    for line in r.stdout.split(b"\n", 64):
        if line.startswith(b"_BOOT_ID="):
            return line[9:].decode("ascii", "replace"), r.stdout
    return None


def discover(crash_dirs: list[str], pstore_dirs: list[str], journal: bool, settle: float = 600.0) -> list[Found]:
    now = time.time()
    found: list[Found] = []
    for d in crash_dirs:
        found += _kdump(d, settle, now)
    for p in find_pstore_dumps(pstore_dirs):
        found.append(Found(p.key, p.paths[-1], "pstore", text=p.text, seen=_mtime_iso(p.paths[-1])))
    if journal:
        j = previous_boot_journal()
        if j:
            found.append(Found(f"journal:{j[0]}", f"journal of boot {j[0]}", "journal", text=j[1]))
    return found
