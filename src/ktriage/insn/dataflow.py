"""Walk back from the bad register to where it was loaded, inside the decoded Code window.

This is what an engineer does with `dis` after finding `mov 0xa30(%rax),%rdx`: look upwards
for the last write to RAX (`mov 0xf0(%rdi),%rax`), then for the last write to RDI, and so on.

Two honest limits:
* the bytes before the trap ran just before it only if the trap was reached by falling
  through them; a jump from elsewhere can land on any instruction. We cannot rule that out
  from the window, so every chain says "if reached by fall-through", and we stop at an
  unconditional jump/return (code above it cannot fall through to the trap) or at an
  instruction that a branch inside the window jumps to;
* the dump holds register values at the trap, not at each step. A value is checked against
  the dump only when the register was not written between that step and the trap, and the
  arithmetic (mov, lea, add/sub/shift by constants) is replayed backwards as an interval.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from capstone import arm64, x86

from ktriage.insn.decode import Insn
from ktriage.insn.operands import RegLookup, dump_name, memory_accesses
from ktriage.insn.values import MASK64

ARG_REGS = {
    "x86_64": ("RDI", "RSI", "RDX", "RCX", "R08", "R09"),
    "i386": ("EAX", "EDX", "ECX"),  # -mregparm=3
    "arm64": tuple(f"x{i}" for i in range(8)),
    "arm": ("r0", "r1", "r2", "r3"),
}
RET_REG = {"x86_64": "RAX", "i386": "EAX", "arm64": "x0", "arm": "r0"}
CALLER_SAVED = {
    "x86_64": ("RAX", "RCX", "RDX", "RSI", "RDI", "R08", "R09", "R10", "R11"),
    "i386": ("EAX", "ECX", "EDX"),
    "arm64": tuple(f"x{i}" for i in range(19)),
    "arm": ("r0", "r1", "r2", "r3", "ip"),
}
ORDINALS = ("first", "second", "third", "fourth", "fifth", "sixth", "seventh", "eighth")


@dataclass
class Step:
    """One link of the chain: instruction at `offset` set `reg` as described."""

    offset: int | None
    insn: str
    reg: str
    text: str
    check: str | None = None  # "matches the dump: ..." or "does not match ..."

    def line(self) -> str:
        where = f"+{self.offset:#x} `{self.insn}`: " if self.offset is not None else ""
        return where + self.text + (f" [{self.check}]" if self.check else "")


@dataclass
class Chain:
    reg: str
    steps: list[Step] = field(default_factory=list)
    stop: str = ""
    consistent: bool | None = None  # all dump checks passed (None: nothing to check)


def _is_x86(arch: str) -> bool:
    return arch in ("x86_64", "i386", "x86")


def _writes(i: Insn, arch: str) -> set[str]:
    try:
        _, w = i.cs.regs_access()
        names = {dump_name(i.cs.reg_name(r), arch) for r in w}
    except Exception:  # capstone lacks access info for some instructions
        names = set()
    if not _is_x86(arch):
        ops = i.cs.operands
        reg_t = arm64.ARM64_OP_REG if arch == "arm64" else 1
        if ops and ops[0].type == reg_t and not i.cs.mnemonic.startswith(("st", "cmp", "cmn", "tst", "b", "cb", "tb")):
            names.add(dump_name(i.cs.reg_name(ops[0].reg), arch))
            if i.cs.mnemonic.startswith("ldp") and len(ops) > 1 and ops[1].type == reg_t:
                names.add(dump_name(i.cs.reg_name(ops[1].reg), arch))
        for op in ops:  # writeback addressing modifies the base
            if op.type == (arm64.ARM64_OP_MEM if arch == "arm64" else 4) and i.cs.writeback and op.mem.base:
                names.add(dump_name(i.cs.reg_name(op.mem.base), arch))
    return names


def _is_call(i: Insn, arch: str) -> bool:
    mn = i.cs.mnemonic
    return mn.startswith("call") if _is_x86(arch) else mn in ("bl", "blr", "blx", "blraa", "blrab")


def _falls_through(i: Insn, arch: str) -> bool:
    """False for unconditional jumps, returns and traps: code after them is reached by a jump."""
    mn = i.cs.mnemonic
    if _is_x86(arch):
        return not (mn.startswith(("jmp", "ret", "ud2", "iret", "sysret")) or mn in ("int3", "hlt"))
    return mn not in ("b", "br", "ret", "brk", "eret", "udf") and not mn.startswith(("retaa", "retab", "braa"))


def branch_targets(insns: tuple[Insn, ...], arch: str) -> set[int]:
    """Window offsets that direct branches inside the window jump to."""
    out = set()
    for i in insns:
        if i.cs.group(1):  # CS_GRP_JUMP
            for op in i.cs.operands:
                if op.type in (x86.X86_OP_IMM if _is_x86(arch) else arm64.ARM64_OP_IMM,):
                    out.add(op.imm)
    return out


def _imm(i: Insn, arch: str) -> int | None:
    imm_t = x86.X86_OP_IMM if _is_x86(arch) else arm64.ARM64_OP_IMM
    for op in i.cs.operands:
        if op.type == imm_t:
            return op.imm
    return None


def _reg_ops(i: Insn, arch: str) -> list[str]:
    reg_t = x86.X86_OP_REG if _is_x86(arch) else arm64.ARM64_OP_REG
    return [dump_name(i.cs.reg_name(op.reg), arch) for op in i.cs.operands if op.type == reg_t]


def _untouched(reg: str, insns: tuple[Insn, ...], arch: str) -> bool:
    return all(reg not in _writes(i, arch) for i in insns)


def walk_back(
    before: tuple[Insn, ...], reg: str, arch: str, lookup: RegLookup, max_steps: int = 8, entry: int | None = None
) -> Chain:
    """Follow `reg` backwards through `before` (the instructions that precede the trap).

    `entry` is the window offset of the function's first instruction when known (from
    `func+off` in the oops): nothing before it belongs to this function.
    """
    chain = Chain(reg)
    if entry is not None:
        before = tuple(i for i in before if i.offset >= entry)
    targets = branch_targets(before, arch)
    cur = reg
    v = lookup(reg)
    rng: tuple[int, int] | None = (v, v) if v is not None else None
    idx = len(before)
    checks: list[bool] = []
    saved = CALLER_SAVED.get(arch, ())
    while len(chain.steps) < max_steps:
        j = next(
            (
                k
                for k in range(idx - 1, -1, -1)
                if cur in _writes(before[k], arch) or (_is_call(before[k], arch) and cur in saved)
            ),
            None,
        )
        scan = before[(j if j is not None else -1) + 1 : idx]
        cut = next((i for i in reversed(scan) if not _falls_through(i, arch)), None)
        if cut is not None:
            chain.stop = _origin_outside(
                cur,
                arch,
                lookup,
                f"after +{cut.offset:#x} `{cut.mnemonic}` (which does not "
                f"fall through, so earlier code says nothing about it)",
                _untouched(cur, before[idx:], arch),
            )
            break
        landing = sorted(t for t in targets if any(i.offset == t for i in scan))
        if j is None:
            where = (
                f"since the function entry at +{entry:#x}"
                if entry is not None
                else "earlier in the Code window"
                if before
                else "in the window (no code before the trap)"
            )
            chain.stop = _origin_outside(
                cur, arch, lookup, where, _untouched(cur, before[idx:], arch), at_entry=entry is not None
            )
            break
        w = before[j]
        trail = before[j + 1 :]
        step, nxt, rng = _describe(w, cur, arch, lookup, rng, trail)
        if landing:
            step.text += f" (a branch inside the window targets +{landing[0]:#x}, between this and the trap)"
        chain.steps.append(step)
        if step.check:
            checks.append(step.check.startswith("matches"))
        if nxt is None:
            break
        cur, idx = nxt, j
    chain.consistent = all(checks) if checks else None
    return chain


def _origin_outside(
    reg: str, arch: str, lookup: RegLookup, where: str, dump_valid: bool, at_entry: bool = False
) -> str:
    v = lookup(reg) if dump_valid else None
    val = f" = {v:#x}" if v is not None else ""
    args = ARG_REGS.get(arch, ())
    if reg in args:
        hedge = "" if at_entry else ", if not overwritten before that"
        return (
            f"{reg}{val} is not written {where}: it holds the {ORDINALS[args.index(reg)]} argument of the "
            f"function under the {arch} calling convention{hedge}"
        )
    if reg not in CALLER_SAVED.get(arch, ()) and reg not in ("RSP", "sp", "ESP"):
        return f"{reg}{val} is not written {where}; it is callee-saved, so it was set earlier in this function or by its caller"
    return f"{reg}{val} is not written {where}"


def _check(
    name: str, expect: tuple[int, int] | None, lookup: RegLookup, trail: tuple[Insn, ...], arch: str
) -> tuple[str | None, tuple[int, int] | None]:
    """Compare the value `name` must have had with the dump, when the dump still holds it."""
    if not _untouched(name, trail, arch):
        return None, expect
    d = lookup(name)
    if d is None:
        return None, expect
    if expect is None:
        return None, (d, d)
    lo, hi = expect
    ok = (d - lo) & MASK64 <= (hi - lo) & MASK64
    rng = f"{lo:#x}" if lo == hi else f"{lo:#x}..{hi:#x}"
    return (
        f"matches the dump: {name} = {d:#x}" if ok else f"does not match the dump: {name} = {d:#x}, expected {rng}"
    ), (d, d)


def _shift(rng, f):
    return None if rng is None else (f(rng[0]) & MASK64, f(rng[1]) & MASK64)


def _describe(
    w: Insn, cur: str, arch: str, lookup: RegLookup, rng, trail
) -> tuple[Step, str | None, tuple[int, int] | None]:
    """Explain how `w` set `cur`; return the step, the register to follow next and its value range."""
    mn = w.cs.mnemonic
    text = f"{w.mnemonic} {w.op_str}".strip()
    regs = _reg_ops(w, arch)
    imm = _imm(w, arch)
    val = f" = {rng[0]:#x}" if rng and rng[0] == rng[1] else ""
    mk = lambda t, c=None: Step(w.offset, text, cur, t, c)  # noqa: E731
    if _is_call(w, arch) and cur not in _writes(w, arch):
        if cur == RET_REG.get(arch):
            return mk(f"{cur}{val} is the return value of this call"), None, None
        return mk(f"{cur} is caller-saved and this call clobbers it: its value comes from the callee"), None, None
    mems = memory_accesses(w, arch, lookup)
    if (
        mems
        and not mn.startswith(("st", "push"))
        and (_is_x86(arch) and mn.startswith(("mov", "cmov")) or not _is_x86(arch) and mn.startswith("ld"))
    ):
        m = mems[0]
        base = m.base
        # `mov 0x18(%rdi),%rdi` overwrites its own base: the dump holds the loaded value, not the address
        clobbered = {r for r in (base, m.index) if r and r in _writes(w, arch)}
        regs_ok = all(r is None or (_untouched(r, trail, arch) and r not in clobbered) for r in (base, m.index))
        addr = f", address {m.ea:#x}" if base and regs_ok and m.ea is not None else ""
        note = f"{cur}{val} was loaded from {m.formula()}{addr}"
        if mn.startswith("cmov"):
            note += " (conditional move: only if the condition held)"
        nxt = base if base not in (None, "RIP", "RSP", "sp") else None
        chk, nrng = _check(nxt, None, lookup, trail, arch) if nxt and nxt not in clobbered else (None, None)
        if nxt and base:
            bv = lookup(base) if _untouched(base, trail, arch) and base not in clobbered else None
            if bv is not None:
                note += f"; {base} = {bv:#x} at the trap and not written since"
            elif base in clobbered:
                note += f"; this load overwrote {base}, so its value as the address is not in the dump"
        if rng and rng[0] == rng[1]:
            note += _loaded_poison(rng[0], m.formula(), arch)
        return mk(note), nxt, nrng
    zero = _is_x86(arch) and mn.startswith(("xor", "sub")) and len(regs) == 2 and regs[0] == regs[1]
    if zero:
        return mk(f"{cur} was zeroed (`{text}`)"), None, None
    if mn.startswith("lea") or (not _is_x86(arch) and mn in ("add", "sub") and imm is not None and len(regs) == 2):
        if mn.startswith("lea"):
            lea = _lea(w, arch)
            if lea is None:
                return mk(f"{cur} was computed by `{text}`"), None, None
            base, disp = lea
        else:
            assert imm is not None  # the test above admits add/sub only with an immediate
            base, disp = regs[1], imm if mn == "add" else -imm
        if base is None:
            return mk(f"{cur} = {disp & MASK64:#x} (constant address)"), None, None
        exp = _shift(rng, lambda x: x - disp)
        chk, nrng = _check(base, exp, lookup, trail, arch)
        sign = "+" if disp >= 0 else "-"
        return mk(f"{cur}{val} = {base} {sign} {abs(disp):#x} (address arithmetic, no memory access)", chk), base, nrng
    if (mn.startswith("mov") and len(regs) == 2 and not mems) or mn in ("movsxd", "movslq", "movzx", "sxtw", "uxtw"):
        src = regs[1] if len(regs) > 1 else regs[0]  # capstone detail is in Intel order: dst, src
        ext = "" if mn in ("mov", "movq", "movl") else f" ({mn}: sign/zero-extended)"
        chk, nrng = _check(src, rng if not ext else None, lookup, trail, arch)
        return mk(f"{cur}{val} was copied from {src}{ext}", chk), src, nrng
    if mn == "movk":
        d = lookup(cur) if _untouched(cur, trail, arch) else None
        got = f" = {d:#x}" if d is not None else ""
        return mk(f"{cur}{got} was built from constants (mov/movk)"), None, None
    if imm is not None and ((mn.startswith(("mov", "movabs")) and len(regs) == 1) or mn in ("movz", "movn")):
        return mk(f"{cur} = {imm & MASK64:#x} (constant)"), None, None
    if mn.startswith(("shr", "sar", "lsr", "asr", "shl", "sal", "lsl", "add", "sub")) and imm is not None:
        src = regs[-1] if not _is_x86(arch) else cur
        k = imm
        if mn.startswith(("shr", "sar", "lsr", "asr")):
            exp = None if rng is None else ((rng[0] << k) & MASK64, ((rng[1] << k) | ((1 << k) - 1)) & MASK64)
            op = f">> {k}"
        elif mn.startswith(("shl", "sal", "lsl")):
            exp = _shift(rng, lambda x: x >> k)
            op = f"<< {k}"
        elif mn.startswith("add"):
            exp, op = _shift(rng, lambda x: x - k), f"+ {k:#x}"
        else:
            exp, op = _shift(rng, lambda x: x + k), f"- {k:#x}"
        chk, nrng = _check(src, exp, lookup, trail, arch) if src != cur else (None, exp)
        before_txt = ""
        if src == cur and exp is not None:
            before_txt = f" ({cur} was {exp[0]:#x}" + (f"..{exp[1]:#x})" if exp[1] != exp[0] else ")")
        return mk(f"{cur}{val} = {src} {op}{before_txt}", chk), src, nrng
    if mn.startswith("pop"):
        return mk(f"{cur}{val} was popped from the stack"), None, None
    if mn == "movk":
        return mk(f"{cur} was built from constants (`{text}`)"), None, None
    return mk(f"{cur} was last written by `{text}`"), None, None


def _loaded_poison(v: int, where: str, arch: str) -> str:
    """The loaded value is slab poison or a list poison: say what that means for the memory read."""
    from ktriage.insn.values import classify

    for c in classify(v, arch):
        if c.kind == "slab-poison" and c.detail.get("byte") == 0x6B:
            return (
                f"; the value read from {where} is slab free poison, so that memory was inside a freed object "
                f"(use-after-free of the object, or a read past its end into a freed neighbour)"
            )
        if c.kind == "slab-poison":
            return f"; the value read from {where} is {c.detail.get('name')} slab poison"
        if c.kind == "list-poison":
            return f"; the value read from {where} is {c.detail.get('name')}: that list entry had been deleted"
    return ""


def _lea(w: Insn, arch: str) -> tuple[str | None, int] | None:
    for op in w.cs.operands:
        if op.type == x86.X86_OP_MEM:
            if op.mem.index:
                return None
            base = w.cs.reg_name(op.mem.base) if op.mem.base else None
            if base in ("rip", "eip"):
                return None
            return (dump_name(base, arch) if base else None), op.mem.disp
    return None
