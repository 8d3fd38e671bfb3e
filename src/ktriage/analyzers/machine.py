"""Machine-level analyzers: from the `Code:` bytes, the registers and the fault address to the bad pointer.

They need only the log (no debug info): what a post-mortem author does by hand with `dis`, and
what scripts/decodecode does, plus the checks a person forgets: does base + disp really equal
CR2? is the value an ERR_PTR, a list poison, a KASAN shadow address?

Order: insn.decode (10) -> insn.access (15) -> value (20) -> dataflow (25) -> regs (30).
Later ones read earlier findings through `ctx.finding(code)`.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from ktriage.analyzers import AnalysisContext, Skip, analyzer
from ktriage.insn import values as V
from ktriage.insn.dataflow import _writes, walk_back
from ktriage.insn.decode import Decoded, decode, listing
from ktriage.insn.objcode import ObjectCodeError, code_from_object
from ktriage.insn.operands import MemAccess, dump_name, indirect_branch, is_trap_insn, memory_accesses
from ktriage.model import CodeBytes, Crash, Finding

FAULT_KINDS = ("null-deref", "paging-request", "gpf", "unknown", "stack-guard", "kasan", "double-fault")
IP_REG = {"x86_64": "RIP", "i386": "EIP", "arm64": "pc", "arm": "pc"}
FAULT_NAME = {"x86_64": "CR2", "i386": "CR2", "arm64": "FAR", "arm": "FAR"}
_NONCANON = re.compile(r"(?:for|maybe for) (?:non-canonical )?address (0x[0-9a-f]+)")
ARM64_BRK = (
    (0x800, 0x800, "BUG_BRK_IMM: BUG()/WARN()"),
    (0x900, 0x9FF, "KASAN_BRK_IMM: tag-based KASAN report"),
    (0x5500, 0x55FF, "UBSAN trap"),
    (0x8000, 0x8FFF, "CFI check failure"),
    (0x100, 0x100, "kprobes"),
    (0x004, 0x004, "FAULT_BRK_IMM"),
)


def lookup_for(crash: Crash) -> Callable[[str], int | None]:
    """Register lookup by oops name, tolerant of R8/R08 and case."""
    regs = crash.registers
    cs = crash.reg("CS")
    rsp = crash.reg("RSP")
    # a kernel-mode x86_64 trap always runs on a kernel stack: a user RSP in a kernel-mode dump was
    # taken from another register block (the syscall entry's user pt_regs printed after the trace)
    bad_rsp = cs is not None and cs & 3 == 0 and rsp is not None and V.NULL_LIMIT <= rsp <= 0x00007FFFFFFFFFFF

    def get(name: str) -> int | None:
        if bad_rsp and name.upper() in ("RSP", "SP", "ESP"):
            return None
        v = crash.reg(name)
        if v is None and re.fullmatch(r"R0?\d", name, re.I):
            alt = "R0" + name[-1] if len(name) == 2 else "R" + name[-1]
            v = regs.get(alt)
        return v

    return get


def layout(crash: Crash, arch: str) -> str | None:
    """x86_64 memory layout seen in the oops: "randomized" (memory KASLR), "fixed" or None (unknown)."""
    if arch != "x86_64":
        return None
    gs = crash.reg("GS")
    return V.x86_64_layout(gs) if gs else None


def _classify(crash: Crash, v: int, arch: str, bits: int = 64) -> list:
    return V.classify(v, arch, bits, layout(crash, arch))


def _region(crash: Crash, v: int, arch: str, bits: int = 64) -> tuple[str, str]:
    return V.region(v, arch, bits, layout(crash, arch))


def _arch(crash: Crash) -> str:
    a = crash.arch or (crash.code.arch if crash.code else None)
    if a in ("x86_64", "arm64", "arm", "i386"):
        return a
    if a == "x86":
        return "i386"
    raise Skip(f"no machine-level analysis for arch {a!r}")


def _ip(crash: Crash, arch: str) -> int | None:
    if crash.ip is not None and crash.ip.address is not None:
        return crash.ip.address
    return lookup_for(crash)(IP_REG[arch])


def user_mode(crash: Crash, arch: str) -> bool:
    """True when the registers/Code are the user-mode state (CS & 3 == 3, EL0, user IP)."""
    cs = crash.reg("CS")
    if arch in ("x86_64", "i386") and cs is not None:
        return cs & 3 == 3
    ps = crash.reg("pstate")
    if arch == "arm64" and ps is not None:
        return ps & 0xF == 0
    ip = _ip(crash, arch)
    return ip is not None and V.region(ip, arch)[0] == "user" and ip >= V.NULL_LIMIT


def fault_address(crash: Crash, arch: str) -> tuple[int | None, str]:
    """The address the CPU faulted on and what said so; CR2 is stale on a GPF and ignored then."""
    cr2 = crash.reg("CR2")
    if crash.kind == "gpf":
        if crash.fault_address is not None and crash.fault_address != cr2:
            return crash.fault_address, "the GPF message"
        for line in crash.lines:
            m = _NONCANON.search(line)
            if m and "general protection" in line:
                return int(m.group(1), 16), "the GPF message"
        return None, ""
    if crash.kind not in FAULT_KINDS and crash.fault_address is None:
        return None, ""
    if crash.fault_address is not None and (crash.fault_address != 0 or cr2 in (None, 0)):
        if arch.startswith("x86") or arch == "i386":
            return crash.fault_address, "CR2" if crash.fault_address == cr2 else "the fault address"
        return crash.fault_address, "FAR (virtual address)"
    if cr2 is not None and crash.kind in ("null-deref", "paging-request"):
        return cr2, "CR2"
    return None, ""


def _usable(code: CodeBytes | None) -> bool:
    return code is not None and bool(code.data) and code.trap_offset is not None


def _object_code(ctx: AnalysisContext) -> CodeBytes | None:
    """The code window from the binary when the console could not show it.

    Needs a debug-info session with `object_for(module) -> path | None` (module None: vmlinux); only
    the ELF symbol table is read (insn.objcode), and the function size must match the oops' `/0x..`.
    """
    if "_object_code" in ctx.__dict__:
        return ctx.__dict__["_object_code"]
    code = None
    ip = ctx.crash.ip
    find = getattr(ctx.debuginfo, "object_for", None)
    if callable(find) and ip is not None and ip.symbol and ip.offset is not None:
        try:
            path = find(ip.module)
            if path:
                code = code_from_object(path, ip.symbol, ip.offset, ip.size)
        except (ObjectCodeError, OSError) as e:
            ctx.__dict__["_object_code_error"] = str(e)
    ctx.__dict__["_object_code"] = code
    return code


def _code(ctx: AnalysisContext) -> CodeBytes | None:
    """The console's Code: window, or the binary's when the console's is unusable."""
    code = ctx.crash.code
    if _usable(code):
        return code
    return _object_code(ctx) or code


def _entry(crash: Crash, code: CodeBytes) -> int | None:
    """Window offset of the trapping function's first byte, from `func+off` (None when outside the window)."""
    ip = crash.ip
    if ip is None or ip.offset is None or code.trap_offset is None or not ip.symbol:
        return None
    e = code.trap_offset - ip.offset
    return e if e >= 0 else None


def _decoded(ctx: AnalysisContext) -> Decoded | None:
    code = _code(ctx)
    if code is None or not code.data:
        return None
    return decode(code, _entry(ctx.crash, code))


def stale_cr2(crash: Crash, fault: int | None) -> str | None:
    """x86: the dump's CR2 is the Code: window address, not the fault, when show_opcodes() itself faulted.

    The oops prints the registers after trying to read the code bytes; a failed read is a page fault
    (handled by the exception table) that sets CR2 to the address it tried. The kernel prints the
    real CR2 again at the end of the oops (`CR2: 0000000000000a30`).
    """
    code, cr2 = crash.code, crash.reg("CR2")
    if code is None or cr2 is None or code.data or not code.note:
        return None
    m = re.search(r"(0x[0-9a-fA-F]+)", code.note)
    if m and int(m.group(1), 16) == cr2 and cr2 != fault:
        return (
            f"CR2 in the register dump ({cr2:#x}) is the address of the Code: bytes the kernel failed to read "
            f"while printing the oops, not the fault address" + (f" ({fault:#x})" if fault is not None else "")
        )
    return None


# --- insn.decode ------------------------------------------------------------------------------


@analyzer("insn.decode", order=10)
def analyze_decode(ctx: AnalysisContext) -> list[Finding]:
    """The trapping instruction from the Code: line, or why it cannot be shown."""
    crash = ctx.crash
    arch = _arch(crash)
    console = crash.code
    code = _code(ctx)
    if code is None:
        raise Skip("no Code: line in the oops")
    pre: list[Finding] = []
    if code is not console:  # the console's window was unusable: say why, then use the binary's
        why = (console.note if console else None) or "no Code: line in the oops"
        fault, _ = fault_address(crash, arch)
        ev = [(console.raw.strip() if console else "no Code: line")[:400]]
        cr2 = stale_cr2(crash, fault)
        if cr2:
            ev.append(cr2)
        pre.append(
            Finding(
                "insn.decode-partial",
                f"The console shows no trapping instruction: {why}; the bytes were read from the binary instead.",
                tuple(ev),
                "certain",
                "insn.decode",
                {"reason": why, "bytes": console.data.hex() if console else ""},
            )
        )
    d = _decoded(ctx)
    raw = (code.raw.strip() or "Code: (empty)")[:400]
    if d is None or d.trap is None:
        why = (d.problem if d else None) or code.note or "no code bytes"
        partial = listing(d) if d and d.trap_index is not None else ()
        ev = [raw]
        cr2 = stale_cr2(crash, fault_address(crash, arch)[0])
        if cr2:
            ev.append(cr2)
        if ctx.__dict__.get("_object_code_error"):
            ev.append(f"the binary could not give the code either: {ctx.__dict__['_object_code_error']}")
        return [
            Finding(
                "insn.decode-partial",
                f"No trapping instruction can be shown: {why}.",
                tuple(ev),
                "certain",
                "insn.decode",
                {"reason": why, "bytes": code.data.hex()},
                partial,
            )
        ]
    trap = d.trap
    ip = _ip(crash, arch)
    where = str(crash.ip) if crash.ip else "the IP"
    text = f"{trap.mnemonic} {trap.op_str}".strip()
    um = user_mode(crash, arch)
    ev = [raw, f"marked byte at window offset {trap.offset:#x}"]
    if arch in ("x86_64", "i386"):
        ev.append(
            f"{d.candidates} start offset(s) decode cleanly onto the mark; kept the one at {d.start:#x}; "
            f"instructions from {d.sync:#x} on agree under every such alignment ('?' marks the rest)"
        )
    if um:
        ev.append("CS/pstate says user mode: this is the task's user-space code at kernel entry, not the kernel fault")
    conf = "certain" if code.complete else "high"
    if code is not console:
        ev.append(code.note or "bytes read from the binary")
    summary = f"{where} {'(user mode) ' if um else ''}executed `{text}`" + (
        " (read from the binary: the console could not show the code)." if code is not console else "."
    )
    out = pre + [
        Finding(
            "insn.trap",
            summary,
            tuple(ev),
            conf,
            "insn.decode",
            {
                "mnemonic": trap.mnemonic,
                "operands": trap.op_str,
                "offset": trap.offset,
                "bytes": trap.raw.hex(),
                "ip": ip,
                "user_mode": um,
                "sync": d.sync,
                "start": d.start,
                "candidates": d.candidates,
                "source": "console" if code is console else "binary",
            },
            listing(d, ip),
        )
    ]
    if d.problem:
        out.append(
            Finding(
                "insn.decode-partial",
                f"The Code: line is incomplete: {d.problem}.",
                (raw,),
                "certain",
                "insn.decode",
                {"reason": d.problem},
            )
        )
    bug = is_trap_insn(trap, arch)
    if bug and not um:
        out.append(_trap_bug(crash, arch, trap, bug))
        cond = _bug_condition(crash, arch, d)
        if cond is not None:
            out.append(cond)
    return out


# x86 conditional jumps (capstone Intel mnemonics): the relation `cmp a, b` (a OP b) / `test a, b`
# (a & b OP 0) that makes the jump taken, and the one that holds when it is not taken
_TAKEN = {
    "je": "==",
    "jz": "==",
    "jne": "!=",
    "jnz": "!=",
    "jb": "< (unsigned)",
    "jae": ">= (unsigned)",
    "jnb": ">= (unsigned)",
    "ja": "> (unsigned)",
    "jbe": "<= (unsigned)",
    "jl": "<",
    "jge": ">=",
    "jg": ">",
    "jle": "<=",
}
_NEGATE = {"==": "!=", "!=": "==", "<": ">=", ">=": "<", ">": "<=", "<=": ">"}
_FALL_THROUGH = {k: _NEGATE[v.split()[0]] + v[len(v.split()[0]) :] for k, v in _TAKEN.items()}


def _bug_condition(crash: Crash, arch: str, d: Decoded) -> Finding | None:
    """BUG_ON(cond) compiles to `cmp/test; jcc` either over the ud2 (the jump was not taken) or to an
    out-of-line ud2 (the jump was taken): either way the branch says what the condition was.

    Only x86, only a conditional jump inside the agreed part of the window that lands on the trap or
    right after it, with the flags set by the instruction just before it.
    """
    if arch not in ("x86_64", "i386") or d.trap is None:
        return None
    trap = d.trap
    before = d.before
    for n in range(len(before) - 1, 0, -1):
        j = before[n]
        mn = j.cs.mnemonic
        if mn not in _TAKEN or not j.cs.operands or j.cs.operands[0].imm not in (trap.end, trap.offset):
            continue
        taken = j.cs.operands[0].imm == trap.offset
        f = before[n - 1]
        fm = f.cs.mnemonic
        if fm not in ("cmp", "test") or len(f.cs.operands) != 2:
            return None
        look = lookup_for(crash)
        between = before[n:]
        names = []
        for op in f.cs.operands:  # Intel order: first, second
            if op.type == 1:  # X86_OP_REG
                r = dump_name(f.cs.reg_name(op.reg), arch)
                v = look(r) if not any(r in _writes(i, arch) for i in between) else None
                names.append(r + (f" (= {v:#x})" if v is not None else ""))
            elif op.type == 2:  # X86_OP_IMM
                names.append(f"{op.imm & V.MASK64:#x}")
            else:
                m = memory_accesses(f, arch, look, _ip(crash, arch))
                acc = m[0] if m else None
                if acc is None:
                    names.append("memory")
                elif acc.ea is not None and not any(r in _writes(i, arch) for i in between for r in acc.values):
                    names.append(f"{acc.formula()} (at {acc.ea:#x})")
                else:
                    names.append(acc.formula())
        rel = (_TAKEN if taken else _FALL_THROUGH)[mn]
        if fm == "test":
            if rel not in ("==", "!="):
                return None
            a, b = names
            cond = f"{a if a == b else f'{a} & {b}'} {rel} 0"
        else:
            cond = f"{names[0]} {rel} {names[1]}"
        ftext = f"{f.mnemonic} {f.op_str}".strip()
        jtext = f"{j.mnemonic} {j.op_str}".strip()
        how = f"`{jtext}` jumped to it" if taken else f"`{jtext}`, which jumps over it, was not taken"
        summary = f"The {trap.mnemonic} ran because {how} after `{ftext}`, so the condition was: {cond}."
        ev = (
            f"+{f.offset:#x} `{ftext}` sets the flags",
            f"+{j.offset:#x} `{jtext}` targets "
            + (
                f"the {trap.mnemonic} at +{trap.offset:#x}"
                if taken
                else f"+{trap.end:#x}, right after the {trap.mnemonic} at +{trap.offset:#x}"
            ),
            "assuming the trap was reached through this branch (no other jump to it inside the window)",
        )
        return Finding(
            "insn.bug-condition",
            summary,
            ev,
            "high",
            "insn.decode",
            {
                "flags_insn": ftext,
                "jump": jtext,
                "condition": cond,
                "flags_offset": f.offset,
                "jump_offset": j.offset,
                "taken": taken,
            },
        )
    return None


def _trap_bug(crash: Crash, arch: str, trap, bug: str) -> Finding:
    meaning = "BUG()/WARN() trap"
    if arch == "arm64" and trap.cs.operands:
        imm = trap.cs.operands[0].imm
        meaning = next((m for lo, hi, m in ARM64_BRK if lo <= imm <= hi), f"brk #{imm:#x}")
    elif bug == "ud1":
        meaning = "ud1: UBSAN/CFI trap (x86 UBSAN_TRAP / kCFI)"
    elif bug == "int3":
        meaning = "int3: breakpoint (kprobe, text patching or a stray int3)"
    kind = crash.kind
    summary = (
        f"The trapping instruction `{trap.mnemonic}` is a deliberate trap ({meaning}); "
        f"this is an assertion ({kind}), not a bad memory access."
    )
    return Finding(
        "insn.trap-bug",
        summary,
        (f"{trap.mnemonic} {trap.op_str} at window offset {trap.offset:#x}", f"crash kind {kind}"),
        "certain",
        "insn.decode",
        {"trap": bug, "meaning": meaning},
    )


# --- insn.access ------------------------------------------------------------------------------


def _pick(mems: list[MemAccess], fault: int | None) -> MemAccess | None:
    if not mems:
        return None
    if fault is not None:
        for m in mems:
            if m.matches(fault):
                return m
    return mems[0]


@analyzer("insn.access", order=15)
def analyze_access(ctx: AnalysisContext) -> list[Finding]:
    """Base/index/disp of the memory operand, EA = registers, checked against the fault address."""
    crash = ctx.crash
    arch = _arch(crash)
    fault, source = fault_address(crash, arch)
    d = _decoded(ctx)
    if d is None or d.trap is None:
        return _registers_only(crash, arch, fault, source)
    if user_mode(crash, arch):
        raise Skip("the Code: line is user-space code at kernel entry")
    if is_trap_insn(d.trap, arch):
        raise Skip("the trapping instruction is a deliberate trap, not a memory access")
    look = lookup_for(crash)
    ip = _ip(crash, arch)
    out: list[Finding] = []
    br = indirect_branch(d.trap, arch, look, d.before)
    mems = memory_accesses(d.trap, arch, look, ip)
    m = _pick(mems, fault)
    if m is not None:
        out.append(_bad_access(d, m, fault, source, arch, stale_cr2(crash, fault)))
    if br is not None and br.value is not None:
        out.append(
            Finding(
                "insn.branch",
                f"The trapping instruction is an indirect {br.kind.split(' ')[0]} to {br.via} = {br.value:#x}.",
                (f"{d.trap.mnemonic} {d.trap.op_str}", br.kind, f"{br.via} = {br.value:#x}"),
                "high",
                "insn.access",
                {"via": br.via, "target": br.value, "kind": br.kind},
            )
        )
    if not out:
        raise Skip(f"`{d.trap.mnemonic} {d.trap.op_str}` has no memory operand to check")
    return out


def _bad_access(
    d: Decoded, m: MemAccess, fault: int | None, source: str, arch: str, stale: str | None = None
) -> Finding:
    assert d.trap is not None, "a bad access is only named for a decoded trapping instruction"
    text = f"{d.trap.mnemonic} {d.trap.op_str}".strip()
    size = f"{m.size}-byte " if m.size else ""
    ev = [f"`{text}`: {size}{m.access} of {m.formula()}"]
    ev += [f"{k} = {v:#x}" for k, v in m.values.items()]
    if stale:
        ev.append(stale)
    data = {
        "base": m.base,
        "index": m.index,
        "scale": m.scale,
        "disp": m.disp,
        "size": m.size,
        "access": m.access,
        "segment": m.segment,
        "ea": m.ea,
        "fault": fault,
        "values": dict(m.values),
        "missing": list(m.missing),
    }
    if m.ea is None:
        summary = f"The {size}{m.access} of {m.formula()} faulted; the dump lacks {', '.join(m.missing)} to compute it."
        return Finding("insn.bad-access", summary, tuple(ev), "medium", "insn.access", data)
    parts = " + ".join(f"{k} ({v:#x})" for k, v in m.values.items())
    calc = f"{parts} {'+' if m.disp >= 0 else '-'} {abs(m.disp):#x}" if m.disp else parts
    if fault is None:
        verdict, conf = "no fault address to compare with", "high"
        if arch.startswith("x86") and not V.canonical(m.ea, arch):
            verdict, conf = "non-canonical, which is what raises the #GP", "high"
        summary = f"The {size}{m.access} of {m.formula()} computes {m.ea:#x} = {calc}: {verdict}."
    elif m.matches(fault):
        data["match"] = True
        summary = f"Fault {fault:#x} = {calc}: the {size}{m.access} of {m.formula()} is the faulting access."
        conf = "certain"
        ev.append(f"{source}: {fault:#x}")
        if m.ea is not None and (fault - m.ea) & V.MASK64 >= max(m.size or 1, 1):
            # arm64 reports the address with its top byte stripped (TBI: the MMU ignores it)
            summary = (
                f"Fault {fault:#x} = {calc} = {m.ea:#x} with its top byte ignored (arm64 TBI): the {size}"
                f"{m.access} of {m.formula()} is the faulting access."
            )
            data["untagged"] = True
    else:
        data["match"] = False
        summary = (
            f"{m.formula()} computes {m.ea:#x} = {calc}, but {source} says {fault:#x}: the registers or the "
            f"Code bytes are not those of the faulting access."
        )
        conf = "low"
        ev.append(f"{source}: {fault:#x}")
    data["match"] = data.get("match")
    return Finding("insn.bad-access", summary, tuple(ev), conf, "insn.access", data)


def _registers_only(crash: Crash, arch: str, fault: int | None, source: str) -> list[Finding]:
    """No decodable code: which register can explain the fault address (a CentOS 7 oops without Code:)."""
    if fault is None:
        raise Skip("no decodable Code: line and no fault address")
    look = lookup_for(crash)
    regs = {k: v for k, v in crash.registers.items() if _gp(k, arch)}
    cands = []
    for name, v in regs.items():
        off = (fault - v) & V.MASK64
        if off < V.NULL_LIMIT:
            cands.append((off, name, v))
    if not cands:
        raise Skip("no decodable Code: line and no register within 64K below the fault address")
    cands.sort(key=lambda c: (_base_rank(c[2], arch), c[0], _ALLOC_ORDER.index(c[1]) if c[1] in _ALLOC_ORDER else 99))
    off, name, v = cands[0]
    names = [c[1] for c in cands if c[2] == v]
    what = "NULL" if v == 0 else f"{v:#x}"
    who = names[0] if len(names) == 1 else f"{', '.join(names)} are all {v:#x}; {names[0]}"
    summary = (
        f"{source} {fault:#x} is {what} + {off:#x}; {who} is the likely base register "
        f"(no Code: bytes: inferred from the registers and the fault address only)."
    )
    ev = [f"{source}: {fault:#x}"] + [f"{n} = {look(n):#x}" for n in names]
    cr2 = stale_cr2(crash, fault)
    if cr2:
        ev.append(cr2)
    if len(names) > 1:
        ev.append(f"{names[0]} is named first because compilers allocate it first ({', '.join(_ALLOC_ORDER[:5])}, ...)")
    ev.append(
        "without the instruction the base cannot be proven: any register equal to "
        f"{v:#x} at fault time could have been it, or one already overwritten"
    )
    return [
        Finding(
            "regs.likely-base",
            summary,
            tuple(ev),
            "medium" if len(names) == 1 and v == 0 else "low",
            "insn.access",
            {"base_candidates": names, "base_value": v, "offset": off, "fault": fault},
        )
    ]


# GCC's x86-64 allocation order (caller-saved first); arm64 allocates x0.. upwards
_ALLOC_ORDER = (
    ["RAX", "RDX", "RCX", "RSI", "RDI", "R08", "R09", "R10", "R11", "RBX", "R12", "R13", "R14", "R15", "RBP"]
    + [f"x{i}" for i in range(31)]
    + [f"r{i}" for i in range(13)]
)


def _base_rank(v: int, arch: str) -> int:
    """NULL is the most plausible base, then real pointers; a small non-zero integer is unlikely."""
    if v == 0:
        return 0
    return 2 if v < V.NULL_LIMIT else 1


def _gp(name: str, arch: str) -> bool:
    if arch == "x86_64":
        return bool(re.fullmatch(r"R(AX|BX|CX|DX|SI|DI|BP|0?8|0?9|1[0-5])", name))
    if arch == "i386":
        return name in ("EAX", "EBX", "ECX", "EDX", "ESI", "EDI", "EBP")
    return bool(re.fullmatch(r"[xr]\d+|fp|ip", name))


# --- value ------------------------------------------------------------------------------------


@analyzer("value", order=20)
def analyze_values(ctx: AnalysisContext) -> list[Finding]:
    """What the bad pointer looks like: NULL+offset, ERR_PTR, poison, non-canonical, user, bit flip, bad IP."""
    crash = ctx.crash
    arch = _arch(crash)
    out: list[Finding] = []
    out += _ip_findings(ctx, arch)
    acc = ctx.finding("insn.bad-access")
    guess = ctx.finding("regs.likely-base")
    br = ctx.finding("insn.branch")
    fault, source = fault_address(crash, arch)
    subjects: list[tuple[str, int, str]] = []  # (label, value, role)
    if acc is not None:
        data = acc.data
        if data.get("base") and data["base"] in data.get("values", {}):
            subjects.append((data["base"], data["values"][data["base"]], "base"))
        if data.get("ea") is not None:
            subjects.append(("the accessed address", data["ea"], "ea"))
    if guess is not None:
        subjects.append((guess.data["base_candidates"][0], guess.data["base_value"], "base"))
    if fault is not None and not any(r == "ea" and v == fault for _, v, r in subjects):
        subjects.append((f"{source} {fault:#x}" if source else "the fault address", fault, "fault"))
    if br is not None:
        subjects.append((br.data["via"], br.data["target"], "branch"))
    seen: set[str] = set()
    out += _list_debug_findings(crash, arch, seen)
    for label, v, role in subjects:
        for f in _value_findings(crash, arch, label, v, role, acc, guess):
            if f.code not in seen:
                seen.add(f.code)
                out.append(f)
    return out


def _value_findings(
    crash: Crash, arch: str, label: str, v: int, role: str, acc: Finding | None, guess: Finding | None = None
) -> list[Finding]:
    out: list[Finding] = []
    bits = 32 if arch in ("i386", "arm") else 64
    disp = acc.data.get("disp", 0) if acc else 0
    for c in _classify(crash, v, arch, bits):
        if c.kind == "null-offset" and role in ("ea", "fault"):
            if acc is not None and acc.data.get("base") and acc.data["values"].get(acc.data["base"]) == 0:
                base = acc.data["base"]
                summary = (
                    f"Fault {v:#x} = {base} (0x0) + {disp:#x}: {acc.data['access']} through a NULL struct "
                    f"pointer, member at offset {disp:#x}."
                )
                conf = "certain" if acc.data.get("match") else "high"
            elif guess is not None and guess.data["base_value"] == 0:
                names = guess.data["base_candidates"]
                zero = names[0] + (f" (also {', '.join(names[1:])})" if len(names) > 1 else "")
                summary = (
                    f"{label} is NULL + {v:#x}: a member at offset {v:#x} read through a NULL struct pointer; "
                    f"{zero} is 0 and the likely base (registers only, no Code: line)."
                )
                conf = "medium"
            else:
                summary = f"The faulting address {v:#x} is NULL + {v:#x}: a member at offset {v:#x} of a NULL pointer."
                conf = "high" if v else "certain"
            out.append(
                Finding(
                    "value.null-offset",
                    summary,
                    (f"{label} = {v:#x}", c.text),
                    conf,
                    "value",
                    {"offset": v, "base": acc.data.get("base") if acc else None},
                )
            )
        elif c.kind == "err-ptr" and role in ("base", "branch"):
            out.append(
                Finding(
                    "value.err-ptr",
                    f"{label} = {v:#x} is {c.text}: an error return was used as a pointer.",
                    (f"{label} = {v:#x}", f"-{c.detail['errno']} = {c.detail['name']}"),
                    "high",
                    "value",
                    dict(c.detail),
                )
            )
        elif c.kind == "list-poison":
            out.append(
                Finding(
                    "value.list-poison",
                    f"{label} = {v:#x} is {c.text}.",
                    (f"{label} = {v:#x}",),
                    "high",
                    "value",
                    dict(c.detail),
                )
            )
        elif c.kind == "slab-poison":
            ev = [f"{label} = {v:#x}", c.text]
            if c.detail.get("byte") == 0x6B:
                summary = (
                    f"{label} = {v:#x} is slab free poison (POISON_FREE 0x6b): the pointer was read from a freed "
                    f"slab object, a use-after-free (or a read past the end of an object into a freed one)."
                )
                if crash.kind == "gpf" and role in ("base", "ea", "fault"):
                    ev.append(
                        "the poison value is non-canonical, so dereferencing it raised the general protection "
                        "fault instead of reading garbage"
                    )
            else:
                summary = f"{label} = {v:#x}: {c.text}."
            out.append(Finding("value.slab-poison", summary, tuple(ev), "high", "value", dict(c.detail)))
        elif c.kind == "magic":
            out.append(
                Finding(
                    "value.magic",
                    f"{label} = {v:#x} holds {c.text}.",
                    (f"{label} = {v:#x}",),
                    "medium",
                    "value",
                    dict(c.detail),
                )
            )
        elif c.kind == "non-canonical" and role in ("ea", "fault", "base", "branch"):
            out += _non_canonical(crash, arch, label, v, role)
        elif c.kind == "user" and role in ("ea", "fault") and not user_mode(crash, arch):
            out.append(
                Finding(
                    "value.user-address",
                    f"{label} = {v:#x} is a user-space address dereferenced in kernel mode "
                    f"(a user pointer used without copy_from_user, or a corrupted pointer).",
                    (f"{label} = {v:#x}", c.text),
                    "medium",
                    "value",
                    {"address": v},
                )
            )
    if role in ("base", "ea", "fault", "branch"):
        flip = bit_flip(crash, arch, v)
        if flip:
            out.append(flip)
    return out


# lib/list_debug.c (CONFIG_DEBUG_LIST) reports, v4.x..v6.x wording
_LIST_DEBUG = re.compile(
    r"(list_(?:del|add)) corruption[.,] (?:(?P<entry>[0-9a-fx]+)->(?P<field>next|prev) is "
    r"(?P<what>LIST_POISON[12]|NULL) \((?P<val>[0-9a-fx]+)\)|.*?but was (?P<was>[0-9a-fx]+))"
)


def _list_debug_findings(crash: Crash, arch: str, seen: set[str]) -> list[Finding]:
    """The CONFIG_DEBUG_LIST report names the bad list pointer before its BUG(): classify it."""
    for line in crash.lines:
        m = _LIST_DEBUG.search(line)
        if not m:
            continue
        text = m.group(0).strip()
        raw = m.group("val") or m.group("was")
        try:
            v = int(raw, 16)
        except (TypeError, ValueError):
            continue
        where = f"{m.group('entry')}->{m.group('field')}" if m.group("entry") else "the list pointer"
        for c in V.classify(v, arch):
            if c.kind == "list-poison":
                seen.add("value.list-poison")
                op = m.group(1)
                summary = (
                    f"{op}() found {where} = {v:#x}, {c.text}: the entry was deleted already and is "
                    f"being deleted or used again (CONFIG_DEBUG_LIST caught it before the access)."
                )
                data = dict(c.detail, source="list_debug report", entry=m.group("entry"), field=m.group("field"))
                return [Finding("value.list-poison", summary, (text,), "certain", "value", data)]
            if c.kind in ("slab-poison", "null-offset"):
                summary = f"The list_debug report's pointer {where} = {v:#x} is {c.text}."
                return [
                    Finding(
                        f"value.{c.kind}", summary, (text,), "high", "value", dict(c.detail, source="list_debug report")
                    )
                ]
    return []


def _non_canonical(crash: Crash, arch: str, label: str, v: int, role: str) -> list[Finding]:
    out = []
    ev = [f"{label} = {v:#x}", _region(crash, v, arch)[1]]
    offsets = tuple(x for x in crash.registers.values() if V.is_kasan_offset(x, arch))
    ks = V.kasan_shadow(v, arch, offsets) if (v >> 56) == 0xDF else None
    if ks:
        off, first, last = ks
        ev.append(f"KASAN shadow = (addr >> 3) + {off:#x}, so addr is in [{first:#x}, {last:#x}]")
        summary = (
            f"{label} = {v:#x} is non-canonical: the KASAN shadow check of address {first:#x}..{last:#x}"
            + (f", i.e. NULL + {first:#x}" if first < V.NULL_LIMIT else "")
            + "."
        )
        out.append(
            Finding(
                "value.non-canonical",
                summary,
                tuple(ev),
                "high",
                "value",
                {"address": v, "kasan_shadow_of": [first, last], "kasan_offset": off},
            )
        )
        if first < V.NULL_LIMIT:
            out.append(
                Finding(
                    "value.null-offset",
                    f"The instrumented access was to {first:#x}..{last:#x}: NULL + {first:#x}, a member at "
                    f"offset {first:#x} of a NULL pointer (found through the KASAN shadow address).",
                    tuple(ev),
                    "high",
                    "value",
                    {"offset": first, "via": "kasan-shadow"},
                )
            )
        return out
    summary = f"{label} = {v:#x} is a non-canonical address: no mapping can exist, the access raises #GP."
    out.append(Finding("value.non-canonical", summary, tuple(ev), "high", "value", {"address": v}))
    return out


_POINTERS = ("direct-map", "vmalloc", "vmemmap", "kernel-text", "module", "kernel", "kernel-data")


def bit_flip(crash: Crash, arch: str, v: int) -> Finding | None:
    """`v` is not a valid pointer but one flipped bit makes it a kernel pointer near another register's."""
    if arch not in ("x86_64", "arm64"):
        return None
    kind = _region(crash, v, arch)[0]
    if (v >> 56) == 0xDF and V.kasan_shadow(v, arch) is not None:
        return None  # a KASAN shadow address, explained by value.non-canonical
    if (
        kind in V.KERNEL_POINTER_REGIONS
        or kind in ("null", "small")
        or any(
            c.kind in ("err-ptr", "list-poison", "slab-poison", "magic", "kasan-offset")
            for c in _classify(crash, v, arch)
        )
    ):
        return None
    peers = {k: x for k, x in crash.registers.items() if _gp(k, arch) and _region(crash, x, arch)[0] in _POINTERS}
    hits = []
    for b in range(64):
        c = v ^ (1 << b)
        ck = _region(crash, c, arch)[0]
        if ck not in _POINTERS:
            continue
        near = [k for k, x in peers.items() if _region(crash, x, arch)[0] == ck and abs(x - c) < (1 << 30)]
        if near:
            hits.append((b, c, near))
    if len(hits) != 1:
        return None
    b, c, near = hits[0]
    return Finding(
        "value.bit-flip",
        f"{v:#x} is one bit (bit {b}) away from {c:#x}, a {_region(crash, c, arch)[1]} pointer close to "
        f"{', '.join(near)}: possibly a memory bit flip (check for hardware errors).",
        tuple(f"{k} = {crash.registers[k]:#x}" for k in near) + (f"{v:#x} ^ (1 << {b}) = {c:#x}",),
        "low",
        "value",
        {"bit": b, "corrected": c, "near": near},
    )


def _ip_findings(ctx: AnalysisContext, arch: str) -> list[Finding]:
    """The IP itself is bad: a call through a NULL or corrupted function pointer."""
    crash = ctx.crash
    ip = _ip(crash, arch)
    if (
        ip is None
        or crash.kind not in FAULT_KINDS
        or user_mode(crash, arch)
        or (crash.ip is not None and crash.ip.symbol)
    ):
        return []
    kind, text = _region(crash, ip, arch, 32 if arch in ("i386", "arm") else 64)
    if kind in ("kernel-text", "module", "kernel"):
        return []
    caller = next((f for f in crash.frames if f.symbol), None)
    lr = crash.reg("lr") if arch in ("arm64", "arm") else None
    ev = [f"{IP_REG[arch]} = {ip:#x} ({text})"]
    who = ""
    if lr is not None:
        ev.append(f"lr = {lr:#x} (return address: the caller)")
    if caller is not None:
        ev.append(f"first call trace entry: {caller}" + ("" if caller.reliable else " (unreliable '?' entry)"))
        who = f"; the call came from {caller.symbol}" + (
            "" if caller.reliable else " (by the first, unreliable, stack entry)"
        )
    summary = (
        f"The CPU jumped to {ip:#x} ({text}), not kernel code: a call through a NULL or corrupted function "
        f"pointer{who}."
    )
    conf = "high" if kind in ("null", "small", "non-canonical", "user") else "medium"
    return [
        Finding(
            "value.ip-invalid",
            summary,
            tuple(ev),
            conf,
            "value",
            {"ip": ip, "region": kind, "caller": caller.symbol if caller else None},
        )
    ]


# --- dataflow ---------------------------------------------------------------------------------


@analyzer("dataflow", order=25)
def analyze_dataflow(ctx: AnalysisContext) -> list[Finding]:
    """Where the bad register came from inside the Code window."""
    crash = ctx.crash
    arch = _arch(crash)
    d = _decoded(ctx)
    acc = ctx.finding("insn.bad-access")
    br = ctx.finding("insn.branch")
    if d is None or d.trap is None or (acc is None and br is None):
        raise Skip("no decoded bad access to trace")
    regs = []
    if acc is not None:
        offsets = {k for k, v in acc.data["values"].items() if V.is_kasan_offset(v, arch)}
        regs += [r for r in (acc.data["base"], acc.data["index"]) if r and r not in offsets and r != "RIP"]
    if br is not None and br.data["via"][0] != "[":
        regs.append(br.data["via"])
    look = lookup_for(crash)
    entry = None
    if crash.ip is not None and crash.ip.offset is not None and d.trap.offset - crash.ip.offset >= d.insns[0].offset:
        entry = d.trap.offset - crash.ip.offset  # func+off: the function starts inside the window
    out = []
    for r in dict.fromkeys(regs):
        ch = walk_back(d.before, r, arch, look, entry=entry)
        lines = [s.line() for s in ch.steps] + ([ch.stop] if ch.stop else [])
        if not lines:
            continue
        origin = ch.steps[-1].text if ch.steps else ch.stop
        if ch.steps and ch.stop:
            origin += f"; then {ch.stop}"
        via = " <- ".join(dict.fromkeys([r] + [s.reg for s in ch.steps]))
        via = f" ({via})" if "<-" in via else ""
        summary = (
            f"If reached by fall-through, {r} traces back{via} to: {origin}"
            + ("; every value checked matches the register dump" if ch.consistent else "")
            + "."
        )
        conf = "high" if ch.consistent else "medium" if ch.steps or "function entry" in ch.stop else "low"
        if any(d.insns[0].offset <= s.offset < d.sync for s in ch.steps if s.offset is not None):
            conf = "low"
            lines.append("some of these instructions are before the point where every alignment of the window agrees")
        lines.append("the bytes before the trap ran just before it only if no jump landed in between")
        out.append(
            Finding(
                "dataflow.base-origin",
                summary,
                tuple(lines),
                conf,
                "dataflow",
                {"register": r, "steps": [s.__dict__ for s in ch.steps], "stop": ch.stop, "consistent": ch.consistent},
            )
        )
    if not out:
        raise Skip("nothing to trace")
    return out


# --- regs.classified --------------------------------------------------------------------------


@analyzer("regs", order=30)
def analyze_registers(ctx: AnalysisContext) -> list[Finding]:
    """One line per interesting register value, in one finding."""
    crash = ctx.crash
    arch = _arch(crash)
    if not crash.registers:
        raise Skip("no register dump")
    bits = 32 if arch in ("i386", "arm") else 64
    lines: list[str] = []
    data: dict[str, Any] = {}
    for name, v in crash.registers.items():
        if not _gp(name, arch) and name not in ("RSP", "sp", "lr", "ESP"):
            continue
        labels = [
            ("small integer" if c.detail.get("offset") else "zero") + f" (or {c.text})"
            if c.kind == "null-offset"
            else c.text
            for c in _classify(crash, v, arch, bits)
        ]
        lines.append(f"{name} = {v:#x}: {'; '.join(labels)}")
        data[name] = [c.kind for c in _classify(crash, v, arch, bits)]
    if not lines:
        raise Skip("no general-purpose registers in the dump")
    lay = layout(crash, arch)
    if lay:
        gs = crash.reg("GS")
        lines.append(
            f"GS (per-cpu base, in the direct map) = {gs:#x}: "
            + (
                "the memory layout is randomized (KASLR, CONFIG_RANDOMIZE_MEMORY), so direct map, vmalloc and vmemmap "
                "addresses are not told apart by range"
                if lay == "randomized"
                else "the fixed (non-randomized) memory layout, so the documented ranges apply"
            )
        )
        data["layout"] = lay
    notable = sorted(
        {
            k
            for ks in data.values()
            for k in ks
            if k in ("null-offset", "err-ptr", "list-poison", "slab-poison", "magic", "non-canonical")
        }
    )
    summary = f"{len(lines)} registers classified" + (f"; notable: {', '.join(notable)}" if notable else "") + "."
    return [Finding("regs.classified", summary, tuple(lines), "high", "regs", {"registers": data})]
