"""Disassemble the `Code:` window with capstone, the way scripts/decodecode does, but checked.

x86 is variable-length and the window starts at an arbitrary byte, so the bytes before the
mark may start mid-instruction. decodecode strips leading bytes until objdump's output has an
instruction starting at the mark; we try every start offset and keep the decoding that lands
exactly on the marked byte and decodes cleanly for the longest run. Since x86 decoding
re-synchronises quickly, all good start offsets agree after some point (`sync`): instructions
from there on are the same whatever the start, earlier ones are a guess and flagged.

The marked instruction itself never depends on that choice: it starts at the mark by
definition. If it does not decode (bytes cut, IP in data), the result is partial, not a guess.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

import capstone

from ktriage.model import CodeBytes


@dataclass(frozen=True)
class Insn:
    """One decoded instruction; `cs` is the capstone instruction with detail (Intel operand order)."""

    offset: int  # in the window
    size: int
    raw: bytes
    mnemonic: str
    op_str: str  # AT&T for x86 (as objdump/crash print it), native for arm
    cs: object

    @property
    def end(self) -> int:
        return self.offset + self.size


@dataclass(frozen=True)
class Decoded:
    """The decoding of one Code window. `insns` may be empty when nothing could be decoded."""

    code: CodeBytes
    insns: tuple[Insn, ...]
    trap_index: int | None  # index in insns of the trapping instruction
    start: int  # window offset where the kept decoding starts
    sync: int  # window offset from which every landing decoding agrees (x86); == start otherwise
    candidates: int  # how many start offsets landed on the mark
    problem: str | None = None  # why the decoding is partial

    @property
    def trap(self) -> Insn | None:
        return None if self.trap_index is None else self.insns[self.trap_index]

    @property
    def before(self) -> tuple[Insn, ...]:
        """The instructions before the trap that every landing decoding agrees on."""
        if self.trap_index is None:
            return ()
        return tuple(i for i in self.insns[: self.trap_index] if i.offset >= self.sync)


def _cs(arch: str, att: bool) -> capstone.Cs:
    if arch == "x86_64":
        md = capstone.Cs(capstone.CS_ARCH_X86, capstone.CS_MODE_64)
    elif arch in ("i386", "x86"):
        md = capstone.Cs(capstone.CS_ARCH_X86, capstone.CS_MODE_32)
    elif arch in ("arm64", "aarch64"):
        md = capstone.Cs(capstone.CS_ARCH_ARM64, capstone.CS_MODE_ARM)
    elif arch == "arm":
        md = capstone.Cs(capstone.CS_ARCH_ARM, capstone.CS_MODE_ARM)
    elif arch == "arm-thumb":
        md = capstone.Cs(capstone.CS_ARCH_ARM, capstone.CS_MODE_THUMB)
    else:
        raise ValueError(f"no disassembler for {arch}")
    md.detail = True
    if att and arch in ("x86_64", "i386", "x86"):
        md.syntax = capstone.CS_OPT_SYNTAX_ATT
    return md


_MD: dict[tuple[str, bool], capstone.Cs] = {}


def _md(arch: str, att: bool) -> capstone.Cs:
    key = (arch, att)
    if key not in _MD:
        _MD[key] = _cs(arch, att)
    return _MD[key]


def _run(data: bytes, start: int, arch: str) -> list:
    """Decode from `start` until capstone stops (invalid or truncated instruction)."""
    return list(_md(arch, False).disasm(data[start:], start))


def _att(arch: str, raw: bytes, offset: int) -> tuple[str, str]:
    if arch not in ("x86_64", "i386", "x86"):
        return "", ""
    i = next(_md(arch, True).disasm(raw, offset), None)
    if not i:
        return "(bad)", ""
    return i.mnemonic, _DEC_IMM.sub(_hex_imm, i.op_str.replace(", ", ","))


_DEC_IMM = re.compile(r"\$(-?)(\d+)(?![x\d])")


def _hex_imm(m: re.Match) -> str:
    """Capstone prints small immediates in decimal; objdump and crash print hex."""
    return f"${m.group(1)}{int(m.group(2)):#x}"


def _wrap(arch: str, insns: list) -> tuple[Insn, ...]:
    out = []
    for i in insns:
        mn, ops = _att(arch, bytes(i.bytes), i.address)
        if not mn:
            mn, ops = i.mnemonic, i.op_str
        out.append(Insn(i.address, i.size, bytes(i.bytes), mn, ops, i))
    return tuple(out)


def _x86_candidates(data: bytes, mark: int, arch: str) -> list[tuple[int, list]]:
    """Every start offset whose clean decoding has an instruction starting at the mark."""
    found = []
    for s in range(0, mark + 1):
        insns = _run(data[: mark], s, arch) if s < mark else []
        if s == mark or (insns and insns[-1].address + insns[-1].size == mark
                         and sum(i.size for i in insns) == mark - s):
            found.append((s, insns))
    return found


def _sync_point(cands: list[tuple[int, list]], best: list, mark: int) -> int:
    """Smallest offset from which every instruction of `best` is confirmed.

    Some start a byte or two before any boundary b can always decode one junk instruction
    that skips b and still land on the mark, so a boundary is confirmed when every landing
    decoding that starts 8 or more bytes before it passes through it, and at most a third of
    all landing decodings that start before it disagree.
    """
    bounds = [(s, {i.address for i in insns}) for s, insns in cands]
    sync = mark
    for i in reversed(best):
        b = i.address
        prior = [(s, b in bd) for s, bd in bounds if s <= b]
        far_ok = all(ok for s, ok in prior if s <= b - 8)
        dissent = sum(1 for _, ok in prior if not ok)
        if far_ok and dissent * 3 <= len(prior):
            sync = b
        else:
            break
    return sync


def decode_x86(code: CodeBytes, arch: str = "x86_64") -> Decoded:
    data, mark = code.data, code.trap_offset
    if not data or mark is None or mark >= len(data):
        return Decoded(code, (), None, 0, 0, 0, code.note or "no code bytes at the trapping IP")
    after = _run(data, mark, arch)
    if not after:
        return Decoded(code, (), None, mark, mark, 0,
                       f"the marked byte {data[mark]:02x} does not start a valid instruction "
                       f"({len(data) - mark} bytes from the mark)")
    cands = _x86_candidates(data, mark, arch)
    start, before = max(cands, key=lambda c: (len(c[1]), -c[0]))
    sync = _sync_point(cands, before, mark)
    insns = _wrap(arch, before + after)
    trap_index = len(before)
    problem = None
    if not code.complete:
        problem = code.note
    return Decoded(code, insns, trap_index, start, sync, len(cands), problem)


def decode_words(code: CodeBytes, arch: str) -> Decoded:
    """Fixed-width ISAs (arm64, arm): every word is an instruction; decode each on its own."""
    data, mark = code.data, code.trap_offset
    if not data or mark is None:
        return Decoded(code, (), None, 0, 0, 0, code.note or "no code bytes at the trapping PC")
    width = 2 if code.note and "Thumb" in code.note else 4
    if arch == "arm" and width == 2:
        arch = "arm-thumb"
    insns, trap_index, bad = [], None, []
    off = 0
    while off + width <= len(data):
        got = list(_md(arch, False).disasm(data[off:off + 4 if width == 2 else off + width], off, count=1))
        if got and (got[0].size == width or width == 2):
            i = got[0]
            if off == mark:
                trap_index = len(insns)
            insns.append(Insn(off, i.size, bytes(i.bytes), i.mnemonic, i.op_str, i))
            off += i.size
        else:
            bad.append(off)
            off += width
    problem = None
    if trap_index is None:
        problem = f"the marked word at +{mark:#x} does not decode as an instruction"
    elif not code.complete:
        problem = code.note
    return Decoded(code, tuple(insns), trap_index, 0, 0, 1, problem)


@lru_cache(maxsize=256)
def decode(code: CodeBytes) -> Decoded:
    """Decode a Code window for its architecture (cached: several analyzers ask for it)."""
    if code.arch in ("x86_64", "i386", "x86"):
        return decode_x86(code, "i386" if code.arch == "x86" else code.arch)
    return decode_words(code, code.arch)


def listing(d: Decoded, ip: int | None = None) -> tuple[str, ...]:
    """decodecode-style lines: window offset, bytes, instruction; the trap marked with `*`.

    Offsets are positions in the Code window, so `objdump -D -b binary --start-address=N`
    on the same bytes prints the same numbers. Instructions before the point where every
    alignment agrees are prefixed with `?`.
    """
    lines = []
    for n, i in enumerate(d.insns):
        star = "*" if n == d.trap_index else ("?" if n < (d.trap_index or 0) and i.offset < d.sync else " ")
        hexb = " ".join(f"{b:02x}" for b in i.raw)
        text = f"{i.mnemonic} {i.op_str}".strip()
        line = f"{i.offset:4x}:{star}  {hexb:<30} {text}"
        if n == d.trap_index:
            line += "    <-- trapping instruction"
            if ip is not None:
                line += f" (at {ip:#x})"
        lines.append(line)
    return tuple(lines)
