"""A `Code:`-style window read from the kernel/module binary instead of the console.

The console sometimes cannot show the code: `Code: Unable to access opcode bytes at 0x...` when the
42 bytes before the IP are not mapped (a function at the very start of a module's .text: the lab's
crashmod_read_rx_count+0x7 is at .text+0x7). The same bytes are in the binary (vmlinux or the
module's .ko), found from the oops' `func+off`: only the symbol table is needed, no DWARF.

Limits, said in the window's `note`: a .ko is not relocated, so call/jump displacements and
absolute addresses to other sections read as 0 (instruction lengths, registers and displacements of
memory operands are unaffected); the binary must be the one that crashed (the caller checks the
function size against the oops' `/0x..`); alternatives/static calls patched at boot are not applied.
"""

from __future__ import annotations

from pathlib import Path

from ktriage.debuginfo.elf import ET_REL, SHT_NOBITS, ElfError, ElfFile
from ktriage.model import CodeBytes

PROLOGUE = 42  # bytes before the IP in an x86 oops Code: line (arch/x86/kernel/dumpstack.c)
WINDOW = 64
_ARCHES = ("x86_64", "i386", "arm64", "arm")  # the ones the disassembler is told by name


class ObjectCodeError(Exception):
    """The binary cannot give the code (not ELF, no such symbol, size mismatch)."""


def find_symbol(path: str | Path, name: str) -> tuple[bytes, int, int, str]:
    """(section bytes, symbol offset in the section, symbol size, arch) of function `name`.

    The ELF file is read through debuginfo.elf (pyelftools, drgn's symbol table for a vmlinux), shared
    per path+mtime with the debug-info search that verified it.
    """
    try:
        elf = ElfFile.cached(str(path))
    except ElfError as e:
        raise ObjectCodeError("not an ELF file" if str(e).endswith("not an ELF file") else str(e)) from None
    arch = elf.machine if elf.machine in _ARCHES else f"machine {elf.e_machine}"
    hit = elf._lookup(name, func=True)
    if hit is None or not 0 < hit[2] < len(elf.sections):  # STT_FUNC in a real section
        raise ObjectCodeError(f"no function symbol {name!r} in {path}")
    value, ssize, shndx = hit
    tsec = elf.sections[shndx]
    body = elf.bytes_at(tsec) if tsec.type != SHT_NOBITS else b""  # SHT_NOBITS has no bytes
    start = value - (tsec.addr if elf.etype != ET_REL else 0)  # ET_REL: st_value is already section-relative
    return body, start, ssize, arch


def code_from_object(path: str | Path, symbol: str, offset: int, size: int | None = None) -> CodeBytes:
    """The bytes around `symbol+offset` laid out like an oops Code: window (mark at the IP).

    `size` is the function size printed in the oops (`func+0x7/0x10`). kallsyms computes it as the
    distance to the next symbol, so it includes the alignment padding after the function: it must be
    at least the ELF symbol size and less than 64 bytes more, else the binary is not the one that crashed.
    """
    body, start, ssize, arch = find_symbol(path, symbol)
    if size is not None and ssize and not ssize <= size < ssize + 64:
        raise ObjectCodeError(f"{symbol} is {ssize:#x} bytes in {path} but {size:#x} in the oops: another build")
    if ssize and offset >= max(ssize, size or 0):
        raise ObjectCodeError(f"{symbol}+{offset:#x} is past the end of {symbol} ({ssize:#x} bytes) in {path}")
    ip = start + offset
    if not body or ip >= len(body):
        raise ObjectCodeError(f"{symbol}+{offset:#x} is outside the bytes of its section in {path}")
    lo = max(0, ip - PROLOGUE)
    hi = min(len(body), lo + WINDOW)
    data = body[lo:hi]
    mark = ip - lo
    raw = " ".join(f"<{b:02x}>" if k == mark else f"{b:02x}" for k, b in enumerate(data))
    note = (
        f"bytes of {symbol}+{offset:#x} read from {Path(path).name} (symbol table only"
        + (
            ", unrelocated: call/jump targets and absolute addresses read as 0"
            if path and str(path).endswith(".ko")
            else ""
        )
        + (f"; the section starts {ip:#x} bytes before the IP" if lo == 0 and ip < PROLOGUE else "")
        + "), not from the console"
    )
    return CodeBytes(data=data, trap_offset=mark, arch=arch, complete=True, raw=raw, note=note)
