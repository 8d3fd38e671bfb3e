"""The order every human-readable report follows, and what a short report leaves out.

A kernel engineer reads a crash in this order: the trap and the bad pointer, the source line and
the member, what memory says about the object, the known bug, then the trace; the dump's context
(CPUs, tasks, arguments) last. Findings are grouped by their code prefix, so a new analyzer lands in
the right place without touching the renderers. The text, Markdown, post-mortem and HTML reports
all use this one table.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from ktriage.model import Finding, Frame

__all__ = ["SECTIONS", "grouped", "notable_evidence", "short_listing", "trace_lines"]

SECTIONS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("Trap and bad pointer", ("insn.", "value.", "regs.", "dataflow.")),
    ("Source line and member", ("src.", "vmcore.member", "vmcore.object-bounds", "vmcore.stack")),
    (
        "Memory evidence",
        (
            "vmcore.use-after-free",
            "vmcore.race",
            "vmcore.pointers",
            "vmcore.skb",
            "vmcore.conntrack",
            "vmcore.sock",
            "vmcore.deadlock",
            "vmcore.hung",
        ),
    ),
    ("Context", ("vmcore.sys", "vmcore.debuginfo", "vmcore.cpus", "vmcore.tasks", "vmcore.args", "debuginfo.")),
)


def _section(code: str) -> int:
    for i, (_, prefixes) in enumerate(SECTIONS):
        if any(code == p or (p.endswith(".") and code.startswith(p)) for p in prefixes):
            return i
    return len(SECTIONS)


def grouped(findings: Sequence[Finding]) -> list[tuple[str, list[Finding]]]:
    """(section title, its findings in analyzer order), non-empty sections only, in reading order."""
    out: list[tuple[str, list[Finding]]] = []
    for i, (title, _) in enumerate((*SECTIONS, ("Other findings", ()))):
        fs = [f for f in findings if _section(f.code) == i]
        if fs:
            out.append((title, fs))
    return out


# A register line of regs.classified is worth a line of the short report when it is one of these.
_NOTABLE = re.compile(r"zero \(or NULL\)|poison|ERR_PTR|non-canonical|KASAN|freed|FREE", re.I)


def notable_evidence(f: Finding, limit: int) -> tuple[list[str], int]:
    """The evidence lines a short report shows and how many it leaves out.

    regs.classified keeps only the registers that are NULL, poison, ERR_PTR or non-canonical (not
    every register's range); other findings keep their first `limit` lines."""
    ev = list(f.evidence)
    if f.code == "regs.classified":
        keep = [e for e in ev if _NOTABLE.search(e)]
        return keep[:limit], len(ev) - len(keep[:limit])
    return ev[:limit], max(0, len(ev) - limit)


def short_listing(listing: Sequence[str], limit: int = 14) -> list[str]:
    """A disassembly cut to the lines around the trapping instruction (marked `*`, `<--` or `=>`)."""
    lines = list(listing)
    if len(lines) <= limit:
        return lines
    mark = next(
        (i for i, line in enumerate(lines) if line.lstrip().startswith("*") or "<--" in line or "=>" in line), None
    )
    if mark is None:
        return lines[:limit] + [f"... {len(lines) - limit} more lines (-v)"]
    start = max(0, min(mark - limit // 2, len(lines) - limit))
    cut = lines[start : start + limit]
    if start:
        cut.insert(0, f"... {start} lines before")
    if start + limit < len(lines):
        cut.append(f"... {len(lines) - start - limit} lines after")
    return cut


def trace_lines(frames: Sequence[Frame], full: bool, limit: int = 24) -> list[str]:
    """The call trace as text lines. Short form: the exception path (the kernel's own oops and kdump
    machinery, below the fault) in one line, `?` stack leftovers counted, not listed."""

    def one(f: Frame) -> str:
        mark = "  " if f.reliable else "? "
        sect = f" <{f.section}>" if f.section not in ("task",) else ""
        if f.interrupted:
            sect += " (interrupted here: exception/interrupt entry)"
        return f"{mark}{f}{sect}"

    if full:
        return [one(f) for f in frames]
    out: list[str] = []
    exc = [f for f in frames if f.section == "exception"]
    if len(exc) >= 3:
        out.append(f"  ({len(exc)} frames of the exception path: {exc[0].symbol} ... {exc[-1].symbol})")
    shown = [f for f in frames if f.reliable and not (len(exc) >= 3 and f.section == "exception")]
    out += [one(f) for f in shown[:limit]]
    if len(shown) > limit:
        out.append(f"  ... {len(shown) - limit} more frames (-v)")
    unreliable = sum(1 for f in frames if not f.reliable)
    if unreliable:
        out.append(f"  ({unreliable} '?' entries, stack leftovers, not shown: -v)")
    return out
