"""The faulting instruction and where its base register came from, read from the dump's own memory.

capstone disassembles the function from its symbol start to the faulting PC (x86_64 kernel code
decodes linearly from a function start); the walk back finds the last write of the base register
and, when that write is a load `mov B, [R + D]` with R intact since, the address the value came from.
"""

from __future__ import annotations

from dataclasses import dataclass

X86_GP = {"rax", "rbx", "rcx", "rdx", "rsi", "rdi", "rbp", "rsp", "r8", "r9", "r10", "r11", "r12", "r13", "r14", "r15"}
ARG_REGS = ("rdi", "rsi", "rdx", "rcx", "r8", "r9")
# a call may change these (SysV x86_64 ABI); capstone does not list them among a `call`'s writes
CALL_CLOBBERED = frozenset({"rax", "rcx", "rdx", "rsi", "rdi", "r8", "r9", "r10", "r11"})
_SUB = {
    "eax": "rax",
    "ax": "rax",
    "al": "rax",
    "ebx": "rbx",
    "bx": "rbx",
    "bl": "rbx",
    "ecx": "rcx",
    "cx": "rcx",
    "cl": "rcx",
    "edx": "rdx",
    "dx": "rdx",
    "dl": "rdx",
    "esi": "rsi",
    "si": "rsi",
    "sil": "rsi",
    "edi": "rdi",
    "di": "rdi",
    "dil": "rdi",
    "ebp": "rbp",
    "bp": "rbp",
    "bpl": "rbp",
    "esp": "rsp",
    "sp": "rsp",
    "spl": "rsp",
}


def full_reg(name: str) -> str:
    n = name.lower()
    if n in _SUB:
        return _SUB[n]
    if n.startswith("r") and n[1:].rstrip("dwb").isdigit():
        return "r" + n[1:].rstrip("dwb")
    return n


@dataclass
class Access:
    insn: str  # AT&T text of the instruction
    pc: int
    base: str | None
    index: str | None
    disp: int
    size: int
    write: bool


@dataclass
class Origin:
    """`base` was loaded from [reg + disp] by `insn` at `pc`; `reg` unchanged since, so its dump value holds."""

    base: str
    insn: str
    pc: int
    reg: str
    disp: int
    size: int
    reg_intact: bool
    arg_index: int | None  # reg is the n-th argument register and not written since the function entry


def _cs():
    import capstone

    md = capstone.Cs(capstone.CS_ARCH_X86, capstone.CS_MODE_64)
    md.detail = True
    md.syntax = capstone.CS_OPT_SYNTAX_ATT
    return md


def function_insns(prog, pc: int, limit: int = 0x4000):
    """(instructions from the function start through the one at pc, symbol) or ([], None)."""
    try:
        sym = prog.symbol(pc)
    except LookupError:
        return [], None
    start = sym.address
    if not 0 <= pc - start < limit:
        return [], sym
    code = prog.read(start, pc - start + 16)
    out = []
    for insn in _cs().disasm(code, start):
        out.append(insn)
        if insn.address >= pc:
            break
    if not out or out[-1].address != pc:
        return [], sym  # the linear decode did not land on pc: not trusted
    return out, sym


def _writes(insn) -> set[str]:
    try:
        _, w = insn.regs_access()
    except Exception:  # noqa: BLE001
        return set()
    out = {full_reg(insn.reg_name(r)) for r in w}
    if insn.mnemonic.startswith("call"):
        out |= CALL_CLOBBERED
    return out


def memory_access(insn) -> Access | None:
    import capstone.x86 as X

    for op in insn.operands:
        if op.type == X.X86_OP_MEM:
            if insn.mnemonic.startswith(("lea", "nop", "prefetch")):
                return None
            base = full_reg(insn.reg_name(op.mem.base)) if op.mem.base else None
            index = full_reg(insn.reg_name(op.mem.index)) if op.mem.index else None
            write = bool(op.access & capstone_write())
            return Access(f"{insn.mnemonic} {insn.op_str}", insn.address, base, index, op.mem.disp, op.size, write)
    return None


def capstone_write() -> int:
    import capstone

    return capstone.CS_AC_WRITE


def origin_of(insns, reg: str) -> Origin | None:
    """The load that last set `reg` before the last instruction (the trap), if it is `mov reg, [R + D]`."""
    import capstone.x86 as X

    before = insns[:-1]
    for i in range(len(before) - 1, -1, -1):
        ins = before[i]
        if reg not in _writes(ins):
            continue
        if not ins.mnemonic.startswith("mov") or len(ins.operands) != 2:
            return None
        src, dst = ins.operands[0], ins.operands[1]  # AT&T order: source first
        if dst.type != X.X86_OP_REG or src.type != X.X86_OP_MEM or src.mem.index or not src.mem.base:
            return None
        r = full_reg(ins.reg_name(src.mem.base))
        if r == "rip":
            return None
        later = [j for j in before[i + 1 :]]
        intact = r != reg and not any(r in _writes(j) for j in later)
        arg_index = None
        if r in ARG_REGS and not any(r in _writes(j) for j in before[:i]) and intact:
            arg_index = ARG_REGS.index(r)
        return Origin(reg, f"{ins.mnemonic} {ins.op_str}", ins.address, r, src.mem.disp, src.size, intact, arg_index)
    return None
