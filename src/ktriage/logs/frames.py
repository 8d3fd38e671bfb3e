"""Call trace lines of every architecture and kernel era, to Frame records.

x86_64 6.x      ` ? func+0x1a/0x30 [mod]`, `<IRQ>` ... `</IRQ>`, `<TASK>`
x86_64 2.6-4.x  ` [<ffffffff81475718>] ? nf_queue+0x98/0x230 [mod]`, `<IRQ>`/`<EOI>`
arm64           ` func+0x2b0/0x6e0 (T)`, ` [<ffff000008084f6c>] func+0x..`
ppc64           `[c0000000fffafa40] [c0000000002f5af8] .func+0x88/0x230 (unreliable)`
s390x           ` [<000000000012a3b4>] func+0x../0x..`, `([<...>] func+0x..)` unreliable
symbolized      ` func+0x12/0x40 net/core/dev.c:123`, ` __dump_stack lib/dump_stack.c:88 [inline]`
"""

from __future__ import annotations

import functools
import re

from ktriage import linear
from ktriage.model import Frame, Location

_ADDR = r"(?:\[<?(?:0x)?([0-9a-f]{6,16})>?\]\s*)"
_FRAME = linear.compile(  # `\s*` runs in a row and a lazy symbol: super-linear under `re`
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
    r"(\s+\((?:unreliable|[CTPLU]?[FK]{0,2})\))?"  # ppc64 unreliable; arm64 6.13+ source (T)ask (P)C (L)R
    r"(?:\s+\[([\w\-.]+)\])?"
    r"\s*$"
)
# A symbolized inline frame: no offset, a file:line and "[inline]".
_INLINE = re.compile(r"^\s*([a-zA-Z_$][\w.$]*)\s+([\w\-./]+\.(?:c|h|S|rs)):\d+(?::\d+)?\s+\[inline\]\s*$")
# The bare 2.6.32/3.10 "IP:"/"RIP" forms and crash-style "func at addr" are parsed elsewhere.

# A register dump nested in a call trace names the PC an interrupt or exception stopped:
#   x86_64 4.10+  `RIP: 0010:native_safe_halt+0xb/0x10` (after `</IRQ>`, `asm_sysvec_*`, `invalid_op`),
#                 4.x `RIP: 0010:[<ffffffff810a1b6d>]  [<ffffffff810a1b6d>] func+0x1d/0x40`
#   ppc64         `--- interrupt: 901 at .arch_local_irq_restore+0x64/0x80`
# Only a kernel code segment (CPL 0) counts: `RIP: 0033:0x7f..` is the user state a syscall entered with.
_NESTED_RIP = re.compile(r"^\s*RIP: ([0-9a-f]{4}):\s*(\S.*)$")
_PPC_INTERRUPT = re.compile(r"^\s*--- interrupt: [0-9a-f]+ at (\S.*)$")
# arm64 exception vectors (4.x `el1_irq`, 5.12+ `el1h_64_irq`): the unwinder continues from the
# pt_regs they saved, so the next frame is the interrupted PC.
EL1_VECTOR = re.compile(r"^el1[th]?(?:_64)?_(?:irq|fiq|sync|error)$")


def parse_interrupted(text: str, section: str = "task") -> Frame | None:
    """A nested exception register dump's IP line (`RIP: 0010:func+off/size [mod]`, ppc64
    `--- interrupt: 900 at func+off/size`) as an interrupted Frame, else None."""
    m = _NESTED_RIP.match(text)
    if m:
        if int(m.group(1), 16) & 3:
            return None  # user mode
        rest = m.group(2)
    else:
        m = _PPC_INTERRUPT.match(text)
        if not m:
            return None
        rest = m.group(1)
    loc = parse_location(rest)
    if loc is None or not loc.symbol:
        return None
    return Frame(
        symbol=loc.symbol,
        offset=loc.offset,
        size=loc.size,
        module=loc.module,
        address=loc.address,
        section=section,
        interrupted=True,
    )


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
        note = (m.group(8) or "").strip()
        # arm64's `(P)`: the PC of the pt_regs an exception saved (the interrupted instruction, exact)
        at_regs_pc = note.startswith("(P")
        unreliable = bool(m.group(2)) or (bool(note) and not at_regs_pc) or text.lstrip().startswith("(")
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
            interrupted=at_regs_pc,
        )
    m = _INLINE.match(text)
    if m:
        return Frame(symbol=m.group(1), section=section, inline=True)
    return None


# 32-bit ARM's unwinder: `[<c0014990>] (unwind_backtrace+0x0/0xf4) from [<c0011ca8>] (show_stack+0x10/0x14)`
# (3.x, some without the space: `[<80014428>](unwind_backtrace+0x0/0xf8) from`), `[<c00252ec>] (warn_slowpath_null) from [<bf091ad0>] (mwl_tx_xmit+0x1628/0x167c [mwlwifi])` (4.x+):
# each line names a function and its caller; the caller's offset is the return address in it.
_ARM_PART = r"\[<([0-9a-f]{8})>\] ?\(([.A-Za-z_$][\w.$]{0,127}?)(?:\+0x([0-9a-f]{1,8})/0x([0-9a-f]{1,8}))?(?: \[([\w\-]{1,64})\])?\)"
_ARM_UNWIND = re.compile(r"^\s*" + _ARM_PART + r" from " + _ARM_PART + r"\s*$")
# the callee-saved registers 4.x+ prints under each frame (`r7:bd85a000 r6:60000013 ...`)
ARM_REGS_LINE = re.compile(r"^\s*r\d{1,2}:[0-9a-f]{8}(?: |$)")


def _arm_frame(m: re.Match[str], i: int, section: str) -> Frame:
    addr, name, off, size, mod = (m.group(i + k) for k in range(5))
    return Frame(
        symbol=name,
        offset=int(off, 16) if off else None,
        size=int(size, 16) if size else None,
        module=mod,
        address=int(addr, 16),
        section=section,
    )


def parse_arm_unwind(text: str, section: str = "task") -> tuple[Frame, Frame] | None:
    """A 32-bit ARM unwinder line as (function, its caller), else None."""
    m = _ARM_UNWIND.match(text)
    if not m:
        return None
    return _arm_frame(m, 1, section), _arm_frame(m, 6, section)


_LOC = linear.compile(  # searched: a lazy symbol rescanned from every position under `re`
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
    """Drop compiler clone suffixes (`.isra.0`, `.constprop.3`, `.cold`) that vary between builds, and
    demangle Rust symbols (the name a Rust developer knows, without the crate hash that varies)."""
    if name.startswith(".") and len(name) > 1:
        name = name[1:]
    prev = None
    while prev != name:
        prev = name
        name = _SUFFIX.sub("", name)
    return demangle_rust(name) if _RUST_V0.match(name) else name


_RUST_V0 = re.compile(r"_R[NI][A-Za-z]")  # a v0 function symbol: a nested path, or one with generic args


@functools.lru_cache(maxsize=4096)
def demangle_rust(name: str) -> str:
    """A Rust v0-mangled symbol (the kernel builds Rust with `-Csymbol-mangling-version=v0`) as Rust
    writes the path: `_RNvMs3_NtCs..._11rust_binder7processNtB5_7Process10update_ref` is
    `<rust_binder::process::Process>::update_ref`. A name that does not decode stays as printed."""
    from rust_demangler.rust_v0 import V0Demangler  # imported on the first Rust frame: most logs have none

    try:
        out = V0Demangler().demangle(name)  # the demangler keeps its state in the instance
    except Exception:  # the library raises bare exceptions on input it cannot decode
        return name
    return out if isinstance(out, str) and out else name
