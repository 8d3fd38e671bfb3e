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

Only x86_64 (the lab has no arm64 kernel). Straight-line walk only: a jump target between the load
and the fault lowers the confidence.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import capstone
from capstone import x86_const as X

# capstone register name (any width) -> pt_regs field
_FAMILY = {
    "ax": ("rax", "eax", "ax", "al", "ah"), "bx": ("rbx", "ebx", "bx", "bl", "bh"),
    "cx": ("rcx", "ecx", "cx", "cl", "ch"), "dx": ("rdx", "edx", "dx", "dl", "dh"),
    "si": ("rsi", "esi", "si", "sil"), "di": ("rdi", "edi", "di", "dil"), "bp": ("rbp", "ebp", "bp", "bpl"),
    "sp": ("rsp", "esp", "sp", "spl"),
}
CS2PT = {n: f for f, ns in _FAMILY.items() for n in ns}
for _i in range(8, 16):
    for _s in ("", "d", "w", "b"):
        CS2PT[f"r{_i}{_s}"] = f"r{_i}"
# oops dump name -> pt_regs field
DUMP2PT = {"RAX": "ax", "RBX": "bx", "RCX": "cx", "RDX": "dx", "RSI": "si", "RDI": "di", "RBP": "bp",
           "RSP": "sp", **{f"R{i:02d}": f"r{i}" for i in range(8, 16)}, **{f"R{i}": f"r{i}" for i in range(8, 16)}}
PT2DUMP = {"ax": "RAX", "bx": "RBX", "cx": "RCX", "dx": "RDX", "si": "RSI", "di": "RDI", "bp": "RBP", "sp": "RSP",
           **{f"r{i}": f"R{i:02d}" for i in range(8, 16)}}
SENTINEL = 0x5EED_0000_0000_0000


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


def disassemble(code: bytes, address: int, att: bool = True) -> list[Any]:
    md = capstone.Cs(capstone.CS_ARCH_X86, capstone.CS_MODE_64)
    md.detail = True
    if att:
        md.syntax = capstone.CS_OPT_SYNTAX_ATT
    out, off = [], 0
    while off < len(code):  # capstone stops at an undecodable byte: skip it and go on
        start = off
        for i in md.disasm(code[off:], address + off):
            out.append(i)
            off += i.size
        if off == start:
            off += 1
    return out


def written_regs(i: Any) -> set[str]:
    try:
        _, w = i.regs_access()
    except capstone.CsError:
        return set()
    return {CS2PT[i.reg_name(r)] for r in w if i.reg_name(r) in CS2PT}


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
    def __init__(self, session: Any, regs: dict[str, int], insns: list[Any], fault_index: int) -> None:
        self.s = session
        self.regs = {DUMP2PT.get(k, k): v for k, v in regs.items()}
        self.insns = insns
        self.fault_index = fault_index
        self._cache: dict[tuple[int, str], list[tuple[str, Any]]] = {}

    def _values(self, pc: int, over: dict[str, int]) -> dict[str, tuple[int, Any]]:
        dump = {PT2DUMP.get(k, k): v for k, v in {**self.regs, **over}.items()}
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
            r = Reading(n, n, type_name(t), None, None, None, "certain",
                        [f"DWARF: {n} ({type_name(t)}) is in {PT2DUMP.get(reg, reg)} at {pc:#x}"])
            r._type = t  # type: ignore[attr-defined]
            r.steps.append({"expression": n, "register": PT2DUMP.get(reg, reg), "pc": pc, "type": r.base_type})
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

    def _walk(self, reg: str, index: int, depth: int) -> list[Reading]:
        """Walk back (straight line) to the instruction that wrote `reg` and read it as a member load."""
        out: list[Reading] = []
        for j in range(index - 1, -1, -1):
            i = self.insns[j]
            cond = i.group(capstone.CS_GRP_JUMP) and i.mnemonic not in ("jmp", "jmpq", "ljmp")
            if (i.group(capstone.CS_GRP_JUMP) and not cond) or i.group(capstone.CS_GRP_CALL) \
                    or i.group(capstone.CS_GRP_RET):
                return out
            if reg not in written_regs(i):
                continue
            text = f"{i.mnemonic} {i.op_str}"
            ops = i.operands
            if i.mnemonic.startswith("mov") and len(ops) == 2 and ops[0].type == X.X86_OP_MEM \
                    and ops[1].type == X.X86_OP_REG and ops[0].mem.index == 0 and ops[0].mem.base:
                src = CS2PT.get(i.reg_name(ops[0].mem.base))
                disp = ops[0].mem.disp
                if src is None:
                    return out
                for base in self.resolve(src, j, depth + 1):
                    t = self._type(base)
                    st = pointee(t) if t is not None else None
                    if st is None:
                        continue
                    for path, mtype, _ in member_path(st, disp)[:1]:
                        expr = f"{base.expression}->{path}"
                        r = Reading(expr, expr, type_name(mtype), None, None, None,
                                    "high" if base.confidence == "certain" else "medium",
                                    base.how + [f"{i.address:#x} `{text}` loads {expr} ({type_name(mtype)}, "
                                                f"{type_name(st)} +{disp:#x}) into {PT2DUMP.get(reg, reg)}"],
                                    base.steps + [{"expression": expr, "register": PT2DUMP.get(reg, reg),
                                                   "pc": i.address, "insn": text, "offset": disp,
                                                   "type": type_name(mtype)}])
                        r._type = mtype  # type: ignore[attr-defined]
                        landing = [t for t in self.targets() if i.address < t <= self.insns[index].address]
                        if landing:
                            r.confidence = "medium"
                            r.how.append(f"a jump lands at {', '.join(hex(t) for t in landing)}, between the load and "
                                         f"{self.insns[index].address:#x}: this reading assumes the fall-through path")
                        out.append(r)
                return out
            if i.mnemonic in ("mov", "movq") and len(ops) == 2 and ops[0].type == X.X86_OP_REG \
                    and ops[1].type == X.X86_OP_REG:
                src = CS2PT.get(i.reg_name(ops[0].reg))
                return self.resolve(src, j, depth + 1) if src else out
            return out
        return out

    def targets(self) -> set[int]:
        if not hasattr(self, "_targets"):
            t = set()
            for i in self.insns:
                if (i.group(capstone.CS_GRP_JUMP) or i.group(capstone.CS_GRP_CALL)) and i.operands \
                        and i.operands[0].type == X.X86_OP_IMM:
                    t.add(i.operands[0].imm & 0xFFFFFFFFFFFFFFFF)
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
                r = Reading(name, name, type_name(t), None, None, None, "low",
                            [f"{name} ({type_name(t)}) is in scope at {pc:#x} and {type_name(st)} has a member at "
                             f"{disp:#x}; DWARF does not place it in the base register (type match only)"])
                r._type = t  # type: ignore[attr-defined]
                out.append(r)
        return out

    def _type(self, r: Reading) -> Any:
        return getattr(r, "_type", None)
