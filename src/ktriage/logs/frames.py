"""Call trace lines of every architecture and kernel era, to Frame records.

  x86_64 6.x      ` ? func+0x1a/0x30 [mod]`, `<IRQ>` ... `</IRQ>`, `<TASK>`
  x86_64 2.6-4.x  ` [<ffffffff81475718>] ? nf_queue+0x98/0x230 [mod]`, `<IRQ>`/`<EOI>`
  arm64           ` func+0x2b0/0x6e0 (T)`, ` [<ffff000008084f6c>] func+0x..`
  ppc64           `[c0000000fffafa40] [c0000000002f5af8] .func+0x88/0x230 (unreliable)`
  s390x           ` [<000000000012a3b4>] func+0x../0x..`, `([<...>] func+0x..)` unreliable
  symbolized      ` func+0x12/0x40 net/core/dev.c:123`, ` __dump_stack lib/dump_stack.c:88 [inline]`
"""

from __future__ import annotations

import re

from ktriage.model import Frame, Location

_ADDR = r"(?:\[<?(?:0x)?([0-9a-f]{6,16})>?\]\s*)"
_FRAME = re.compile(
    r"^\s*(?:\d+:\s*)?"  # "0:" i386 stack index
    r"\(?\s*"  # s390 "([<...>] func+...)"
    r"(?:" + _ADDR + r"){0,2}"
    r"(\?\s+)?"
    r"([.a-zA-Z_$][\w.$]*?)"
    r"(?:\+0x([0-9a-f]+)(?:/0x([0-9a-f]+))?)"
    r"(?:\s+\[([\w\-.]+)\])?"
    r"(?:\s+([\w\-./]+\.(?:c|h|S|rs)):\d+(?::\d+)?)?"
    r"(?:\s+\[inline\])?"
    r"\)?"
    r"(\s+\((?:unreliable|[TPC])\))?"
    r"(?:\s+\[([\w\-.]+)\])?"
    r"\s*$"
)
# A symbolized inline frame: no offset, a file:line and "[inline]".
_INLINE = re.compile(r"^\s*([a-zA-Z_$][\w.$]*)\s+([\w\-./]+\.(?:c|h|S|rs)):\d+(?::\d+)?\s+\[inline\]\s*$")
# The bare 2.6.32/3.10 "IP:"/"RIP" forms and crash-style "func at addr" are parsed elsewhere.

SECTION_MARKERS = {
    "<IRQ>": "irq",
    "</IRQ>": "task",
    "<EOI>": "task",
    "<NMI>": "nmi",
    "</NMI>": "task",
    "<TASK>": "task",
    "</TASK>": "task",
    "<#DF>": "exception",
    "</#DF>": "task",
}


def parse_frame(text: str, section: str = "task") -> Frame | None:
    """One call trace line to a Frame, or None when the line is not a frame."""
    m = _FRAME.match(text)
    if m:
        addr_s = m.group(1)
        unreliable = bool(m.group(2)) or bool(m.group(8)) or text.lstrip().startswith("(")
        name = m.group(3)
        if name.startswith(".") and len(name) > 1:  # ppc64 ELFv1 function descriptors
            name = name[1:]
        return Frame(
            symbol=name,
            offset=int(m.group(4), 16),
            size=int(m.group(5), 16) if m.group(5) else None,
            module=m.group(6) or m.group(9),
            address=int(addr_s, 16) if addr_s else None,
            reliable=not unreliable,
            section=section,
        )
    m = _INLINE.match(text)
    if m:
        return Frame(symbol=m.group(1), section=section, inline=True)
    return None


_LOC = re.compile(
    r"(?:\[<?(?:0x)?([0-9a-f]{6,16})>?\]\s*)*(?:\?\s+)?\.?([a-zA-Z_$][\w.$]*?)\+0x([0-9a-f]+)(?:/0x([0-9a-f]+))?"
    r"(?:\s+\[([\w\-.]+)\])?"
)


def parse_location(text: str) -> Location | None:
    """`[<ffffffffc086077d>] nf_ct_deliver_cached_events+0x2d/0x110 [nf_conntrack]` and friends."""
    m = _LOC.search(text)
    if not m:
        return None
    return Location(
        symbol=m.group(2),
        offset=int(m.group(3), 16),
        size=int(m.group(4), 16) if m.group(4) else None,
        module=m.group(5),
        address=int(m.group(1), 16) if m.group(1) else None,
    )


_SUFFIX = re.compile(r"(?:\.(?:isra|constprop|part|cold|llvm|lto_priv|clone|localalias)(?:\.\d+)*)+$|\.\d+$")


def normalize(name: str) -> str:
    """Drop compiler clone suffixes (`.isra.0`, `.constprop.3`, `.cold`) that vary between builds."""
    if name.startswith(".") and len(name) > 1:
        name = name[1:]
    prev = None
    while prev != name:
        prev = name
        name = _SUFFIX.sub("", name)
    return name
