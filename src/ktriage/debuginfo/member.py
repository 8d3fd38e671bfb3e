"""Name the C expression behind the faulting access: `port->dev->rx_count`.

From the `insn.bad-access` base register and displacement, at the faulting PC:

1. which variable (parameter/local, of the function or of a function inlined there) *lives in*
   the base register: drgn evaluates every variable's DWARF location with the oops registers, then
   again with only that register changed to a sentinel; a variable whose value follows the sentinel
   is located in that register (identity by location, not by a coincidence of values);
2. if none does (a temporary: `port->dev` loaded into RAX), walk back in the function's own code
   (from the debug file, not only the 42-byte Code: window) to the instruction that wrote the
   register: `mov 0xf0(%rdi),%rax` -> resolve RDI the same way at that instruction -> `port`, then
   the member of `*port` at 0xf0 is `dev` -> `port->dev`;
3. the member of the pointee type at the displacement (nested structs/arrays give a path:
   `stats.rx[3]`), with its type and offset.

x86_64 (AT&T: `mov 0xf0(%rdi),%rax`) and arm64 (`ldr x0, [x0, #0xf0]`, `ldur`, `ldr w..` loads and
`mov` register copies; registers by their dump names x0..x30, sp: on arm64 the pt_regs field, the
oops' name and the DWARF register are one name). Straight-line walk only: a jump target between the
load and the fault lowers the confidence.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import capstone
from capstone import arm64_const as A
from capstone import x86_const as X

# capstone register name (any width) -> pt_regs field
_FAMILY = {
    "ax": ("rax", "eax", "ax", "al", "ah"),
    "bx": ("rbx", "ebx", "bx", "bl", "bh"),
    "cx": ("rcx", "ecx", "cx", "cl", "ch"),
    "dx": ("rdx", "edx", "dx", "dl", "dh"),
    "si": ("rsi", "esi", "si", "sil"),
    "di": ("rdi", "edi", "di", "dil"),
    "bp": ("rbp", "ebp", "bp", "bpl"),
    "sp": ("rsp", "esp", "sp", "spl"),
}
CS2PT = {n: f for f, ns in _FAMILY.items() for n in ns}
for _i in range(8, 16):
    for _s in ("", "d", "w", "b"):
        CS2PT[f"r{_i}{_s}"] = f"r{_i}"
# oops dump name -> pt_regs field
DUMP2PT = {
    "RAX": "ax",
    "RBX": "bx",
    "RCX": "cx",
    "RDX": "dx",
    "RSI": "si",
    "RDI": "di",
    "RBP": "bp",
    "RSP": "sp",
    **{f"R{i:02d}": f"r{i}" for i in range(8, 16)},
    **{f"R{i}": f"r{i}" for i in range(8, 16)},
}
PT2DUMP = {
    "ax": "RAX",
    "bx": "RBX",
    "cx": "RCX",
    "dx": "RDX",
    "si": "RSI",
    "di": "RDI",
    "bp": "RBP",
    "sp": "RSP",
    **{f"r{i}": f"R{i:02d}" for i in range(8, 16)},
}
SENTINEL = 0x5EED_0000_0000_0000
# arm64: capstone says fp/lr for x29/x30 and w<n> for the 32-bit view of x<n>; the oops and pt_regs say x<n>
A64 = {
    **{f"x{i}": f"x{i}" for i in range(31)},
    **{f"w{i}": f"x{i}" for i in range(31)},
    "fp": "x29",
    "lr": "x30",
    "sp": "sp",
    "wsp": "sp",
}
_UNCOND = ("jmp", "jmpq", "ljmp", "b", "br")


def arch_regs(arch: str) -> dict[str, str]:
    """capstone register name -> pt_regs field (x86_64) / dump name (arm64)."""
    return A64 if arch == "arm64" else CS2PT


def reg_field(dump_name: str | None, arch: str) -> str | None:
    """The oops' register name (insn.bad-access `base`) -> the key Resolver works with."""
    if not dump_name:
        return None
    if arch == "arm64":
        return A64.get(dump_name.lower())
    return DUMP2PT.get(dump_name)


@dataclass
class Reading:
    """One way to read `base + disp`: the expression, its type and how sure we are."""

    expression: str
    base_expression: str
    base_type: str
    member: str | None
    member_type: str | None
    member_offset: int | None
    confidence: str
    how: list[str] = field(default_factory=list)
    steps: list[dict] = field(default_factory=list)


def disassemble(code: bytes, address: int, att: bool = True, arch: str = "x86_64") -> list[Any]:
    """capstone instructions (with details) of `code` at `address`; x86_64 in AT&T syntax unless att=False,
    arm64 in the kernel's (objdump's) syntax."""
    if arch == "arm64":
        md = capstone.Cs(capstone.CS_ARCH_ARM64, capstone.CS_MODE_ARM)
        step = 4  # fixed width: an undecodable word (data, a literal pool) is skipped whole
    else:
        md = capstone.Cs(capstone.CS_ARCH_X86, capstone.CS_MODE_64)
        step = 1
    md.detail = True
    if att and arch != "arm64":
        md.syntax = capstone.CS_OPT_SYNTAX_ATT
    out, off = [], 0
    while off < len(code):  # capstone stops at an undecodable byte: skip it and go on
        start = off
        for i in md.disasm(code[off:], address + off):
            out.append(i)
            off += i.size
        if off == start:
            off += step
    return out


def written_regs(i: Any, arch: str = "x86_64") -> set[str]:
    try:
        _, w = i.regs_access()
    except capstone.CsError:
        return set()
    names = arch_regs(arch)
    return {names[i.reg_name(r)] for r in w if i.reg_name(r) in names}


def member_path(t: Any, offset: int, want_size: int | None = None) -> list[tuple[str, Any, int]]:
    """[(path, type, offset)] of members of struct/union type `t` at exactly `offset` (deepest first)."""
    import drgn

    t = _strip(t)
    out: list[tuple[str, Any, int]] = []
    if t.kind not in (drgn.TypeKind.STRUCT, drgn.TypeKind.UNION):
        return out
    for m in t.members or ():
        mo = m.bit_offset // 8
        try:
            msize = drgn.sizeof(m.type)
        except (TypeError, ValueError):
            msize = 0
        if not (mo <= offset < mo + max(msize, 1)):
            continue
        name = m.name
        mt = _strip(m.type)
        rel = offset - mo
        if mt.kind in (drgn.TypeKind.STRUCT, drgn.TypeKind.UNION):
            inner = member_path(mt, rel, want_size)
            for p, ty, _ in inner:
                out.append(((f"{name}.{p}" if name else p), ty, offset))
            if rel == 0 and name:
                out.append((name, m.type, offset))
        elif mt.kind == drgn.TypeKind.ARRAY and mt.length:
            et = mt.type
            es = drgn.sizeof(et)
            if es:
                idx, r2 = divmod(rel, es)
                if r2 == 0:
                    out.append((f"{name}[{idx}]", et, offset))
                else:
                    for p, ty, _ in member_path(et, r2, want_size):
                        out.append((f"{name}[{idx}].{p}", ty, offset))
        elif rel == 0 and name:
            out.append((name, m.type, offset))
    # prefer the deepest path whose size fits the access
    return out


def _strip(t: Any) -> Any:
    import drgn

    while t.kind == drgn.TypeKind.TYPEDEF:
        t = t.type
    return t


def pointee(t: Any) -> Any | None:
    import drgn

    t = _strip(t)
    if t.kind != drgn.TypeKind.POINTER:
        return None
    p = _strip(t.type)
    return p if p.kind in (drgn.TypeKind.STRUCT, drgn.TypeKind.UNION) else None


def type_name(t: Any) -> str:
    try:
        return t.type_name()
    except Exception:
        return str(t)


class Resolver:
    def __init__(
        self, session: Any, regs: dict[str, int], insns: list[Any], fault_index: int, arch: str | None = None
    ) -> None:
        self.s = session
        self.arch = arch or getattr(session, "machine", None) or "x86_64"
        self.names = arch_regs(self.arch)
        if self.arch == "arm64":
            self.regs = {A64[k.lower()]: v for k, v in regs.items() if k.lower() in A64}
        else:
            self.regs = {DUMP2PT.get(k, k): v for k, v in regs.items()}
        self.insns = insns
        self.fault_index = fault_index
        self._cache: dict[tuple[int, str], list[tuple[str, Any]]] = {}

    def _dump(self, reg: str) -> str:
        return reg if self.arch == "arm64" else PT2DUMP.get(reg, reg)

    def _values(self, pc: int, over: dict[str, int]) -> dict[str, tuple[int, Any]]:
        dump = {self._dump(k): v for k, v in {**self.regs, **over}.items()}
        trace = self.s.frame_at(pc, dump)
        out: dict[str, tuple[int, Any]] = {}
        if trace is None:
            return out
        for fr in trace:
            for name in fr.locals():
                try:
                    o = fr[name]
                    if o.absent_:
                        continue
                    v = o.value_()
                except Exception:
                    continue
                if isinstance(v, int):
                    out.setdefault(f"{name}@{fr.name}", (v, o.type_))
            if not fr.is_inline:
                break
        return out

    def vars_in(self, pc: int, reg: str) -> list[tuple[str, Any]]:
        """Variables located in pt_regs field `reg` at `pc` (sentinel test)."""
        key = (pc, reg)
        if key in self._cache:
            return self._cache[key]
        a = self._values(pc, {reg: SENTINEL})
        b = self._values(pc, {reg: SENTINEL + 0x1000})
        hits = []
        for k, (v, t) in a.items():
            if v == SENTINEL and b.get(k, (None,))[0] == SENTINEL + 0x1000:
                hits.append((k.split("@")[0], t))
        self._cache[key] = hits
        return hits

    def resolve(self, reg: str, index: int, depth: int = 0) -> list[Reading]:
        """Readings of the value register `reg` holds just before insns[index] runs."""
        pc = self.insns[index].address
        hits = self.vars_in(pc, reg)
        out = []
        for n, t in hits:
            r = Reading(
                n,
                n,
                type_name(t),
                None,
                None,
                None,
                "certain",
                [f"DWARF: {n} ({type_name(t)}) is in {self._dump(reg)} at {pc:#x}"],
            )
            r._type = t  # type: ignore[attr-defined]
            r.steps.append({"expression": n, "register": self._dump(reg), "pc": pc, "type": r.base_type})
            out.append(r)
        if depth >= 4:
            return out
        walked = self._walk(reg, index, depth)
        if out:
            # the variable is the answer; where its value came from is extra evidence (cb = sk->reuse_cb)
            for r in out:
                for w in walked[:1]:
                    r.how.append(f"{r.expression} = {w.expression}: " + w.how[-1])
                    r.steps.insert(0, dict(w.steps[-1], origin_of=r.expression))
            return out
        return walked

    def _load(self, i: Any) -> tuple[str | None, int] | None:
        """(base register, displacement) when `i` loads a register from [base + disp], else None."""
        ops = i.operands
        if self.arch == "arm64":
            # ldr/ldur x|w, [xB, #disp] (no index, no writeback: ldp and pre/post-indexed loads are not member reads)
            if (
                i.mnemonic in ("ldr", "ldur")
                and len(ops) == 2
                and ops[0].type == A.ARM64_OP_REG
                and ops[1].type == A.ARM64_OP_MEM
                and ops[1].mem.base
                and not ops[1].mem.index
                and not i.writeback
            ):
                return self.names.get(i.reg_name(ops[1].mem.base)), ops[1].mem.disp
            return None
        if (
            i.mnemonic.startswith("mov")
            and len(ops) == 2
            and ops[0].type == X.X86_OP_MEM
            and ops[1].type == X.X86_OP_REG
            and ops[0].mem.index == 0
            and ops[0].mem.base
        ):
            return CS2PT.get(i.reg_name(ops[0].mem.base)), ops[0].mem.disp
        return None

    def _copy(self, i: Any) -> str | None:
        """The source register when `i` copies one register into another (`mov %rdi,%rax`, `mov x1, x0`)."""
        ops = i.operands
        if self.arch == "arm64":
            if i.mnemonic == "mov" and len(ops) == 2 and all(o.type == A.ARM64_OP_REG for o in ops):
                return self.names.get(i.reg_name(ops[1].reg))
            return None
        if (
            i.mnemonic in ("mov", "movq")
            and len(ops) == 2
            and ops[0].type == X.X86_OP_REG
            and ops[1].type == X.X86_OP_REG
        ):
            return CS2PT.get(i.reg_name(ops[0].reg))
        return None

    def _walk(self, reg: str, index: int, depth: int) -> list[Reading]:
        """Walk back (straight line) to the instruction that wrote `reg` and read it as a member load."""
        out: list[Reading] = []
        for j in range(index - 1, -1, -1):
            i = self.insns[j]
            cond = i.group(capstone.CS_GRP_JUMP) and i.mnemonic not in _UNCOND
            if (
                (i.group(capstone.CS_GRP_JUMP) and not cond)
                or i.group(capstone.CS_GRP_CALL)
                or i.group(capstone.CS_GRP_RET)
            ):
                return out
            if reg not in written_regs(i, self.arch):
                continue
            text = f"{i.mnemonic} {i.op_str}"
            load = self._load(i)
            if load is not None:
                src, disp = load
                if src is None:
                    return out
                for base in self.resolve(src, j, depth + 1):
                    t = self._type(base)
                    st = pointee(t) if t is not None else None
                    if st is None:
                        continue
                    for path, mtype, _ in member_path(st, disp)[:1]:
                        expr = f"{base.expression}->{path}"
                        r = Reading(
                            expr,
                            expr,
                            type_name(mtype),
                            None,
                            None,
                            None,
                            "high" if base.confidence == "certain" else "medium",
                            base.how
                            + [
                                f"{i.address:#x} `{text}` loads {expr} ({type_name(mtype)}, "
                                f"{type_name(st)} +{disp:#x}) into {self._dump(reg)}"
                            ],
                            base.steps
                            + [
                                {
                                    "expression": expr,
                                    "register": self._dump(reg),
                                    "pc": i.address,
                                    "insn": text,
                                    "offset": disp,
                                    "type": type_name(mtype),
                                }
                            ],
                        )
                        r._type = mtype  # type: ignore[attr-defined]
                        landing = [t for t in self.targets() if i.address < t <= self.insns[index].address]
                        if landing:
                            r.confidence = "medium"
                            r.how.append(
                                f"a jump lands at {', '.join(hex(t) for t in landing)}, between the load and "
                                f"{self.insns[index].address:#x}: this reading assumes the fall-through path"
                            )
                        out.append(r)
                return out
            src = self._copy(i)
            if src is not None:
                return self.resolve(src, j, depth + 1)
            return out
        return out

    def targets(self) -> set[int]:
        if not hasattr(self, "_targets"):
            t = set()
            imm = A.ARM64_OP_IMM if self.arch == "arm64" else X.X86_OP_IMM
            for i in self.insns:
                # the target is the last operand (arm64 cbz x0, T / tbnz w1, #3, T; x86 jmp T)
                if (
                    (i.group(capstone.CS_GRP_JUMP) or i.group(capstone.CS_GRP_CALL))
                    and i.operands
                    and i.operands[-1].type == imm
                ):
                    t.add(i.operands[-1].imm & 0xFFFFFFFFFFFFFFFF)
            self._targets = t
        return self._targets

    def by_type(self, disp: int) -> list[Reading]:
        """Fallback: pointer variables in scope at the fault whose pointee has a member at `disp`."""
        pc = self.insns[self.fault_index].address
        seen, out = set(), []
        for k, (v, t) in self._values(pc, {}).items():
            name = k.split("@")[0]
            st = pointee(t)
            if st is None or name in seen:
                continue
            seen.add(name)
            if member_path(st, disp):
                r = Reading(
                    name,
                    name,
                    type_name(t),
                    None,
                    None,
                    None,
                    "low",
                    [
                        f"{name} ({type_name(t)}) is in scope at {pc:#x} and {type_name(st)} has a member at "
                        f"{disp:#x}; DWARF does not place it in the base register (type match only)"
                    ],
                )
                r._type = t  # type: ignore[attr-defined]
                out.append(r)
        return out

    def _type(self, r: Reading) -> Any:
        return getattr(r, "_type", None)
