"""Find the kernel's own kallsyms tables in a dump's memory when nothing names them.

Kernels before 6.0 publish no kallsyms addresses in VMCOREINFO, yet every kernel built with CONFIG_KALLSYMS
carries its symbol table in .rodata, laid out by scripts/kallsyms.c (write_src) in this order, each label
`.balign 8` on 64-bit:

    kallsyms_offsets       int[num_syms]      (CONFIG_KALLSYMS_BASE_RELATIVE, every 64-bit arch since 4.6)
    kallsyms_relative_base u64                (relocated at boot: a runtime address)
    kallsyms_num_syms      u32
    kallsyms_names         per symbol: a length byte, then that many token indices
    kallsyms_markers       offset into names of every 256th symbol (u32 since 4.20; unsigned long before)
    kallsyms_seqs_of_names 6.1+: 3 bytes per symbol, the symbols' order by name
    kallsyms_token_table   256 NUL-terminated strings
    kallsyms_token_index   u16[256], each token's offset in the table

The search starts from a fact of the compression: a character used in symbol names keeps its own code as a
one-character token, so tokens '0'..'9' are the strings "0", "1", ... "9" side by side in the token table (the
anchor image-recovery tools such as vmlinux-to-elf use). From there every other table is found by its
neighbour and checked against the next one; drgn then decodes the symbols from the addresses found
(`_linux_helper_load_builtin_kallsyms`, the loader behind `load_vmlinux_kallsyms`). The decoded table is
verified by the caller against the symbols VMCOREINFO names.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

import drgn

DIGITS = b"".join(bytes([c]) + b"\0" for c in b"0123456789")
CHUNK = 1 << 20
MAX_SCAN = 96 << 20  # from _stext: the image's .rodata ends well before (a distribution kernel: ~20 MB in)
PAGE = 4096


class KallsymsNotFound(Exception):
    """No consistent set of kallsyms tables in the scanned memory; the message says which step failed. `stage`
    orders the steps (token table 1, markers 2, names 3, offsets 4): the deepest failure is the one reported."""

    def __init__(self, message: str, stage: int = 1) -> None:
        super().__init__(message)
        self.stage = stage


@dataclass(frozen=True)
class KallsymsTables:
    names: int
    token_table: int
    token_index: int
    num_syms: int
    offsets: int
    relative_base: int
    markers: int
    count: int  # the value of kallsyms_num_syms
    scanned: int  # bytes read to find them

    def describe(self) -> str:
        return (
            f"kallsyms tables found in the dump's memory ({self.count} symbols; token table at "
            f"{self.token_table:#x}, names at {self.names:#x}, offsets at {self.offsets:#x})"
        )


def _align8(x: int) -> int:
    return (x + 7) & ~7


class _Memory:
    """The kernel image read in 1 MB chunks; pages missing from a filtered dump read as zeros."""

    def __init__(self, prog: drgn.Program, start: int) -> None:
        self.prog = prog
        self.start = start
        self.data = bytearray()

    def extend(self) -> bool:
        if len(self.data) >= MAX_SCAN:
            return False
        addr = self.start + len(self.data)
        try:
            self.data += self.prog.read(addr, CHUNK)
        except drgn.FaultError:
            for p in range(0, CHUNK, PAGE):
                try:
                    self.data += self.prog.read(addr + p, PAGE)
                except drgn.FaultError:
                    self.data += bytes(PAGE)
        return True

    def u16s(self, off: int, n: int) -> tuple[int, ...]:
        return struct.unpack_from(f"<{n}H", self.data, off)

    def u32(self, off: int) -> int:
        return int(struct.unpack_from("<I", self.data, off)[0])

    def u64(self, off: int) -> int:
        return int(struct.unpack_from("<Q", self.data, off)[0])

    def cstr_end(self, off: int) -> int:
        return self.data.index(b"\0", off)


def find_tables(prog: drgn.Program, stext: int) -> KallsymsTables:
    """The kallsyms tables of the kernel whose text starts at `stext` (VMCOREINFO's SYMBOL(_stext))."""
    mem = _Memory(prog, stext)
    pos = 0
    why = KallsymsNotFound("no token table (the '0'..'9' one-character tokens) in the kernel image", 0)
    while mem.extend():
        while True:
            hit = mem.data.find(DIGITS, pos)
            if hit < 0 or hit + 64 * 1024 > len(mem.data):
                break  # not found in what was read, or too close to its end to check: read on
            pos = hit + 1
            try:
                return _tables_from_digits(mem, hit)
            except KallsymsNotFound as e:
                if e.stage >= why.stage:
                    why = e
        pos = max(pos, len(mem.data) - 64 * 1024)
    raise KallsymsNotFound(f"{why} (scanned {len(mem.data) >> 20} MB from _stext)")


def _tables_from_digits(mem: _Memory, hit: int) -> KallsymsTables:
    # tokens '0' (48) .. 255 follow: walk them to the end of the table, where the token index starts
    end = hit
    for _ in range(48, 256):
        end = mem.cstr_end(end) + 1
    ti_off = _align8(end)
    index = mem.u16s(ti_off, 256)
    table = hit - index[48]
    if index[0] != 0 or table % 8 or table < 0:
        raise KallsymsNotFound("the token index after the token table does not start the table at token 0")
    for i in range(256):
        want_end = index[i + 1] - 1 if i < 255 else end - table - 1
        if mem.cstr_end(table + index[i]) != table + want_end:
            raise KallsymsNotFound(f"token {i}'s length disagrees with the token index")
    markers, nmark = _markers_before(mem, table)
    names, count = _names_before(mem, markers, nmark)
    num_syms = names - 8
    relative_base = num_syms - 8
    offsets = relative_base - _align8(4 * count)
    if offsets < 0:
        raise KallsymsNotFound("kallsyms_offsets would start before _stext", 4)
    base = mem.u64(relative_base)
    if not mem.start - (64 << 20) <= base <= mem.start:
        raise KallsymsNotFound(f"kallsyms_relative_base {base:#x} is not just below _stext", 4)
    return KallsymsTables(
        names=mem.start + names,
        token_table=mem.start + table,
        token_index=mem.start + ti_off,
        num_syms=mem.start + num_syms,
        offsets=mem.start + offsets,
        relative_base=mem.start + relative_base,
        markers=mem.start + markers,
        count=count,
        scanned=len(mem.data),
    )


def _markers_before(mem: _Memory, table: int) -> tuple[int, list[int]]:
    """kallsyms_markers ends right before the token table (up to 7 bytes of alignment): strictly increasing
    offsets from 0, u32 (4.20+) or unsigned long (older)."""
    for width in (4, 8):
        for pad in (0, 4):
            off = table - pad - width
            vals: list[int] = []
            while off >= 0 and len(vals) < 65536:
                v = mem.u32(off) if width == 4 else mem.u64(off)
                if vals and v >= vals[-1]:
                    break
                vals.append(v)
                if v == 0:
                    break
                off -= width
            if len(vals) >= 2 and vals[-1] == 0 and off % 8 == 0:
                return off, vals[::-1]
    found = _markers_before_seqs(mem, table)
    if found:
        return found
    raise KallsymsNotFound("no kallsyms_markers (increasing offsets from 0) before the token table", 2)


def _markers_before_seqs(mem: _Memory, table: int) -> tuple[int, list[int]] | None:
    """6.1+: kallsyms_seqs_of_names (3 bytes per symbol, sorted by name) sits between the markers and the token
    table. A marker run [0, ...] of M values fits when the space left up to the token table is that table for some
    symbol count N with M markers: align8(3 N)."""
    lo = max(0, table - 3 * (1 << 21))
    for x in range(table - 8 - table % 8, lo, -8):
        if mem.u32(x) != 0:
            continue
        vals = [0]
        off = x + 4
        while off + 4 <= table and len(vals) < 16384:
            v = mem.u32(off)
            if v <= vals[-1] or v - vals[-1] > 256 * 256:
                break
            vals.append(v)
            off += 4
        for m in range(len(vals), 1, -1):
            span = table - _align8(x + 4 * m)
            n_lo, n_hi = 256 * (m - 1) + 1, 256 * m
            if any(_align8(3 * n) == span for n in range(max(n_lo, (span - 8) // 3), min(n_hi, span // 3) + 1)):
                return x, vals[:m]
    return None


def _names_before(mem: _Memory, markers: int, marks: list[int]) -> tuple[int, int]:
    """kallsyms_names ends before the markers; kallsyms_num_syms sits 8 bytes before it. Candidates are checked
    by walking the names: every 256th entry must start where its marker says, and the last one end at the
    markers."""
    last = marks[-1]
    hi = markers - last
    for names in range(hi - hi % 8, max(8, hi - 256 * 257) - 1, -8):
        count = mem.u32(names - 8)
        if (count + 255) >> 8 != len(marks):
            continue
        if _walk_names(mem, names, count, marks, markers):
            return names, count
    raise KallsymsNotFound("no kallsyms_names/kallsyms_num_syms consistent with the markers", 3)


def _walk_names(mem: _Memory, names: int, count: int, marks: list[int], markers: int) -> bool:
    off = 0
    data = mem.data
    for i in range(count):
        if not i & 0xFF and marks[i >> 8] != off:
            return False
        n = data[names + off]
        if n & 0x80:  # 6.1+: long names take a second length byte
            n = (n & 0x7F) | (data[names + off + 1] << 7)
            off += 1
        off += n + 1
        if names + off > markers:
            return False
    return markers - 8 < names + off <= markers
