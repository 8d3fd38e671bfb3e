"""The memory operand of the trapping instruction and its effective address.

From `mov 0xa30(%rax),%rdx` and the register dump we compute the address the CPU tried to
access (base + index*scale + disp) and compare it with the fault address the kernel reported
(CR2 / FAR). Agreement proves which register was the bad pointer; disagreement is reported too,
because it means the registers are not the ones of the faulting instant (or the bytes lie).

Register names are converted to the names the oops prints (`RAX`, `R8`, `x19`, `lr`), so that
findings speak the user's language and look-ups go through `Crash.reg`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from capstone import arm, arm64, x86

from ktriage.insn.decode import Insn
from ktriage.insn.values import MASK64

RegLookup = Callable[[str], "int | None"]

_X86_PARENT: dict[str, str] = {}
for _q, _d, _w, _b in (
    ("rax", "eax", "ax", "al"),
    ("rbx", "ebx", "bx", "bl"),
    ("rcx", "ecx", "cx", "cl"),
    ("rdx", "edx", "dx", "dl"),
    ("rsi", "esi", "si", "sil"),
    ("rdi", "edi", "di", "dil"),
    ("rbp", "ebp", "bp", "bpl"),
    ("rsp", "esp", "sp", "spl"),
    ("rip", "eip", "ip", ""),
):
    for _n in (_q, _d, _w, _b):
        if _n:
            _X86_PARENT[_n] = _q
_X86_PARENT.update({"ah": "rax", "bh": "rbx", "ch": "rcx", "dh": "rdx"})
for _i in range(8, 16):
    for _s in ("", "d", "w", "b"):
        _X86_PARENT[f"r{_i}{_s}"] = f"r{_i}"

_ARM_ALIASES = {"sb": "r9", "sl": "r10"}


def dump_name(reg: str, arch: str) -> str:
    """The register's name as the oops prints it (full-width register for sub-registers)."""
    reg = reg.lower()
    if arch == "x86_64":
        full = _X86_PARENT.get(reg, reg).upper()
        return {"R8": "R08", "R9": "R09"}.get(full, full)  # the oops prints R08/R09
    if arch in ("i386", "x86"):
        return ("E" + _X86_PARENT.get(reg, reg)[1:]).upper() if reg in _X86_PARENT else reg.upper()
    if arch == "arm64":
        if reg in ("x30", "w30"):
            return "lr"
        if reg == "x29" or reg == "fp":
            return "x29"
        if reg in ("wsp", "sp"):
            return "sp"
        if reg[0] == "w" and reg[1:].isdigit():
            return "x" + reg[1:]
        return reg
    if arch == "arm":
        return _ARM_ALIASES.get(reg, reg)
    return reg


@dataclass(frozen=True)
class MemAccess:
    """One memory operand: who formed the address and what address it was."""

    base: str | None
    index: str | None
    scale: int
    disp: int
    size: int | None
    segment: str | None = None
    access: str = "read"  # read, write, read-write
    ea: int | None = None
    values: Mapping[str, int] = field(default_factory=dict)  # register values used
    missing: tuple[str, ...] = ()  # registers whose values the dump lacks
    writeback: str | None = None  # "pre" / "post" (arm64 writeback addressing)
    extend: str | None = None  # index extension/shift description (arm64)
    # arm64: the kernel reports the fault address untagged (do_mem_abort: untagged_addr(FAR) = bits 63..56
    # copied from bit 55): a pointer 0x6b6b6b6b6b6b6b6b faults as "virtual address 006b6b6b6b6b6b6b"
    untag: bool = False

    def formula(self) -> str:
        """`[RAX + 0xa30]`-style text of the address computation."""
        parts = []
        if self.segment:
            parts.append(f"{self.segment.upper()}_BASE")
        if self.base:
            parts.append(self.base)
        if self.index:
            idx = (
                self.index + (f"*{self.scale}" if self.scale != 1 else "") + (f" {self.extend}" if self.extend else "")
            )
            parts.append(idx)
        text = " + ".join(parts) if parts else ""
        if self.disp or not parts:
            sign = "-" if self.disp < 0 and parts else "+"
            text = f"{text} {sign} {abs(self.disp):#x}" if parts else f"{self.disp & MASK64:#x}"
        return f"[{text}]"

    def matches(self, fault: int) -> bool:
        """True when the reported fault address lies inside the accessed bytes."""
        if self.ea is None:
            return False
        size = self.size or 1
        if (fault - self.ea) & MASK64 < max(size, 1):
            return True
        return self.untag and (fault - untagged(self.ea)) & MASK64 < max(size, 1)


def untagged(v: int) -> int:
    """arm64 untagged_addr(): sign-extend from bit 55 (the top byte is a tag, ignored by the MMU)."""
    v &= MASK64
    return v | (0xFF << 56) if v >> 55 & 1 else v & ~(0xFF << 56)


_NO_ACCESS = ("lea", "nop", "prefetch", "prfm", "prfum", "clflush", "clflushopt", "clwb", "invlpg", "bnd")


def memory_accesses(insn: Insn, arch: str, reg: RegLookup, ip: int | None = None) -> list[MemAccess]:
    """Every memory operand of `insn` that really touches memory (not `lea`, not prefetch)."""
    cs = insn.cs
    if any(cs.mnemonic.startswith(p) for p in _NO_ACCESS):
        return []
    if arch in ("x86_64", "i386", "x86"):
        return [_x86_mem(cs, op, arch, reg, ip) for op in cs.operands if op.type == x86.X86_OP_MEM]
    if arch == "arm64":
        return _arm64_mems(cs, reg)
    if arch == "arm":
        return [_arm_mem(cs, op, reg) for op in cs.operands if op.type == arm.ARM_OP_MEM]
    return []


def _access(op) -> str:
    a = getattr(op, "access", 0) or 0
    return {1: "read", 2: "write", 3: "read-write"}.get(a, "read")


def _x86_mem(cs, op, arch: str, reg: RegLookup, ip: int | None) -> MemAccess:
    m = op.mem
    base = cs.reg_name(m.base) if m.base else None
    index = cs.reg_name(m.index) if m.index else None
    seg = cs.reg_name(m.segment) if m.segment else None
    bits = 64 if arch == "x86_64" else 32
    mask = (1 << bits) - 1
    values: dict[str, int] = {}
    missing: list[str] = []
    ea = m.disp
    if base in ("rip", "eip"):
        if ip is None:
            missing.append("RIP")
        else:
            ea += ip + cs.size
        base_name: str | None = "RIP"
    else:
        base_name = dump_name(base, arch) if base else None
    for name, mult in (
        (base_name if base not in ("rip", "eip") else None, 1),
        (dump_name(index, arch) if index else None, m.scale),
    ):
        if not name:
            continue
        v = reg(name)
        if v is None:
            missing.append(name)
        else:
            values[name] = v
            ea += v * mult
    if seg in ("fs", "gs") and bits == 64:
        v = reg(seg.upper())
        if v is None:
            missing.append(seg.upper() + " base")
        else:
            values[seg.upper()] = v
            ea += v
    return MemAccess(
        base_name,
        dump_name(index, arch) if index else None,
        m.scale,
        m.disp,
        op.size or None,
        seg if seg in ("fs", "gs") else None,
        _access(op),
        None if missing else ea & mask,
        values,
        tuple(missing),
    )


def _arm64_size(cs, reg_ops: list) -> int | None:
    """Access size from the mnemonic suffix (b/h/sw) or the data register width; pairs double it."""
    mn = cs.mnemonic.split(".")[0]
    pair = mn in ("ldp", "stp", "ldnp", "stnp", "ldpsw", "ldxp", "stxp", "ldaxp", "stlxp", "ldiapp", "stilp")
    if mn.endswith("sw"):
        return 4 * (2 if pair else 1)
    if mn.endswith("b") and mn not in ("sub", "b"):
        return 1
    if mn.endswith("h"):
        return 2
    if not reg_ops:
        return None
    name = cs.reg_name(reg_ops[0].reg)
    width = {"w": 4, "x": 8, "q": 16, "d": 8, "s": 4, "h": 2, "b": 1}.get(name[0], 8)
    if name.startswith("v"):
        width = 16
    return width * (2 if pair else 1)


def _arm64_mems(cs, reg: RegLookup) -> list[MemAccess]:
    ops = list(cs.operands)
    out = []
    reg_ops = [o for o in ops if o.type == arm64.ARM64_OP_REG]
    for n, op in enumerate(ops):
        if op.type != arm64.ARM64_OP_MEM:
            continue
        post = n + 1 < len(ops) and ops[n + 1].type == arm64.ARM64_OP_IMM and cs.writeback
        m = op.mem
        base = dump_name(cs.reg_name(m.base), "arm64") if m.base else None
        index = cs.reg_name(m.index) if m.index else None
        values: dict[str, int] = {}
        missing: list[str] = []
        ea = 0 if post else m.disp
        extend = None
        if base:
            v = reg(base)
            if v is None:
                missing.append(base)
            else:
                values[base] = v
                ea += v
        scale = 1
        if index:
            iname = dump_name(index, "arm64")
            v = reg(iname)
            shift = op.shift.value if op.shift.type else 0
            scale = 1 << shift
            ext = op.ext
            if v is None:
                missing.append(iname)
            else:
                values[iname] = v
                if ext in (arm64.ARM64_EXT_SXTW, arm64.ARM64_EXT_UXTW) or index.startswith("w"):
                    v &= 0xFFFFFFFF
                    if ext == arm64.ARM64_EXT_SXTW and v >> 31:
                        v -= 1 << 32
                    extend = "sxtw" if ext == arm64.ARM64_EXT_SXTW else "uxtw"
                ea += v << shift
            index = iname
        wb = ("post" if post else "pre") if cs.writeback else None
        out.append(
            MemAccess(
                base,
                index,
                scale,
                0 if post else m.disp,
                _arm64_size(cs, reg_ops),
                None,
                _access(op),
                None if missing else ea & MASK64,
                values,
                tuple(missing),
                wb,
                extend,
                untag=True,
            )
        )
    return out


def _arm_mem(cs, op, reg: RegLookup) -> MemAccess:
    m = op.mem
    base = dump_name(cs.reg_name(m.base), "arm") if m.base else None
    index = dump_name(cs.reg_name(m.index), "arm") if m.index else None
    values: dict[str, int] = {}
    missing: list[str] = []
    ea = m.disp
    scale = 1 << (op.shift.value if op.shift.type == arm.ARM_SFT_LSL else 0)
    for name, mult in ((base, 1), (index, scale * (-1 if op.subtracted else 1))):
        if not name:
            continue
        v = reg(name)
        if v is None:
            missing.append(name)
        else:
            values[name] = v
            ea += v * mult
    mn = cs.mnemonic
    size = 1 if "b" in mn[3:] else 2 if "h" in mn[3:] else 8 if mn.startswith(("ldrd", "strd")) else 4
    return MemAccess(
        base,
        index,
        scale,
        m.disp,
        size,
        None,
        _access(op),
        None if missing else ea & 0xFFFFFFFF,
        values,
        tuple(missing),
    )


@dataclass(frozen=True)
class BranchTarget:
    """An indirect branch: where the CPU was sent and through which register/memory."""

    via: str  # "RAX", "[RSP]", "x1", "lr"
    value: int | None
    kind: str  # call, jump, return


def indirect_branch(insn: Insn, arch: str, reg: RegLookup, before: tuple[Insn, ...] = ()) -> BranchTarget | None:
    """`call *%rax`, `jmp *%rax`, `blr x1`, `ret` (target from [RSP]/lr) or None.

    A retpoline thunk (`mov %rax,(%rsp); ret`) returns to the register's value: when the
    instruction just before `ret` stores a register to (%rsp), that register is the target.
    """
    cs = insn.cs
    mn = cs.mnemonic
    if arch in ("x86_64", "i386", "x86"):
        if mn.startswith(("call", "jmp")) and cs.operands and cs.operands[0].type == x86.X86_OP_REG:
            name = dump_name(cs.reg_name(cs.operands[0].reg), arch)
            return BranchTarget(name, reg(name), "call" if mn.startswith("call") else "jump")
        if mn.startswith("ret"):
            prev = before[-1].cs if before else None
            if prev is not None and prev.mnemonic.startswith("mov") and len(prev.operands) == 2:
                dst, src = prev.operands[0], prev.operands[1]
                if (
                    dst.type == x86.X86_OP_MEM
                    and prev.reg_name(dst.mem.base) in ("rsp", "esp")
                    and not dst.mem.index
                    and dst.mem.disp == 0
                    and src.type == x86.X86_OP_REG
                ):
                    name = dump_name(prev.reg_name(src.reg), arch)
                    return BranchTarget(name, reg(name), "return (retpoline thunk: mov %s,(%%rsp); ret)" % name)
            return BranchTarget("[RSP]", None, "return")
        return None
    if arch == "arm64":
        if mn in ("blr", "br", "blraa", "blrab", "braa", "brab", "blraaz", "blrabz", "braaz", "brabz"):
            name = dump_name(cs.reg_name(cs.operands[0].reg), arch)
            return BranchTarget(name, reg(name), "call" if mn.startswith("blr") else "jump")
        if mn in ("ret", "retaa", "retab"):
            name = dump_name(cs.reg_name(cs.operands[0].reg), arch) if cs.operands else "lr"
            return BranchTarget(name, reg(name), "return")
    return None


def is_trap_insn(insn: Insn, arch: str) -> str | None:
    """The kind of deliberate trap (`ud2`, `brk #0x800`...) the instruction is, if it is one."""
    mn = insn.cs.mnemonic
    if arch in ("x86_64", "i386", "x86"):
        if mn in ("ud2", "ud1", "ud0"):
            return mn
        if mn == "int3":
            return "int3"
        return None
    if arch == "arm64" and mn == "brk":
        return f"brk {insn.cs.op_str}"
    if arch == "arm" and (insn.raw == bytes.fromhex("f001f0e7") or mn in ("udf", "bkpt")):
        return "BUG trap (udf)"
    return None
