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
from capstone import CsInsn

from ktriage.model import CodeBytes


@dataclass(frozen=True)
class Insn:
    """One decoded instruction; `cs` is the capstone instruction with detail (Intel operand order)."""

    offset: int  # in the window
    size: int
    raw: bytes
    mnemonic: str
    op_str: str  # AT&T for x86 (as objdump/crash print it), native for arm
    cs: CsInsn  # capstone ships no type stubs: this is Any to mypy

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
    """AT&T text as objdump prints it (capstone differs in suffixes, small numbers and scale 1)."""
    if arch not in ("x86_64", "i386", "x86"):
        return "", ""
    i = next(_md(arch, True).disasm(raw, offset), None)
    if not i:
        return "(bad)", ""
    intel = next(_md(arch, False).disasm(raw, offset), None)
    ops = i.op_str.replace(", ", ",")
    ops = _DEC_IMM.sub(_hex_imm, ops)
    ops = _DEC_DISP.sub(lambda m: f"{m.group(1)}{m.group(2)}{int(m.group(3)):#x}", ops)
    ops = _NO_SCALE.sub(r"(\1,\2,1)", ops)
    ops = _NO_BASE_DISP.sub(r"\g<1>0x0(,", ops)
    return _objdump_mnemonic(i, intel), ops


_DEC_IMM = re.compile(r"\$(-?)(\d+)(?![x\d])")
_DEC_DISP = re.compile(r"(^|[,\s*:])(-?)(\d+)(?=\()")  # capstone: 8(%rax); objdump: 0x8(%rax)
_NO_SCALE = re.compile(r"\((%\w+),(%\w+)\)")  # capstone: (%rdx,%rax); objdump: (%rdx,%rax,1)
_NO_BASE_DISP = re.compile(r"(^|[,\s*:])\(,")  # capstone: (,%rdx,4); objdump: 0x0(,%rdx,4)


def _hex_imm(m: re.Match) -> str:
    """Capstone prints small immediates in decimal; objdump and crash print hex."""
    return f"${m.group(1)}{int(m.group(2)):#x}"


def _objdump_mnemonic(att, intel) -> str:
    """Drop capstone's AT&T size suffix where objdump does: when a register operand of the full
    operand size already says the size (`movq 0x18(%rdi),%rdi` -> `mov`), and always on near
    branches (`jmpq *(%rdi)` -> `jmp`, `retq` -> `ret`). Memory-only forms keep it (`decq 0x8(%rax)`)."""
    mn = att.mnemonic
    if intel is None or mn[-1:] not in ("b", "w", "l", "q") or mn[:-1] != intel.mnemonic.split()[-1]:
        return mn
    if att.group(1) or att.group(2) or att.group(3) or intel.mnemonic in ("push", "pop", "leave"):
        return mn[:-1]  # CS_GRP_JUMP, CALL, RET
    from capstone import x86 as _x86

    sizes = [op.size for op in att.operands]
    if any(op.type == _x86.X86_OP_REG and op.size == max(sizes) for op in att.operands):
        return mn[:-1]
    return mn


def _wrap(arch: str, insns: list) -> tuple[Insn, ...]:
    out = []
    for i in insns:
        mn, ops = _att(arch, bytes(i.bytes), i.address)
        if not mn:
            mn, ops = i.mnemonic, i.op_str
        out.append(Insn(i.address, i.size, bytes(i.bytes), mn, ops, i))
    return tuple(out)


# Start offsets tried before the mark: the kernel prints 42 bytes before the IP. Bounding them keeps the
# work linear in the window (every start decodes up to the mark) whatever a forged `Code:` line holds.
MAX_SYNC_BYTES = 64


def _x86_candidates(data: bytes, mark: int, arch: str) -> list[tuple[int, list]]:
    """Every start offset (within MAX_SYNC_BYTES of the mark) whose clean decoding has an instruction
    starting at the mark."""
    found = []
    for s in range(max(0, mark - MAX_SYNC_BYTES), mark + 1):
        insns = _run(data[:mark], s, arch) if s < mark else []
        if s == mark or (
            insns and insns[-1].address + insns[-1].size == mark and sum(i.size for i in insns) == mark - s
        ):
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


def decode_x86(code: CodeBytes, arch: str = "x86_64", entry: int | None = None) -> Decoded:
    """`entry`: window offset of the function's first byte when the oops says `func+off` (an
    instruction certainly starts there, so a decoding from it that lands on the mark is not a guess)."""
    data, mark = code.data, code.trap_offset
    if not data or mark is None or mark >= len(data):
        return Decoded(code, (), None, 0, 0, 0, code.note or "no code bytes at the trapping IP")
    after = _run(data, mark, arch)
    if not after:
        return Decoded(
            code,
            (),
            None,
            mark,
            mark,
            0,
            f"the marked byte {data[mark]:02x} does not start a valid instruction "
            f"({len(data) - mark} bytes from the mark)",
        )
    cands = _x86_candidates(data, mark, arch)
    start, before = max(cands, key=lambda c: (len(c[1]), -c[0]))
    sync = _sync_point(cands, before, mark)
    known = next((c for c in cands if c[0] == entry), None) if entry is not None and 0 <= entry <= mark else None
    if known is not None and entry is not None and sync > entry:
        # keep the best decoding if it passes through the entry, else decode from the entry itself
        if not any(i.address == entry for i in before):
            start, before = known
        sync = entry
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
    insns: list[Insn] = []
    trap_index: int | None = None
    bad: list[int] = []
    off = 0
    while off + width <= len(data):
        got = list(_md(arch, False).disasm(data[off : off + 4 if width == 2 else off + width], off, count=1))
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
def decode(code: CodeBytes, entry: int | None = None) -> Decoded:
    """Decode a Code window for its architecture (cached: several analyzers ask for it).

    `entry` is the window offset where the trapping function starts, when known (x86 only)."""
    if code.arch in ("x86_64", "i386", "x86"):
        return decode_x86(code, "i386" if code.arch == "x86" else code.arch, entry)
    return decode_words(code, code.arch)


def listing(d: Decoded, ip: int | None = None) -> tuple[str, ...]:
    """decodecode-style lines: window offset, bytes, instruction; the trap marked with `*`.

    Offsets are positions in the Code window, so `objdump -D -b binary --start-address=N`
    on the same bytes prints the same numbers. Instructions before the point where every
    alignment agrees are prefixed with `?`.
    """
    lines = []
    run = 0
    for n, i in enumerate(d.insns):
        # a run of one-byte padding (int3 / nop between functions) is one line, not dozens
        if n != d.trap_index and i.size == 1 and i.raw in (b"\xcc", b"\x90"):
            nxt = d.insns[n + 1] if n + 1 < len(d.insns) else None
            if nxt is not None and n + 1 != d.trap_index and nxt.raw == i.raw:
                run += 1
                continue
            if run:
                first = i.offset - run
                text = f"{i.mnemonic} x {run + 1} (padding)"
                lines.append(
                    f"{first:4x}:{'?' if i.offset < d.sync and n < (d.trap_index or 0) else ' '}  "
                    f"{(i.raw.hex() + ' ..'):<30} {text}"
                )
                run = 0
                continue
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
