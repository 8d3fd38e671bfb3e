"""pstore dumps: the `Oops#1 Part1` headers and the order of their parts.

When the kernel dumps its log to pstore (ramoops, efi, erst), it writes the log backwards in
record-sized pieces, each under a header `<reason>#<dump count> Part<n>` (fs/pstore/platform.c,
pstore_dump()): Part1 holds the NEWEST lines, Part2 the lines before them, and so on. A file
holds one part (`dmesg-ramoops-0`, `dmesg-efi-<id>`); a user who concatenates them (`cat
/sys/fs/pstore/*`) gets the parts in name order, so the head of an oops can come after its tail.
`reorder` puts the lines of each dump back in time order (highest part first); the scanner reads
the header lines themselves to know where a part begins.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

# kmsg_dump_reason_str(): Panic/Oops/Emergency/Shutdown/Unknown; older kernels also Restart/Halt/Poweroff
PART_HEADER = re.compile(
    r"^(?:<\d{1,3}>)?(Panic|Oops|Emergency|Shutdown|Restart|Halt|Poweroff|Unknown)#(\d{1,9}) Part(\d{1,9})\s{0,4}$"
)
MAX_REORDER_LINES = 200_000  # a pstore backend holds kilobytes; anything far bigger is not a set of parts


@dataclass(frozen=True)
class Part:
    reason: str
    dump: int
    part: int

    @property
    def label(self) -> str:
        return f"{self.reason}#{self.dump} Part{self.part}"

    def follows(self, other: Part | None) -> bool:
        """This part continues `other` in time (Part2 then Part1 of the same dump)."""
        return other is not None and (other.reason, other.dump, other.part) == (self.reason, self.dump, self.part + 1)


def part_of(text: str) -> Part | None:
    if "#" not in text or " Part" not in text:
        return None
    m = PART_HEADER.match(text)
    return Part(m.group(1), int(m.group(2)), int(m.group(3))) if m else None


def reorder(lines: Sequence[tuple[int, str]]) -> list[tuple[int, str]]:
    """Lines of a log holding pstore parts, each dump's parts highest first (oldest lines first).

    Lines before the first header stay first; consecutive parts of one dump (same reason and count)
    are sorted by part number, descending; line numbers stay those of the input."""
    if len(lines) > MAX_REORDER_LINES or not any(part_of(t) for _, t in lines):
        return list(lines)
    out: list[tuple[int, str]] = []
    group: list[tuple[int, list[tuple[int, str]]]] = []  # (part, its lines incl. header) of one dump
    key: tuple[str, int] | None = None
    current: list[tuple[int, str]] = out
    for n, t in lines:
        p = part_of(t)
        if p is not None:
            if (p.reason, p.dump) != key:
                _flush(group, out)
                key = (p.reason, p.dump)
            current = []
            group.append((p.part, current))
        current.append((n, t))
    _flush(group, out)
    return out


def _flush(group: list[tuple[int, list[tuple[int, str]]]], out: list[tuple[int, str]]) -> None:
    for _, part_lines in sorted(group, key=lambda g: -g[0]):
        out.extend(part_lines)
    group.clear()
