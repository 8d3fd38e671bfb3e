"""Kernel logs a crash left in pstore, put back together.

What the kernel writes (fs/pstore/platform.c, `pstore_dump`): on an oops or panic it walks the log from
its end backwards (`kmsg_dump_get_buffer`), one backend buffer at a time, and writes each chunk as a
record whose text starts with a header line `"%s#%d Part%u\n"` — the reason ("Oops", "Panic", ...), the
dump count of that boot, and the part number. Part1 holds the newest lines (the oops itself), Part2 the
lines before them, and so on: the log reads in order from the highest part down to Part1.

Where the records are found: `/sys/fs/pstore/dmesg-<backend>-<id>` (fs/pstore/inode.c; `.enc.z` when the
kernel could not decompress it), and, once systemd-pstore has archived them (src/pstore/pstore.c),
`/var/lib/systemd/pstore/<id without its last 6 digits>/dmesg-<backend>-<id>` plus a `dmesg.txt` it
concatenated itself. EFI and ERST ids encode `(seconds * 100 + part) * 1000 + count`, so the parts of one
dump share an id prefix; ramoops keeps one part per dump (its `ramoops_pstore_write` refuses Part2+), each in
its own numbered zone.
"""

from __future__ import annotations

import hashlib
import os
import re
from dataclasses import dataclass

from ktriage.logs.pstore import part_of

__all__ = ["PstoreDump", "find_pstore_dumps", "reassemble"]

ID = re.compile(r"\Admesg-(?P<backend>[A-Za-z0-9_]+)-(?P<id>\d+)\Z")
MAX_PART = 1 << 20  # a backend buffer is a few KiB; refuse anything that is not a pstore record


@dataclass(frozen=True)
class PstoreDump:
    """One kernel dump: its parts in log order (oldest text first) and the text put back together."""

    paths: tuple[str, ...]
    reason: str  # Oops, Panic, ... (from the header; "unknown" without one)
    text: bytes

    @property
    def key(self) -> str:
        """Content, not place: systemd-pstore moves the same records from /sys/fs/pstore to its archive."""
        return "pstore:" + hashlib.sha256(self.text).hexdigest()[:32]


@dataclass(frozen=True)
class _Part:
    path: str
    group: tuple[str, ...]
    why: str
    part: int
    body: bytes


def _read_part(path: str) -> _Part | None:
    name = os.path.basename(path)
    m = ID.match(name)
    if not m:
        return None
    with open(path, "rb") as f:
        data = f.read(MAX_PART + 1)
    if len(data) > MAX_PART:
        return None
    end = data.find(b"\n")
    h = part_of(data[:end].decode("ascii", "replace").rstrip("\r")) if end >= 0 else None
    why, count, part = (h.reason, str(h.dump), h.part) if h else ("unknown", "?", 1)
    body = data[end + 1 :] if h else data
    rid = m["id"]
    # one dump = one directory, one backend, one id prefix (EFI/ERST) and one dump count of that boot;
    # a short id (ramoops zone number) is a dump of its own
    prefix = rid[:-6] if len(rid) > 6 else f"zone{rid}"
    return _Part(path, (os.path.dirname(path), m["backend"], prefix, why, count), why, part, body)


def reassemble(paths: list[str]) -> list[PstoreDump]:
    """Group `dmesg-*` records into dumps and order each dump's parts: highest part first, Part1 last."""
    groups: dict[tuple[str, ...], list[_Part]] = {}
    for p in sorted(paths):
        part = _read_part(p)
        if part is not None:
            groups.setdefault(part.group, []).append(part)
    dumps = []
    for parts in groups.values():
        parts.sort(key=lambda x: -x.part)
        text = b"".join(x.body if x.body.endswith(b"\n") else x.body + b"\n" for x in parts)
        dumps.append(PstoreDump(tuple(x.path for x in parts), parts[0].why, text))
    return dumps


def find_pstore_dumps(dirs: list[str]) -> list[PstoreDump]:
    """Every dump in the given pstore directories (the live fs and systemd-pstore's archive, walked)."""
    paths: list[str] = []
    fallbacks: list[str] = []  # systemd's own dmesg.txt, used only where no part files are left beside it
    for d in dirs:
        if not os.path.isdir(d):
            continue
        for root, subdirs, files in os.walk(d):
            subdirs.sort()
            parts = [os.path.join(root, n) for n in sorted(files) if ID.match(n)]
            paths += parts
            if not parts and "dmesg.txt" in files:
                fallbacks.append(os.path.join(root, "dmesg.txt"))
    dumps = reassemble(paths)
    for p in fallbacks:
        with open(p, "rb") as f:
            dumps.append(PstoreDump((p,), "unknown", f.read(MAX_PART * 64)))
    return dumps
