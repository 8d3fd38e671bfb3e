"""With debug info (no vmcore): frames to file:line with inline chains, the faulting function
disassembled with source lines (`crash> dis -l`), and the C expression/member at fault.

One analyzer, so that missing/refused debug info is one Skipped line saying what was needed and
where ktriage looked; every log-only finding before it stays as it was.
"""

from __future__ import annotations

import os
import re

from ktriage.analyzers import AnalysisContext, Skip, analyzer
from ktriage.model import Crash, Finding, Frame, Location

MAX_LISTING = 400  # instructions shown around the fault in a long function


def _needed(crash: Crash) -> str:
    rel = crash.kernel.release or "(release not in the log)"
    mods = []
    for loc in ((crash.ip,) if crash.ip else ()) + tuple(crash.frames):
        if loc.module and loc.module not in mods:
            mods.append(loc.module)
    return f"vmlinux of {rel}" + (f" and {', '.join(m + '.ko' for m in mods)}" if mods else "")


def _rel(path: str) -> str:
    return os.path.basename(path) if path else "?"


@analyzer("debuginfo", order=40)
def analyze_debuginfo(ctx: AnalysisContext) -> list[Finding]:
    crash = ctx.crash
    di = ctx.debuginfo
    if di is None:
        raise Skip(f"needs the {_needed(crash)} with DWARF (debug info support unavailable)")
    s = di.search
    if not di.ok:
        if ctx.vmcore is not None and not s.refused and not di.error:
            raise Skip("no --vmlinux/--debuginfo for the log-level source analysis (the vmcore analysis finds its own)")
        why = di.error or "no matching file with DWARF found"
        refused = ("; " + "; ".join(s.refused)) if s.refused else ""
        raise Skip(f"needs the {_needed(crash)} with DWARF: {why}{refused}; looked in: {s.looked_summary()}")
    out: list[Finding] = []
    for note in s.refused:
        out.append(Finding("debuginfo.refused", note, (note,), "certain", "debuginfo", {"note": note}))
    used = ([f"vmlinux: {s.vmlinux} ({s.vmlinux_how})"] if s.vmlinux else []) + [
        f"{m}: {p} ({s.modules_how.get(m, '')})" for m, p in s.modules.items()
    ]
    missing = ([] if s.vmlinux else ["vmlinux"]) + [m + ".ko" for m in s.missing_modules()]
    summary = "Debug info: " + "; ".join(
        f"{_rel(p)}" for p in ([s.vmlinux] if s.vmlinux else []) + list(s.modules.values())
    )
    summary += (
        " (verified against the crash)"
        + (
            f"; missing {', '.join(missing)}: frames there stay unsymbolized (looked in: {s.looked_summary(6)})"
            if missing
            else ""
        )
        + "."
    )
    out.append(
        Finding(
            "debuginfo.files",
            summary,
            tuple(used + s.verified),
            "certain",
            "debuginfo",
            {
                "vmlinux": s.vmlinux,
                "modules": dict(s.modules),
                "missing": missing,
                "looked": list(dict.fromkeys(s.looked)),
                "refused": list(s.refused),
            },
        )
    )
    frames = symbolize(crash, di)
    if frames:
        out.append(_frames_finding(frames, di))
    for fn in (_disassembly, _member):
        try:
            f = fn(ctx, di, frames)
        except Exception as e:  # one step failing must not hide the others
            f = [
                Finding(
                    "debuginfo.error",
                    f"{fn.__name__.strip('_')}: internal error {type(e).__name__}: {e}",
                    (),
                    "low",
                    "debuginfo",
                    {},
                )
            ]
        out += f
    # its vmlinux mapping: the pages drgn's address-to-unit table touched are page cache (ktriage.residency)
    from ktriage.residency import drop_resident

    drop_resident(s.vmlinux)
    return out


# --- frames -----------------------------------------------------------------------------------


def _same_place(a: Location, b: Location | None) -> bool:
    return b is not None and (a.symbol, a.offset, a.module) == (b.symbol, b.offset, b.module)


_LR = re.compile(r"^\s*lr\s*:\s*(\S.*?)\s*$")


def arm64_lr(crash: Crash) -> Location | None:
    """The `lr : func+off/size [mod]` line of an arm64 register dump (the link register, symbolized)."""
    from ktriage.logs.frames import parse_location

    for line in crash.lines:
        m = _LR.match(line)
        if m:
            loc = parse_location(m.group(1))
            return loc if loc is not None and loc.symbol and loc.offset is not None else None
    return None


def missing_caller(crash: Crash) -> Location | None:
    """arm64: the caller a leaf function's trace leaves out, from the `lr :` line.

    A leaf function builds no frame record, so the unwinder goes from the trapping pc straight to the
    frame record of the leaf's caller, whose saved return address is in the caller's caller: the caller
    itself is only in the link register (`pc : crashmod_read_rx_count+0x4`, `lr : crashmod_trigger+0x54`,
    `Call trace:` pc, then `crashmod_write+0x70`). The lr counts only when the trace starts at the pc, it
    names another function than the pc's (a non-leaf function's lr points after its own last call) and
    the trace's next entry is not that same return address already."""
    if crash.arch != "arm64" or crash.ip is None or not crash.frames or not _same_place(crash.frames[0], crash.ip):
        return None
    lr = arm64_lr(crash)
    if lr is None or (lr.symbol, lr.module) == (crash.ip.symbol, crash.ip.module):
        return None
    if len(crash.frames) > 1 and _same_place(crash.frames[1], lr):
        return None
    return lr


def symbolize(crash: Crash, di) -> list[dict]:
    """Each frame -> debug-file address, lookup address (return address - 1 except the faulting IP,
    exception frames and interrupted PCs), and the inline chain innermost first.

    arm64 prints the trapping pc again as the first `Call trace:` entry (the unwind starts at the
    exception's pt_regs): that entry is the faulting instruction too, looked up exactly. The caller of a
    leaf function, missing from an arm64 trace, is added after it from `lr :` (`register: "lr"`). An
    arm64 return address at func+0x0 follows a noreturn call at the end of the function before it: it
    is looked up at offset-1 like every return address (x86 keeps +0x0 as is: stack-scan pointers)."""
    out = []
    locs: list[tuple[Location, bool, str | None]] = []
    if crash.ip is not None and crash.ip.symbol:
        locs.append((crash.ip, True, None))
    lr = missing_caller(crash)
    for n, f in enumerate(crash.frames):
        exact = isinstance(f, Frame) and (f.section == "exception" or f.interrupted)
        if n == 0 and crash.arch == "arm64" and _same_place(f, crash.ip):
            exact = True
        locs.append((f, exact, None))
        if n == 0 and lr is not None:
            locs.append((lr, False, "lr"))
    for loc, exact, reg in locs:
        rec: dict = {
            "frame": str(loc),
            "symbol": loc.symbol,
            "offset": loc.offset,
            "size": loc.size,
            "module": loc.module,
            "reliable": getattr(loc, "reliable", True),
            "exact": exact,
            "locations": [],
        }
        if reg:
            rec["register"] = reg
            rec["note"] = (
                "from `lr :`: the return address into the caller of a leaf function (no frame record), "
                "missing from the Call trace"
            )
        if not loc.symbol or loc.offset is None:
            rec["note"] = "no symbol+offset"
        elif not di.has(loc.module):
            rec["note"] = f"no debug info for {loc.module or 'vmlinux'}"
        else:
            addr = di.address(loc.symbol, loc.offset, loc.module)
            if addr is None:
                rec["note"] = f"{loc.symbol} not in {_rel(di.object_for(loc.module) or '')}"
            else:
                # func+0x0 as a return address: on arm64 (frame-record unwinder, no stack scan) the call was
                # the last instruction of the function before (a noreturn call: `panic`, `do_group_exit`),
                # so offset-1 names the caller as addr2line does; elsewhere +0x0 is usually a stack-scan
                # function pointer, looked up as is
                at0 = loc.offset == 0 and not (crash.arch == "arm64" and rec["reliable"])
                look = addr if exact or at0 else addr - 1
                rec["address"], rec["lookup"] = addr, look
                path, sec, a2l = di.file_location(look)
                rec["file"], rec["section"], rec["addr2line_address"] = path, sec, a2l
                rec["locations"] = [
                    {"function": s.function, "file": s.file, "line": s.line, "column": s.column}
                    for s in di.locate(look)
                ]
                ch = rec["locations"]
                if not ch:
                    rec["note"] = "no line information at this address"
                    if loc.size is not None and loc.offset == loc.size:
                        rec["note"] += (
                            f" (offset = size: the first byte after {loc.symbol}, i.e. a pointer to the "
                            f"next function found by the stack scan, not a return address)"
                        )
                if ch and ch[-1]["function"].strip("?") == "":  # padding after the function's ELF size
                    ch[-1]["function"] = loc.symbol
                if len(ch) == 1 and ch[0]["file"].endswith(".S") and ch[0]["function"] != loc.symbol:
                    # assembly: no DWARF subprogram, drgn names the sized ELF symbol around it; the oops
                    # (kallsyms) and addr2line name the nearest label
                    ch[0]["function"] = loc.symbol
        out.append(rec)
    return out


def _frames_finding(frames: list[dict], di) -> Finding:
    lines = []
    done = 0
    for n, fr in enumerate(frames):
        tag = "IP " if n == 0 and fr["exact"] else ("lr " if fr.get("register") == "lr" else f"#{n:<2}")
        if not fr["locations"]:
            lines.append(f"{tag} {fr['frame']}: {fr.get('note', 'no line information')}")
            continue
        done += 1
        chain = fr["locations"]
        inner = chain[0]
        src = di.source_line(inner["file"], inner["line"]) if di.src_dirs else None
        head = f"{tag} {fr['frame']}  {inner['function']} at {inner['file']}:{inner['line']}"
        lines.append(head + (f"    | {src.strip()}" if src else ""))
        for c in chain[1:]:
            lines.append(f"      inlined into {c['function']} at {c['file']}:{c['line']}")
    first = next((f for f in frames if f["locations"]), None)
    where = ""
    if first:
        c = first["locations"][0]
        where = f"; {first['frame']} is {c['function']} at {os.path.basename(c['file'])}:{c['line']}"
    summary = f"{done} of {len(frames)} frames mapped to source lines{where}."
    return Finding(
        "src.frames",
        summary,
        (
            "return addresses looked up at offset-1 (the call), the faulting IP "
            "exactly; addresses are debug-file addresses from func+off",
        ),
        "certain" if done == len(frames) else "high",
        "debuginfo",
        {"frames": frames},
        tuple(lines),
    )


# --- disassembly --------------------------------------------------------------------------------


def _disassembly(ctx: AnalysisContext, di, frames: list[dict]) -> list[Finding]:
    from ktriage.debuginfo.member import disassemble

    crash = ctx.crash
    ip = crash.ip
    if ip is None or not ip.symbol or ip.offset is None or not di.has(ip.module):
        return []
    arch = crash.arch or "x86_64"
    if arch not in ("x86_64", "arm64"):
        return [
            Finding(
                "debuginfo.error", f"no disassembly for {crash.arch} (x86_64 and arm64 only)", (), "low", "debuginfo"
            )
        ]
    sym = di.function(ip.symbol, ip.module)
    if sym is None:
        return []
    code = di.read_code(sym.address, sym.size)
    if code is None:
        return [
            Finding(
                "debuginfo.error",
                f"{ip.symbol}: no code bytes in {_rel(di.object_for(ip.module) or '')} "
                f"(a split .debug file has no .text)",
                (),
                "low",
                "debuginfo",
            )
        ]
    fault = sym.address + ip.offset
    insns = disassemble(code, sym.address, arch=arch)
    idx = next((k for k, i in enumerate(insns) if i.address == fault), None)
    lo, hi = 0, len(insns)
    if len(insns) > MAX_LISTING and idx is not None:
        lo, hi = max(0, idx - MAX_LISTING // 2), min(len(insns), idx + MAX_LISTING // 2)
    lines: list[str] = []
    last = None
    is_mod = ip.module is not None
    for i in insns[lo:hi]:
        chain = di.locate(i.address)
        key = (chain[0].file, chain[0].line) if chain else None
        if key != last and key is not None:
            inl = f"  [{chain[0].function} inlined into {chain[1].function}]" if len(chain) > 1 else ""
            lines.append(f"{key[0]}: {key[1]}{inl}")
            text = di.source_line(*key) if di.src_dirs else None
            if text is not None:
                lines.append(f"    | {text.rstrip()}")
            last = key
        mark = "*" if i.address == fault else " "
        ops = i.op_str
        # jump/call with an immediate target (the last operand: arm64 `cbz x0, T`); IMM is 2 in both capstone enums
        if not is_mod and (i.group(1) or i.group(2)) and i.operands and i.operands[-1].type == 2:
            tgt = i.operands[-1].imm & 0xFFFFFFFFFFFFFFFF
            try:
                ts = di.prog.symbol(tgt)
                ops += f" <{ts.name}+{tgt - ts.address:#x}>" if tgt != ts.address else f" <{ts.name}>"
            except (LookupError, ValueError):
                pass
        lines.append(
            f"{mark}{i.address:#x} <{ip.symbol}+{i.address - sym.address}>:\t{i.mnemonic} {ops}".rstrip()
            + ("   <-- fault" if mark == "*" else "")
        )
    ev = [
        f"{ip.symbol}: {sym.size:#x} bytes at {sym.address:#x} in {_rel(di.object_for(ip.module) or '')} "
        f"(debug-file address; the oops' KASLR/module address differs)"
    ]
    if is_mod:
        ev.append(
            "module code is unrelocated: call/jump targets and %rip-relative data outside the function read as "
            "self-relative / 0"
            if arch == "x86_64"
            else "module code is unrelocated: `bl` to other functions and adrp/add (or literal) data addresses read as "
            "self-relative / 0"
        )
    if idx is None:
        ev.append(
            f"no instruction starts at +{ip.offset:#x}: the file is not the code that ran, or alternatives were patched"
        )
    chain = di.locate(fault)
    where = f" ({chain[0].file}:{chain[0].line})" if chain else ""
    tr = insns[idx] if idx is not None else None
    summary = (
        f"{ip.symbol} disassembled with source lines; the fault is at +{ip.offset:#x}"
        + (f" `{tr.mnemonic} {tr.op_str}`" if tr else "")
        + where
        + "."
    )
    data = {
        "function": ip.symbol,
        "address": sym.address,
        "size": sym.size,
        "fault": fault,
        "fault_insn": f"{tr.mnemonic} {tr.op_str}" if tr else None,
        "instructions": len(insns),
        "syntax": "att" if arch == "x86_64" else "arm64",
    }
    return [Finding("src.disassembly", summary, tuple(ev), "certain" if tr else "low", "debuginfo", data, tuple(lines))]


# --- the member at fault ------------------------------------------------------------------------


def _member(ctx: AnalysisContext, di, frames: list[dict]) -> list[Finding]:
    from ktriage.debuginfo.member import Resolver, disassemble, member_path, pointee, reg_field, type_name

    crash = ctx.crash
    acc = ctx.finding("insn.bad-access")
    ip = crash.ip
    if acc is None or ip is None or not ip.symbol or ip.offset is None or not di.has(ip.module):
        return []
    arch = crash.arch or "x86_64"
    if arch not in ("x86_64", "arm64") or di.kernel is None:
        return [
            Finding(
                "debuginfo.error", "the member at fault needs x86_64 or arm64 and the vmlinux", (), "low", "debuginfo"
            )
        ]
    base, disp = acc.data.get("base"), acc.data.get("disp") or 0
    reg = reg_field(base, arch)
    if reg is None or acc.data.get("index"):
        return []
    sym = di.function(ip.symbol, ip.module)
    code = di.read_code(sym.address, sym.size) if sym else None
    if code is None:
        return []
    fault = sym.address + ip.offset
    insns = disassemble(code, sym.address, arch=arch)
    idx = next((k for k, i in enumerate(insns) if i.address == fault), None)
    if idx is None:
        return []
    res = Resolver(di, dict(crash.registers), insns, idx, arch)
    readings = res.resolve(reg, idx)
    if not readings:
        readings = res.by_type(disp)
    chain = di.locate(fault)
    line = f"{chain[0].file}:{chain[0].line}" if chain else "?"
    src = di.source_line(chain[0].file, chain[0].line) if chain and di.src_dirs else None
    bval = acc.data.get("values", {}).get(base)
    cands = []
    for r in readings:
        st = pointee(res._type(r)) if res._type(r) is not None else None
        if st is None:
            continue
        for path, mtype, _ in member_path(st, disp)[:1]:
            cands.append((r, st, path, mtype))
    if not cands:
        ev = [
            f"{base} = {bval:#x}" if bval is not None else f"{base}",
            f"no variable is located in {base} at {fault:#x} and its load could not be followed",
        ]
        return [
            Finding(
                "src.fault-member",
                f"The faulting access is {base} + {disp:#x} at {line}; no C expression could be named from the DWARF.",
                tuple(ev),
                "low",
                "debuginfo",
                {"base_register": base, "disp": disp, "line": line, "expression": None},
            )
        ]
    r, st, path, mtype = cands[0]
    expr = f"{r.expression}->{path}"
    null = " (NULL)" if bval == 0 else (f" (= {bval:#x})" if bval is not None else "")
    origin = next((st_ for st_ in r.steps if st_.get("origin_of")), None)
    loaded = f", loaded from `{origin['expression']}` (offset {origin['offset']:#x})" if origin else ""
    summary = (
        f"The faulting access is `{expr}`: {r.expression} is `{r.base_type}`{null} in {base}{loaded}, member "
        f"{path} ({type_name(mtype)}) at offset {disp:#x} of {type_name(st)}, at {os.path.basename(line)}"
        + (f" `{src.strip()}`" if src else "")
        + "."
    )
    ev = list(r.how) + [
        f"{type_name(st)}.{path} is at offset {disp:#x} (drgn type info), type {type_name(mtype)}",
        f"fault at {ip.symbol}+{ip.offset:#x} = {line}",
    ]
    conf = r.confidence
    others = [f"{c[0].expression}->{c[2]}" for c in cands[1:]]
    if others:
        ev.append(f"other readings that fit: {', '.join(others)}")
        conf = "medium" if conf in ("certain", "high") else "low"
    data = {
        "expression": expr,
        "base_expression": r.expression,
        "base_type": r.base_type,
        "base_register": base,
        "base_value": bval,
        "struct": type_name(st),
        "member": path,
        "member_type": type_name(mtype),
        "offset": disp,
        "line": line,
        "chain": r.steps,
        "alternatives": others,
        "origin": origin["expression"] if origin else None,
    }
    return [Finding("src.fault-member", summary, tuple(ev), conf, "debuginfo", data)]
