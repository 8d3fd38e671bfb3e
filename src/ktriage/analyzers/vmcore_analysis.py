"""vmcore analyzers: the work of a `crash` session in a post-mortem (sys, bt, dis, kmem, struct), done with drgn.

Every analyzer needs `ctx.vmcore` (a ktriage.vmcore.VmcoreSession); those that read the crashed
thread run only for the crash the dump was taken for (the last one in its log), and those that need
types say which debug info is missing when the session has none.

Finding codes (data keys in brackets):
  vmcore.sys               crash's `sys`: release, CPUs, memory, uptime, load, tasks, panic, dump file [= the facts]
  vmcore.debuginfo         which debug files were loaded [tier, loaded]
  vmcore.debuginfo-missing tier reached (raw/symbols/btf) and the debug file, by build id, that unlocks more
                           [tier, missing, loaded]
  vmcore.stack             crashed thread's frames: function [module] file:line, stack (task / IRQ-softirq /
                           exception / user), interrupted / inline / faulting; registers of the faulting frame
                           [comm, pid, faulting_frame, frames, registers]
  vmcore.pointers          each register of the faulting frame identified: slab cache + object + allocated/free,
                           task, task stack, symbol [registers]
  vmcore.race              memory the base register was loaded from, re-read now vs the value the CPU used;
                           slab cache and SLAB_TYPESAFE_BY_RCU [address, now, used, register, from, disp, member,
                           var, changed, slab, now_is]; without types from the log's dataflow.base-origin [tier]
  vmcore.use-after-free    base register read from a FREE slab object (load overwrote its own base register)
                           [candidates, slab, disp, used]
  vmcore.member            the faulting access in source terms, port->dev->rx_count [expression, var, type, member,
                           offset, inner_type, inner_member, inner_offset]
  vmcore.object-bounds     access beyond the slab object's size, type confusion [cache, object_size, offset, member,
                           type, type_size, neighbour_allocated]
  vmcore.args              parameters/locals with DWARF values and recovered callee-saved registers per frame [frames]
  vmcore.skb               packet in flight: device, protocol, IPv4 addresses, UDP/TCP ports, length; found as a frame
                           variable (DWARF) or a register pointing at an sk_buff slab object [dev, protocol,
                           saddr, daddr, ip_protocol, sport, dport, len, frame, var]
  vmcore.sock              socket family/state; TCP_NEW_SYN_RECV / TIME_WAIT flagged as the smaller
                           request/timewait sock [family, state, really, really_size, slab]
  vmcore.hung              (analyzers/vmcore_hung.py) D-state tasks, the lock each sleeps on, its owner, the chain of
                           who waits for whom [tasks, chains, cycles]; vmcore.deadlock when the chain closes
  vmcore.cpus              every online CPU's current task and where it runs [cpus, panic_cpu]
  vmcore.tasks             crash's `ps` + `foreach bt`: every task's state, stacks of all but idle workers [count,
                           states, unreadable, tasks, stacks_for]

Tiers: with DWARF everything above; on the btf tier (no debug info, types from the dump's BTF) all but locals,
inlined frames and source lines: vmcore.member/race name the variable from the function's BTF prototype
(calling convention), vmcore.hung finds the mutex from its wait list, vmcore.skb/sock from registers.

Order: vmcore.sys (60) -> stack (61) -> pointers (62) -> race (63) -> bounds (64) -> args (65)
-> skb (66) -> sock (67) -> hung (68) -> cpus (69) -> tasks (70).
"""

from __future__ import annotations

import re
from typing import Any

from ktriage.analyzers import AnalysisContext, Skip, analyzer
from ktriage.model import Finding

MAX_FRAMES = 48
GP_REGS = ("rax", "rbx", "rcx", "rdx", "rsi", "rdi", "rbp", "r8", "r9", "r10", "r11", "r12", "r13", "r14", "r15")
CALLEE_SAVED = ("rbx", "rbp", "r12", "r13", "r14", "r15")
A64_GP = tuple(f"x{i}" for i in range(31))  # drgn's aarch64 register names (x29 = fp, x30 = lr)
A64_CALLEE_SAVED = tuple(f"x{i}" for i in range(19, 30))


def gp_regs(regs: dict) -> tuple[str, ...]:
    """The general-purpose register names of the frame's architecture (drgn names them per platform)."""
    return A64_GP if "x0" in regs or "x19" in regs else GP_REGS


def callee_saved(regs: dict) -> tuple[str, ...]:
    return A64_CALLEE_SAVED if any(r in regs for r in A64_CALLEE_SAVED) else CALLEE_SAVED


# frames that only record the dump itself (kdump saves the registers there), and the panic path above them
DUMP_PATH = frozenset(
    (
        "crash_setup_regs",
        "__crash_kexec",
        "crash_kexec",
        "machine_kexec",
        "crash_save_cpu",
        "native_machine_crash_shutdown",
        "__crash_shutdown_handler",
    )
)
PANIC_PATH = DUMP_PATH | frozenset(
    (
        "panic",
        "vpanic",
        "nmi_panic",
        "oops_end",
        "die",
        "check_panic_on_warn",
        "__warn",
        "report_bug",
        "__report_bug",
        "handle_bug",
        "exc_invalid_op",
        "asm_exc_invalid_op",
        "do_trap",
        "do_error_trap",
    )
)


def _session(ctx: AnalysisContext, types: bool = True, primary: bool = True):
    s = ctx.vmcore
    if s is None:
        raise Skip("needs a vmcore")
    if primary and not s.is_primary(ctx.crash):
        raise Skip("this crash is not the one the dump was taken for (the dump's state is from a later crash)")
    if types and not s.has_types:
        want = "; ".join(s.missing) or "the kernel's vmlinux with debug info"
        raise Skip(f"needs kernel debug info (types, stacks): give --vmlinux/--debuginfo with {want}")
    return s


def _trace(s):
    tr = s.crashed_trace()
    if tr is None:
        raise Skip(f"the crashed thread's stack could not be unwound: {s.trace_error}")
    return tr


def _short(path: str | None) -> str:
    """Kernel paths are relative already; an out-of-tree module's absolute path keeps its last two parts."""
    if not path:
        return "?"
    if path.startswith("/"):
        return "/".join(path.split("/")[-2:])
    return path


def _source(f) -> str:
    try:
        fn, line, _col = f.source()
        return f"{_short(fn)}:{line}"
    except Exception:  # noqa: BLE001
        return ""


def _module_of(prog, pc: int) -> str | None:
    from ktriage.vmcore.decoders import module_name

    return module_name(prog, pc)


def _kernel_ptr(v: int) -> bool:
    """A kernel-half address on x86_64 (from 0xffff800000000000) and arm64 (linear map from 0xffff000000000000
    with 48-bit VAs); values in between are non-canonical on x86_64 and simply fail to read."""
    return v >= 0xFFFF000000000000


def _frame_name(f) -> str:
    name = f.name  # each read is a symbol or DWARF scope lookup (every task's stack in vmcore.tasks)
    if name:
        return name
    try:
        return f.symbol().name
    except Exception:  # noqa: BLE001
        return f"{f.pc:#x}"


def faulting_index(ctx: AnalysisContext, trace) -> int:
    """The frame where the CPU trapped: the interrupted frame named like the oops' IP, else the first
    interrupted kernel frame, else frame 0."""
    ip = ctx.crash.ip.symbol if ctx.crash.ip else None
    kernel = [i for i, f in enumerate(trace) if f.pc >= 0xFFFF800000000000]
    last = max((i for i in kernel if _frame_name(trace[i]) in PANIC_PATH), default=None)
    # an "interrupted" frame above panic() is where a hypervisor stopped the CPU for the dump (QEMU dumps hold the
    # registers at dump time: panic's delay loop), not a trap
    inter = [
        i
        for i in kernel
        if trace[i].interrupted and _frame_name(trace[i]) not in DUMP_PATH and (last is None or i > last)
    ]
    if ip:
        for i in inter:
            if _frame_name(trace[i]) == ip:
                return i
        for i in kernel:
            if _frame_name(trace[i]) == ip:
                return i
    if inter:
        return inter[0]
    # no trap: the thread called panic(); the interesting frame is the caller of the panic path
    if last is not None and last + 1 < len(trace) and trace[last + 1].pc >= 0xFFFF800000000000:
        return last + 1
    return 0


def _stacks(s, task) -> list[tuple[str, int, int]]:
    """(label, low, high) of the task's stack and this CPU's IRQ stack."""
    prog = s.prog
    out = []
    try:
        base = task.stack.value_()
        out.append(("task stack", base, base + 0x8000))
    except Exception:  # noqa: BLE001
        pass
    try:
        from drgn.helpers.linux.percpu import per_cpu
        from drgn.helpers.linux.sched import task_cpu

        top = per_cpu(prog["hardirq_stack_ptr"], task_cpu(task)).value_()
        out.append(("IRQ/softirq stack", top + 8 - 0x4000, top + 8))
    except Exception:  # noqa: BLE001
        try:  # arm64: irq_stack_ptr is the base of a THREAD_SIZE (16 KiB) stack
            from drgn.helpers.linux.percpu import per_cpu
            from drgn.helpers.linux.sched import task_cpu

            base = per_cpu(prog["irq_stack_ptr"], task_cpu(task)).value_()
            out.append(("IRQ/softirq stack", base, base + 0x4000))
        except Exception:  # noqa: BLE001
            pass
    return out


def _sp(f) -> int | None:
    """Where the frame lives on its stack: the stack pointer, or for a frame unwound by frame pointers (arm64,
    no CFI), whose sp drgn does not know, the address of its frame record (fp/x29), on the same stack."""
    try:
        return f.sp
    except LookupError:
        try:
            return f.registers().get("fp") or f.registers().get("x29")
        except Exception:  # noqa: BLE001
            return None


def _where(stacks, sp: int) -> str:
    for label, lo, hi in stacks:
        if lo <= sp < hi:
            return label
    return "exception stack" if sp >= 0xFFFF800000000000 else "user"


def _fmt_regs(regs: dict) -> str:
    return " ".join(f"{k.upper()}={regs[k]:#x}" for k in ("rip", "rsp", "pc", "sp") + gp_regs(regs) if k in regs)


# --- vmcore.sys ---------------------------------------------------------------------------------


@analyzer("vmcore.sys", order=60, needs=("vmcore",))
def analyze_sys(ctx: AnalysisContext) -> list[Finding]:
    s = _session(ctx, types=False, primary=False)
    sysd = dict(s.system)
    keys = (
        "RELEASE",
        "VERSION",
        "MACHINE",
        "NODENAME",
        "CPUS",
        "MEMORY",
        "UPTIME",
        "LOAD AVERAGE",
        "TASKS",
        "PANIC",
        "PANIC TASK",
        "TAINT",
        "DATE",
        "KERNELOFFSET",
        "BUILD-ID",
        "DUMPFILE",
        "DEBUGINFO",
    )
    ev = [f"{k}: {sysd[k]}" for k in keys if k in sysd]
    ev += [f"{k}: {v}" for k, v in sysd.items() if k not in keys]
    bits = [sysd.get("RELEASE", "unknown release")]
    if "CPUS" in sysd:
        bits.append(f"{sysd['CPUS'].split()[0]} CPUs")
    if "MEMORY" in sysd:
        bits.append(sysd["MEMORY"])
    panic = sysd.get("PANIC")
    summary = f"Dump of {', '.join(bits)}" + (f', panic: "{panic}"' if panic else "") + f"; debug info tier {s.tier}."
    out = [Finding("vmcore.sys", summary, tuple(ev), "certain", "vmcore.sys", dict(sysd))]
    ev2 = [f"loaded {x}" for x in s.loaded] + [f"missing {x}" for x in s.missing] + list(s.notes)
    if s.dmesg_source:
        ev2.append(f"kernel log from the {s.dmesg_source}")
    if s.tier != "dwarf" or s.missing:
        want = "; ".join(s.missing) or "the kernel's vmlinux with debug info"
        unlock = {
            "raw": "symbols, types, stacks, registers per frame, slab/task/socket decoding",
            "symbols": "types, stacks, registers per frame, slab/task/socket decoding",
            "btf": "locals, inlined frames and source lines",
            "dwarf": "module types, locals and source lines",
        }[s.tier]
        summ = (
            f"Debug info tier '{s.tier}': the dump alone gives VMCOREINFO"
            + (", kallsyms" if s.tier in ("symbols", "btf") else "")
            + (", BTF types, threads and ORC stacks" if s.tier == "btf" else "")
            + (" and the kernel log" if s.dmesg else "")
            + f"; {unlock} need: {want}."
        )
        out.append(
            Finding(
                "vmcore.debuginfo-missing",
                summ,
                tuple(ev2),
                "certain",
                "vmcore.sys",
                {"tier": s.tier, "missing": list(s.missing), "loaded": list(s.loaded)},
            )
        )
    else:
        out.append(
            Finding(
                "vmcore.debuginfo",
                f"Debug info loaded for the kernel and {len(s.loaded) - 1} module(s): "
                f"stacks, types and objects can be read.",
                tuple(ev2),
                "certain",
                "vmcore.sys",
                {"tier": s.tier, "loaded": list(s.loaded)},
            )
        )
    return out


# --- vmcore.stack -------------------------------------------------------------------------------


@analyzer("vmcore.stack", order=61, needs=("vmcore",))
def analyze_stack(ctx: AnalysisContext) -> list[Finding]:
    s = _session(ctx)
    prog = s.prog
    trace = _trace(s)
    fi = faulting_index(ctx, trace)
    thread = s.crashed_thread()
    task = thread.object
    stacks = _stacks(s, task)
    lines: list[str] = []
    frames: list[dict[str, Any]] = []
    for i, f in enumerate(trace):
        if i >= MAX_FRAMES:
            lines.append(f"... {len(trace) - MAX_FRAMES} more frames")
            break
        name = _frame_name(f)
        mod = _module_of(prog, f.pc)
        src = _source(f)
        sp = _sp(f)
        where = _where(stacks, sp) if sp is not None else "stack unknown"
        tags = []
        if f.interrupted and name in DUMP_PATH:
            tags.append("registers saved for the dump")
        elif f.interrupted:
            tags.append("interrupted: entered through an exception/interrupt")
        if f.is_inline:
            tags.append("inline")
        if i == fi:
            tags.append("FAULTING FRAME")
        text = (
            f"#{i:<2} {name}"
            + (f" [{mod}]" if mod else "")
            + f" pc {f.pc:#x}"
            + (f" sp {sp:#x}" if sp is not None else "")
            + (f" at {src}" if src else "")
            + f" ({where}"
            + (", " + ", ".join(tags) if tags else "")
            + ")"
        )
        lines.append(text)
        frames.append(
            {
                "index": i,
                "function": name,
                "module": mod,
                "source": src,
                "stack": where,
                "interrupted": bool(f.interrupted),
                "inline": bool(f.is_inline),
            }
        )
    fr = trace[fi]
    try:
        regs = dict(fr.registers())
    except Exception:  # noqa: BLE001
        regs = {}
    if regs:
        lines.insert(
            0,
            f"registers at frame #{fi} {_frame_name(fr)}"
            + ("" if fr.interrupted else " (a caller frame: only what the unwinder recovered)")
            + f": {_fmt_regs(regs)}",
        )
    comm = task.comm.string_().decode("utf-8", "replace")
    ctxs = sorted({fd["stack"] for fd in frames})
    summary = (
        f"Crashed thread {comm} (pid {thread.tid}): {len(trace)} frames from {_frame_name(trace[0])}"
        + (
            f"; the CPU trapped in #{fi} {_frame_name(fr)}"
            if fr.interrupted and _frame_name(fr) not in DUMP_PATH
            else f"; the CPU trapped in #{fi} {_frame_name(fr)} (the oops' faulting IP, reached through the "
            f"exception frame)"
            if ctx.crash.ip and _frame_name(fr) == ctx.crash.ip.symbol
            else f"; no trap: #{fi} {_frame_name(fr)} called the panic path"
            if fi and _frame_name(trace[fi - 1]) in PANIC_PATH
            else f"; no trapping frame: the thread was in #{fi} {_frame_name(fr)} when the dump was taken"
        )
        + (f" at {_source(fr)}" if _source(fr) else "")
        + f"; stacks: {', '.join(ctxs)}."
    )
    return [
        Finding(
            "vmcore.stack",
            summary,
            tuple(lines),
            "certain",
            "vmcore.stack",
            {
                "comm": comm,
                "pid": thread.tid,
                "faulting_frame": fi,
                "frames": frames,
                "registers": {k: v for k, v in regs.items() if k in gp_regs(regs) + ("rip", "rsp", "pc", "sp")},
            },
        )
    ]


# --- vmcore.pointers ----------------------------------------------------------------------------


@analyzer("vmcore.pointers", order=62, needs=("vmcore",))
def analyze_pointers(ctx: AnalysisContext) -> list[Finding]:
    from ktriage.vmcore.decoders import identify, slab_info

    s = _session(ctx)
    trace = _trace(s)
    fi = faulting_index(ctx, trace)
    regs = dict(trace[fi].registers())
    lines, data = [], {}
    for r in gp_regs(regs):
        v = regs.get(r)
        if v is None or not _kernel_ptr(v):
            continue
        what = identify(s.prog, v)
        if not what:
            continue
        lines.append(f"{r.upper()} = {v:#x}: {what}")
        si = slab_info(s.prog, v)
        data[r.upper()] = {"value": v, "what": what, **({"slab": si} if si else {})}
    if not lines:
        raise Skip("no register of the faulting frame points at something the dump identifies")
    slabs = [
        f"{k} in {d['slab']['cache']} ({'allocated' if d['slab']['allocated'] else 'FREE'})"
        for k, d in data.items()
        if "slab" in d
    ]
    summary = (
        f"{len(lines)} registers of the faulting frame point at identified memory"
        + (f"; slab objects: {', '.join(slabs)}" if slabs else "")
        + "."
    )
    return [Finding("vmcore.pointers", summary, tuple(lines), "high", "vmcore.pointers", {"registers": data})]


# --- code, members ------------------------------------------------------------------------------


def _fault_code(ctx: AnalysisContext, s) -> dict:
    """The trapping instruction and its base register's origin, from the dump's memory (cached)."""
    if "_vm_code" in ctx.__dict__:
        return ctx.__dict__["_vm_code"]
    from ktriage.vmcore.code import function_insns, memory_access, origin_of

    _x86_only(s)
    trace = _trace(s)
    fi = faulting_index(ctx, trace)
    f = trace[fi]
    if ctx.crash.ip is None and not f.interrupted:
        raise Skip(
            f"no faulting instruction: the log has no trapping IP and {_frame_name(f)} called the panic path "
            f"(a panic or hang, not a fault)"
        )
    regs = dict(f.registers())
    out: dict[str, Any] = {"frame": f, "index": fi, "regs": regs}
    insns, sym = function_insns(s.prog, f.pc)
    out["symbol"] = sym.name if sym else None
    if insns:
        acc = memory_access(insns[-1])
        out["access"] = acc
        if acc and acc.base and acc.base != "rip":
            out["origin"] = origin_of(insns, acc.base)
    ctx.__dict__["_vm_code"] = out
    return out


def _x86_only(s) -> None:
    """The dump-side instruction walk (vmcore/code.py) decodes x86_64; other architectures keep the log's own
    instruction analysis (insn.*, dataflow.*), which covers arm64."""
    import drgn

    arch = s.prog.platform.arch if s.prog.platform else None
    if arch is not None and arch != drgn.Architecture.X86_64:
        raise Skip(
            f"the dump-side instruction walk is x86_64 only (this dump: {arch.name.lower()}); see the "
            f"log-level insn/dataflow findings"
        )


def _struct_of(t):
    """struct type behind a pointer type (typedefs stripped), or None."""
    import drgn

    try:
        t = t.unqualified()
        while t.kind == drgn.TypeKind.TYPEDEF:
            t = t.type
        if t.kind != drgn.TypeKind.POINTER:
            return None
        t = t.type.unqualified()
        while t.kind == drgn.TypeKind.TYPEDEF:
            t = t.type
        return t if t.kind in (drgn.TypeKind.STRUCT, drgn.TypeKind.UNION) else None
    except Exception:  # noqa: BLE001
        return None


def _member(t, off: int) -> str | None:
    try:
        from drgn.helpers.common.type import member_at_offset

        m = member_at_offset(t, off)
        return m
    except Exception:  # noqa: BLE001
        return None


def _member_type(t, name: str):
    try:
        from drgn.helpers.common.type import typeof_member

        return typeof_member(t, name)
    except Exception:  # noqa: BLE001
        return None


def _param_for(prog, f, reg: str, value: int, arg_index: int | None):
    """(name, type, how) of the frame's variable holding `value`, or the arg_index-th parameter (from the
    function's prototype: DWARF, or BTF's FUNC record on the btf tier)."""
    names = []
    try:
        names = list(f.locals())
    except Exception:  # noqa: BLE001
        pass
    for n in names:
        try:
            o = f[n]
        except Exception:  # noqa: BLE001
            continue
        if not o.absent_ and _struct_of(o.type_) is not None:
            try:
                if o.value_() == value:
                    return n, o.type_, f"`{n}` (DWARF location) = {value:#x}"
            except Exception:  # noqa: BLE001
                pass
    if arg_index is not None:
        fn = ""
        try:
            fn = f.symbol().name
            ftype = prog.function(fn).type_
        except Exception:  # noqa: BLE001
            ftype = None
        if (
            ftype is not None
            and arg_index < len(ftype.parameters)
            and _one_reg_each(ftype.parameters[:arg_index])
            and "." not in fn
        ):
            p = ftype.parameters[arg_index]
            return p.name, p.type, f"{reg.upper()} holds parameter #{arg_index + 1} `{p.name}` (calling convention)"
        if arg_index < len(names) and f.name and "." not in f.name and not f.is_inline:
            try:
                o = f[names[arg_index]]
                return (
                    names[arg_index],
                    o.type_,
                    (f"{reg.upper()} holds parameter #{arg_index + 1} `{names[arg_index]}` (calling convention)"),
                )
            except Exception:  # noqa: BLE001
                pass
    return None


def _one_reg_each(params) -> bool:
    """The parameters before the one wanted each took one integer register (pointers, integers, enums): a struct
    by value, a float or a 128-bit integer would shift the mapping. (GCC's .isra/.constprop clones reorder
    parameters: callers exclude names with a dot.)"""
    import drgn

    for p in params:
        try:
            t = p.type.unaliased()
        except Exception:  # noqa: BLE001
            return False
        if (
            t.kind not in (drgn.TypeKind.POINTER, drgn.TypeKind.INT, drgn.TypeKind.BOOL, drgn.TypeKind.ENUM)
            or drgn.sizeof(t) > 8
        ):
            return False
    return True


def _access_names(ctx: AnalysisContext, s) -> dict:
    """port->dev->rx_count style naming of the faulting access, with the types and offsets."""
    code = _fault_code(ctx, s)
    acc, org = code.get("access"), code.get("origin")
    out: dict[str, Any] = {}
    if not acc or not org:
        return out
    regs = code["regs"]
    base_val = regs.get(org.reg) if org.reg_intact else None
    got = _param_for(s.prog, code["frame"], org.reg, base_val if base_val is not None else -1, org.arg_index)
    if not got:
        return out
    name, ptype, how = got
    st = _struct_of(ptype)
    if st is None:
        return out
    out.update({"var": name, "var_type": str(ptype.type_name()), "how": how, "outer": st})
    m1 = _member(st, org.disp)
    if m1:
        out["member1"] = m1
        mt = _member_type(st, m1.split(".")[0].split("[")[0]) if m1 else None
        st2 = _struct_of(mt) if mt is not None else None
        if st2 is not None:
            out["inner"] = st2
            m2 = _member(st2, acc.disp)
            if m2:
                out["member2"] = m2
    return out


# --- vmcore.race --------------------------------------------------------------------------------


@analyzer("vmcore.race", order=63, needs=("vmcore",))
def analyze_race(ctx: AnalysisContext) -> list[Finding]:
    """As in the CentOS 7 nf_conntrack post-mortem (CVE-2022-49561): re-read NOW the memory the base register was loaded from; compare with what the CPU used."""
    from ktriage.vmcore.decoders import slab_info, slab_text

    s = _session(ctx, types=False)
    if not s.has_types:
        return _race_from_log(ctx, s)
    code = _fault_code(ctx, s)
    acc, org = code.get("access"), code.get("origin")
    if acc is None:
        raise Skip("the faulting instruction has no memory operand (or could not be decoded from the dump)")
    if org is None:
        raise Skip(f"the base register {acc.base} of `{acc.insn}` was not loaded from memory inside the function")
    regs = code["regs"]
    ev = [
        f"{code['symbol']}+{acc.pc - code['frame'].symbol().address:#x}: `{acc.insn}` (base {acc.base.upper()}"
        f" = {regs.get(acc.base, 0):#x} at the trap, from the dump's registers)",
        f"{code['symbol']}+{org.pc - code['frame'].symbol().address:#x}: `{org.insn}` loaded {acc.base.upper()}",
    ]
    used = regs.get(acc.base)
    df = next(
        (
            f
            for f in ctx.findings
            if f.code == "dataflow.base-origin" and str(f.data.get("register", "")).lower() == acc.base
        ),
        None,
    )
    if df is not None and df.data.get("steps"):
        step = df.data["steps"][0]
        agree = f"{org.disp:#x}(%{org.reg})" in str(step.get("insn", "")).replace("0x0(", "(")
        ev.append(
            f"the log's Code: dataflow (dataflow.base-origin) {'agrees' if agree else 'DIFFERS'}: `{step.get('insn')}`"
        )
    if not org.reg_intact or regs.get(org.reg) is None:
        return _overwritten_origin(s, code, acc, org, ev)
    addr = regs[org.reg] + org.disp
    names = _access_names(ctx, s)
    what = f"{org.reg.upper()} + {org.disp:#x} = {addr:#x}"
    if names.get("member1"):
        what = f"{names['var']}->{names['member1']} ({what})"
        ev.append(f"{names['how']}; {names['var_type']} member at {org.disp:#x} is `{names['member1']}`")
    try:
        now = int.from_bytes(s.prog.read(addr, org.size), "little")
    except Exception as e:  # noqa: BLE001
        raise Skip(f"{addr:#x} is not in the dump ({e})") from None
    # a narrower load (movl, movslq, movzbl...) filled only the low bytes, possibly sign-extended: compare those
    used = used & ((1 << (8 * org.size)) - 1) if org.size and org.size < 8 else used
    ev.append(f"memory at {addr:#x} now holds {now:#x}; the CPU used {used:#x}")
    si = slab_info(s.prog, regs[org.reg])
    data = {
        "address": addr,
        "now": now,
        "used": used,
        "register": acc.base.upper(),
        "from": org.reg.upper(),
        "disp": org.disp,
        "member": names.get("member1"),
        "var": names.get("var"),
        "changed": now != used,
    }
    if si:
        ev.append(
            slab_text(si)
            + (
                "; cache is SLAB_TYPESAFE_BY_RCU: a freed object can be reused at once by "
                "another user of the cache while RCU readers still hold it"
                if si.get("typesafe_by_rcu")
                else "; cache is not SLAB_TYPESAFE_BY_RCU"
            )
        )
        data["slab"] = si
    if now != used and _kernel_ptr(now):
        from ktriage.vmcore.decoders import identify

        what_now = identify(s.prog, now)
        if what_now:
            ev.append(f"the value there now, {now:#x}, is: {what_now}")
            data["now_is"] = what_now
    if now != used:
        summary = (
            f"{what} holds {now:#x} now, but the CPU loaded {used:#x} from it just before the fault: "
            f"the object changed after the read (a race or reuse of the object"
            + (", possible since its cache is SLAB_TYPESAFE_BY_RCU" if si and si.get("typesafe_by_rcu") else "")
            + ")."
        )
        conf = "high"
    else:
        summary = (
            f"{what} still holds {now:#x}, the value the CPU used: no sign the object changed after the "
            f"read (not a race on this member; the value was already bad)."
        )
        conf = "high"
    return [Finding("vmcore.race", summary, tuple(ev), conf, "vmcore.race", data)]


_ATT_MEM = re.compile(r"^mov\w*\s+(-?0x[0-9a-f]+|-?\d+)?\(%(\w+)\),\s*%(\w+)$")


def _race_from_log(ctx: AnalysisContext, s) -> list[Finding]:
    """No types: the log's dataflow (Code: bytes + register dump) names the load; re-read it raw from the dump."""
    from ktriage.analyzers.machine import lookup_for
    from ktriage.vmcore.code import full_reg

    _x86_only(s)
    df = next((f for f in ctx.findings if f.code == "dataflow.base-origin"), None)
    if df is None or not df.data.get("steps"):
        raise Skip("no debug info, and the log gives no load of the base register (dataflow.base-origin) to re-read")
    step = df.data["steps"][0]
    m = _ATT_MEM.match(str(step.get("insn", "")).strip())
    if not m or "not written since" not in str(step.get("text", "")):
        raise Skip(f"the log's dataflow does not give an intact address for `{step.get('insn')}`")
    disp = int(m.group(1) or "0", 0)
    src, dst = full_reg(m.group(2)), full_reg(m.group(3))
    look = lookup_for(ctx.crash)
    base, used = look(src.upper()), look(dst.upper())
    if base is None or used is None:
        raise Skip(f"the oops' register dump lacks {src.upper()} or {dst.upper()}")
    addr = base + disp
    try:
        now = int.from_bytes(s.prog.read(addr, 8), "little")
    except Exception as e:  # noqa: BLE001
        raise Skip(f"{addr:#x} is not in the dump ({e})") from None
    ev = [
        f"the log's Code: bytes: `{step.get('insn')}` loaded {dst.upper()} (dataflow.base-origin)",
        f"{src.upper()} = {base:#x} and {dst.upper()} = {used:#x} in the oops' register dump",
        f"memory at {src.upper()} + {disp:#x} = {addr:#x} now holds {now:#x} (raw read from the dump, no types)",
        "without debug info the member name, slab cache and SLAB_TYPESAFE_BY_RCU cannot be checked",
    ]
    data = {
        "address": addr,
        "now": now,
        "used": used,
        "register": dst.upper(),
        "from": src.upper(),
        "disp": disp,
        "member": None,
        "changed": now != used,
        "tier": s.tier,
    }
    if now != used:
        summary = (
            f"{src.upper()} + {disp:#x} ({addr:#x}) holds {now:#x} now, but the CPU loaded {used:#x} from it "
            f"just before the fault: the object changed after the read (a race or reuse of the object)."
        )
    else:
        summary = (
            f"{src.upper()} + {disp:#x} ({addr:#x}) still holds {now:#x}, the value the CPU used: no sign the "
            f"object changed after the read."
        )
    return [Finding("vmcore.race", summary, tuple(ev), "medium", "vmcore.race", data)]


def _overwritten_origin(s, code, acc, org, ev) -> list[Finding]:
    """`mov D(%R),%R`: R's old value is gone; look for registers P with [P + D] == the value the CPU used."""
    from ktriage.vmcore.decoders import slab_info, slab_text

    regs = code["regs"]
    used = regs.get(acc.base)
    cands = []
    for r in GP_REGS:
        v = regs.get(r)
        if v is None or v < 0xFFFF800000000000 or r == org.reg:
            continue
        try:
            now = int.from_bytes(s.prog.read(v + org.disp, org.size), "little")
        except Exception:  # noqa: BLE001
            continue
        if now == used:
            cands.append((r, v, slab_info(s.prog, v)))
    if not cands:
        raise Skip(
            f"{org.reg.upper()} was overwritten by `{org.insn}`: the address the base came from is unknown, "
            f"and no register R has [R + {org.disp:#x}] = {used:#x}"
        )
    r, v, si = cands[0]
    ev.append(
        f"{org.reg.upper()} was overwritten by that load; registers R with [R + {org.disp:#x}] = {used:#x} "
        f"(the value the CPU used) are candidates for the object (inferred, not proven):"
    )
    for cr, cv, csi in cands:
        ev.append(f"  {cr.upper()} = {cv:#x}: " + (slab_text(csi) if csi else "not a slab object"))
    data = {
        "register": acc.base.upper(),
        "from": org.reg.upper(),
        "disp": org.disp,
        "used": used,
        "candidates": [c[0].upper() for c in cands],
        "changed": False,
    }
    caches = {c[2]["cache"] for c in cands if c[2]}
    if si and all(c[2] and c[2]["allocated"] is False for c in cands) and len(caches) == 1:
        data["slab"] = si
        summary = (
            f"The base {acc.base.upper()} = {used:#x} was read at +{org.disp:#x} of an object that is FREE in "
            f"slab cache {si['cache']} (every candidate, {', '.join(c[0].upper() for c in cands)}, is a free "
            f"object of that cache): use after free."
        )
        return [Finding("vmcore.use-after-free", summary, tuple(ev), "medium", "vmcore.race", data)]
    summary = (
        f"The base {acc.base.upper()} = {used:#x} was probably read from {r.upper()} + {org.disp:#x}, which still "
        f"holds it: no sign the object changed after the read."
    )
    return [Finding("vmcore.race", summary, tuple(ev), "low", "vmcore.race", data)]


# --- vmcore.member (names of the faulting access) + bounds ----------------------------------------


@analyzer("vmcore.member", order=64, needs=("vmcore",))
def analyze_member(ctx: AnalysisContext) -> list[Finding]:
    """The faulting access in source terms: `port->dev->rx_count` with offsets, and object bounds."""
    from ktriage.vmcore.decoders import slab_info, slab_text

    s = _session(ctx)
    code = _fault_code(ctx, s)
    acc, org = code.get("access"), code.get("origin")
    if acc is None:
        raise Skip("no memory operand in the faulting instruction")
    names = _access_names(ctx, s)
    out = []
    regs = code["regs"]
    if names.get("member1"):
        assert org is not None, "member names are derived from the base register's origin"
        chain = f"{names['var']}->{names['member1']}"
        ev = [names["how"], f"`{org.insn}`: {names['var_type']} + {org.disp:#x} is `{names['member1']}`"]
        data = {"var": names["var"], "type": names["var_type"], "member": names["member1"], "offset": org.disp}
        if names.get("member2"):
            chain += f"->{names['member2']}"
            ev.append(f"`{acc.insn}`: {names['inner'].type_name()} + {acc.disp:#x} is `{names['member2']}`")
            data.update(
                {
                    "inner_type": str(names["inner"].type_name()),
                    "inner_member": names["member2"],
                    "inner_offset": acc.disp,
                }
            )
        base = regs.get(acc.base)
        summary = (
            f"The faulting access is {chain} (`{acc.insn}`, {acc.base.upper()} = {base:#x})."
            if base is not None
            else f"The faulting access is {chain}."
        )
        data["expression"] = chain
        out.append(Finding("vmcore.member", summary, tuple(ev), "high", "vmcore.member", data))
    # object bounds: the load's displacement vs the slab object's size
    if org is not None and org.reg_intact and regs.get(org.reg) is not None:
        ptr = regs[org.reg]
        si = slab_info(s.prog, ptr)
        if si and si.get("object_size") and si.get("offset") is not None:
            end = si["offset"] + org.disp + org.size
            if end > si["object_size"]:
                target = slab_info(s.prog, ptr + org.disp)
                ev = [
                    slab_text(si),
                    f"`{org.insn}` reads {org.size} bytes at {org.reg.upper()} + {org.disp:#x} = "
                    f"{ptr + org.disp:#x}, beyond the {si['object_size']}-byte object",
                ]
                if target:
                    ev.append(
                        f"that address is in {slab_text(target)}"
                        + (" (a different object)" if target["object"] != si["object"] else "")
                    )
                try:
                    now = int.from_bytes(s.prog.read(ptr + org.disp, org.size), "little")
                    ev.append(f"it holds {now:#x} now")
                except Exception:  # noqa: BLE001
                    pass
                tname = ""
                if names.get("outer") is not None:
                    tsize = names["outer"].size
                    tname = f" as {names['outer'].type_name()} ({tsize:#x} bytes)"
                    ev.append(
                        f"{names['how']}: the code treats it as {names['outer'].type_name()}, {tsize:#x} bytes, "
                        f"larger than the object: a smaller object of another type used as this one "
                        f"(type confusion)"
                    )
                member = f" member `{names['member1']}`" if names.get("member1") else ""
                summary = (
                    f"Out of bounds: the object at {si['object']:#x} in cache {si['cache']} is "
                    f"{si['object_size']} bytes, but the code reads{member} at offset {org.disp:#x}"
                    f"{tname}; the value came from "
                    + (
                        f"a neighbouring {'allocated' if target['allocated'] else 'FREE'} object"
                        if target and target["object"] != si["object"]
                        else "outside the object"
                    )
                    + "."
                )
                out.append(
                    Finding(
                        "vmcore.object-bounds",
                        summary,
                        tuple(ev),
                        "high",
                        "vmcore.member",
                        {
                            "cache": si["cache"],
                            "object_size": si["object_size"],
                            "offset": org.disp,
                            "member": names.get("member1"),
                            "type": str(names["outer"].type_name()) if names.get("outer") is not None else None,
                            "type_size": names["outer"].size if names.get("outer") is not None else None,
                            "neighbour_allocated": target["allocated"] if target else None,
                        },
                    )
                )
    if not out:
        why = "the faulting access could not be named from the frame's variables (DWARF) or the function's prototype"
        mod = ctx.crash.ip.module if ctx.crash.ip else None
        if mod and s.tier == "btf" and mod in s.btf.modules_without_btf:  # 5.10: modules carry no BTF
            why += f": module {mod} has no BTF in this kernel and no debug info was given, so its types are unknown"
        raise Skip(why)
    return out


# --- vmcore.args --------------------------------------------------------------------------------


def _value_text(o) -> str:
    import drgn

    try:
        t = o.type_.unqualified()
        while t.kind == drgn.TypeKind.TYPEDEF:
            t = t.type
        if t.kind == drgn.TypeKind.POINTER:
            return f"({o.type_.type_name()}){o.value_():#x}"
        if t.kind in (drgn.TypeKind.INT, drgn.TypeKind.BOOL, drgn.TypeKind.ENUM):
            v = o.value_()
            return f"{v}" if not isinstance(v, int) or abs(v) < 4096 else f"{v:#x}"
        return f"({o.type_.type_name()}) at {o.address_:#x}" if o.address_ else f"({o.type_.type_name()})"
    except Exception as e:  # noqa: BLE001
        return f"unreadable ({type(e).__name__})"


def frame_variables(f, limit: int = 16) -> list[tuple[str, Any]]:
    """(name, object) for the frame's parameters/locals that have a value (not optimized out)."""
    out: list[tuple[str, Any]] = []
    try:
        names = list(f.locals())
    except Exception:  # noqa: BLE001
        return out
    for n in names[:limit]:
        try:
            o = f[n]
        except Exception:  # noqa: BLE001
            continue
        if not o.absent_:
            out.append((n, o))
    return out


@analyzer("vmcore.args", order=65, needs=("vmcore",))
def analyze_args(ctx: AnalysisContext) -> list[Finding]:
    s = _session(ctx)
    trace = _trace(s)
    lines, data = [], []
    n_vals = 0
    for i, f in enumerate(list(trace)[:24]):
        if f.pc < 0xFFFF800000000000:
            break
        vals = frame_variables(f)
        parts = [f"{n} = {_value_text(o)}" for n, o in vals]
        try:
            regs = f.registers()
            saved = [f"{r}={regs[r]:#x}" for r in callee_saved(regs) if r in regs] if i else []
        except Exception:  # noqa: BLE001
            saved = []
        if parts or saved:
            lines.append(
                f"#{i} {_frame_name(f)}: "
                + (", ".join(parts) if parts else "no parameter values")
                + (f"; callee-saved registers recovered: {' '.join(saved)}" if saved else "")
            )
        n_vals += len(parts)
        data.append({"frame": i, "function": _frame_name(f), "values": {n: _value_text(o) for n, o in vals}})
    if not lines:
        raise Skip("no frame has parameters or locals with a known value")
    summary = (
        f"{n_vals} parameter/local values recovered from the DWARF of {sum(1 for d in data if d['values'])} frames."
    )
    if not s.has_dwarf:
        summary = (
            f"Callee-saved registers recovered for {sum(1 for ln in lines if 'callee-saved' in ln)} caller "
            f"frames; parameter and local values need DWARF (debug info tier {s.tier})."
        )
    return [Finding("vmcore.args", summary, tuple(lines), "high", "vmcore.args", {"frames": data})]


# --- vmcore.skb ---------------------------------------------------------------------------------


def _typed_in_frames(trace, tags: tuple[str, ...], limit: int = 24, prog=None):
    """(frame index, name, object) of frame variables that are pointers to one of the struct tags; then registers
    (the faulting frame's, and callee-saved ones recovered in callers) that point at the start of an allocated
    slab object whose cache holds that struct (no DWARF needed: the btf tier, or a variable optimized out)."""
    from ktriage.vmcore.decoders import object_in_cache

    seen = set()
    frames = []
    for i, f in enumerate(list(trace)[:limit]):
        if f.pc < 0xFFFF800000000000:
            break
        frames.append((i, f))
        for n, o in frame_variables(f, 32):
            st = _struct_of(o.type_)
            if st is None or st.tag not in tags:
                continue
            v = o.value_()
            if not v or v in seen:
                continue
            seen.add(v)
            yield i, n, o
    if prog is None:
        return
    for i, f in frames:
        try:
            regs = f.registers()
        except Exception:  # noqa: BLE001
            continue
        names = gp_regs(regs) if f.interrupted or i == 0 else callee_saved(regs)
        for r in names:
            v = regs.get(r)
            if v is None or not _kernel_ptr(v) or v in seen:
                continue
            o, _si = object_in_cache(prog, v, tags)
            if o is not None:
                seen.add(v)
                yield i, f"{r.upper()} ({'at the trap' if i == 0 or f.interrupted else 'callee-saved'})", o


def _found_as(name: str, i: int, trace, what: str) -> str:
    """How an object was found: a DWARF variable, a register that points at a slab object, or a member."""
    where = f"in frame #{i} {_frame_name(trace[i])}"
    if "->" in name:
        return f"found as `{name}` (the packet's owner) {where}"
    if name[:1].isupper():
        return f"found as register {name} {where}: it points at the start of an allocated object of a {what} slab cache"
    return f"found as variable `{name}` {where}"


def _socks_in_frames(prog, trace):
    """Sockets in frame variables and registers, then the owners (`skb->sk`) of the packets found there."""
    seen = set()
    for i, n, o in _typed_in_frames(trace, ("sock", "sock_common", "request_sock", "inet_timewait_sock"), prog=prog):
        seen.add(o.value_())
        yield i, n, o
    for i, n, skb in _typed_in_frames(trace, ("sk_buff",), prog=prog):
        try:
            sk = skb.sk
            v = sk.value_()
        except Exception:  # noqa: BLE001
            continue
        if v and v not in seen:
            seen.add(v)
            yield i, f"{n.split(' ')[0]}->sk", sk


@analyzer("vmcore.skb", order=66, needs=("vmcore",))
def analyze_skb(ctx: AnalysisContext) -> list[Finding]:
    from ktriage.vmcore.decoders import decode_skb

    s = _session(ctx)
    trace = _trace(s)
    out = []
    for i, n, o in _typed_in_frames(trace, ("sk_buff",), prog=s.prog):
        try:
            d = decode_skb(s.prog, o)
        except Exception:  # noqa: BLE001
            continue
        if not d:
            continue
        ev = [_found_as(n, i, trace, "sk_buff")] + d.pop("evidence")
        pkt = d.get("ip_protocol") or d.get("protocol")
        flow = ""
        if d.get("saddr"):
            flow = (
                f" {d['saddr']}"
                + (f":{d['sport']}" if "sport" in d else "")
                + f" -> {d['daddr']}"
                + (f":{d['dport']}" if "dport" in d else "")
            )
        summary = (
            f"Packet in flight: {pkt}{flow}, {d['len']} bytes"
            + (f", device {d['dev']}" if d.get("dev") else "")
            + f" (sk_buff `{n}` of {_frame_name(trace[i])})."
        )
        out.append(Finding("vmcore.skb", summary, tuple(ev), "high", "vmcore.skb", {**d, "frame": i, "var": n}))
        if len(out) >= 4:
            break
    if not out:
        raise Skip("no sk_buff among the crashed thread's frame variables or registers")
    return out


# --- vmcore.sock --------------------------------------------------------------------------------


@analyzer("vmcore.sock", order=67, needs=("vmcore",))
def analyze_sock(ctx: AnalysisContext) -> list[Finding]:
    from ktriage.vmcore.decoders import decode_sock

    s = _session(ctx)
    trace = _trace(s)
    out = []
    for i, n, o in _socks_in_frames(s.prog, trace):
        try:
            d = decode_sock(s.prog, o)
        except Exception:  # noqa: BLE001
            continue
        ev = [_found_as(n, i, trace, "socket")] + d.pop("evidence")
        if d.get("really"):
            summary = (
                f"`{n}` in {_frame_name(trace[i])} is in state {d['state']}: really a {d['really']}"
                + (f" ({d['really_size']:#x} bytes)" if d.get("really_size") else "")
                + ", not a full sock: members beyond its size are out of bounds."
            )
            conf = "high"
        else:
            summary = f"Socket `{n}` in {_frame_name(trace[i])}: {d['family']}, {d['state']}."
            conf = "medium"
        out.append(Finding("vmcore.sock", summary, tuple(ev), conf, "vmcore.sock", {**d, "frame": i, "var": n}))
        if len(out) >= 4:
            break
    if not out:
        raise Skip(
            "no socket among the crashed thread's frame variables or registers (object bounds: see vmcore.object-bounds)"
        )
    return out


# --- task helpers (vmcore.hung, vmcore.cpus, vmcore.tasks) -------------------------------------


def _names(prog, task, n: int = 12) -> list[str]:
    try:
        return [_frame_name(f) for f in list(prog.stack_trace(task))[:n] if f.pc >= 0xFFFF800000000000]
    except Exception:  # noqa: BLE001
        return []


def _waited_s(prog, task) -> float | None:
    """≈ seconds since the task last ran: its runqueue's clock minus its se.exec_start."""
    try:
        from drgn.helpers.linux.sched import task_rq

        return (task_rq(task).clock.value_() - task.se.exec_start.value_()) / 1e9
    except Exception:  # noqa: BLE001
        return None


# --- vmcore.cpus --------------------------------------------------------------------------------


@analyzer("vmcore.cpus", order=69, needs=("vmcore",))
def analyze_cpus(ctx: AnalysisContext) -> list[Finding]:
    from drgn.helpers.linux.cpumask import for_each_online_cpu
    from drgn.helpers.linux.sched import cpu_curr, idle_task

    s = _session(ctx)
    prog = s.prog
    try:
        panic_cpu = prog["panic_cpu"].counter.value_()
    except Exception:  # noqa: BLE001
        panic_cpu = None
    ev, data = [], []
    try:
        cpus = list(for_each_online_cpu(prog))
    except Exception as e:  # noqa: BLE001 - drgn.FaultError on a damaged dump
        raise Skip(f"the online CPU mask could not be read: {e}") from None
    for cpu in cpus:
        try:
            t = cpu_curr(prog, cpu)
            t.comm.string_()
        except Exception as e:  # noqa: BLE001
            ev.append(f"CPU {cpu}: current task not readable ({e})")
            continue
        comm = t.comm.string_().decode("utf-8", "replace")
        idle = t.value_() == idle_task(prog, cpu).value_()
        names = [] if idle else _names(prog, t, 10)
        inter = None
        if not idle:
            try:
                tr = prog.stack_trace(t)
                if t.pid.value_() == s.crashed_thread().tid:
                    tr = _trace(s)
                    inter = _frame_name(tr[faulting_index(ctx, tr)])
                else:
                    inter = next(
                        (
                            _frame_name(f)
                            for k, f in enumerate(tr)
                            if k and f.interrupted and f.pc >= 0xFFFF800000000000
                        ),
                        None,
                    )
            except Exception:  # noqa: BLE001
                inter = None
        ev.append(
            f"CPU {cpu}: {comm} pid {t.pid.value_()}"
            + (" (idle)" if idle else "")
            + (" [panic CPU]" if cpu == panic_cpu else "")
            + (f": {' <- '.join(names)}" if names else "")
        )
        data.append(
            {
                "cpu": cpu,
                "comm": comm,
                "pid": t.pid.value_(),
                "idle": idle,
                "stack": names,
                "panic": cpu == panic_cpu,
                "interrupted_in": inter,
            }
        )
    busy = [d for d in data if not d["idle"]]
    summary = (
        f"{len(data)} online CPU(s); "
        + (
            "; ".join(
                f"CPU {d['cpu']} runs {d['comm']}[{d['pid']}]"
                + (
                    f" in {d['interrupted_in']}"
                    if d["interrupted_in"]
                    else f" in {d['stack'][0]}"
                    if d["stack"]
                    else ""
                )
                for d in busy[:4]
            )
            or "all idle"
        )
        + (f"; panic on CPU {panic_cpu}" if panic_cpu is not None and panic_cpu >= 0 else "")
        + "."
    )
    return [Finding("vmcore.cpus", summary, tuple(ev), "high", "vmcore.cpus", {"cpus": data, "panic_cpu": panic_cpu})]


# --- vmcore.tasks -------------------------------------------------------------------------------

MAX_TASKS_WITH_STACKS = 512  # a fleet host has thousands of tasks: states for all, stacks for the first ones
NOTABLE_STATES = ("R", "D", "Z", "T", "t", "X")


@analyzer("vmcore.tasks", order=70, needs=("vmcore",))
def analyze_tasks(ctx: AnalysisContext) -> list[Finding]:
    """crash's `ps` plus `foreach bt`: every task's state, and the stack of every task but idle kernel workers
    (state I), up to MAX_TASKS_WITH_STACKS."""
    from collections import Counter

    from drgn.helpers.linux.pid import for_each_task
    from drgn.helpers.linux.sched import task_state_to_char

    s = _session(ctx)
    prog = s.prog
    states: Counter[str] = Counter()
    tasks: list[dict[str, Any]] = []
    ev: list[str] = []
    unreadable = with_stacks = 0
    for t in for_each_task(prog):
        try:
            st = task_state_to_char(t)
            comm = t.comm.string_().decode("utf-8", "replace")
            pid = t.pid.value_()
        except Exception:  # noqa: BLE001 - a task whose memory is not in the dump
            unreadable += 1
            continue
        states[st] += 1
        entry: dict[str, Any] = {"pid": pid, "comm": comm, "state": st}
        if st != "I" and with_stacks < MAX_TASKS_WITH_STACKS:  # idle kworkers all sit in worker_thread
            entry["stack"] = _names(prog, t, 16)
            with_stacks += 1
        tasks.append(entry)
        if st in NOTABLE_STATES and len(ev) < 24:
            ev.append(f"{st} {comm}[{pid}]: " + " <- ".join(entry.get("stack", [])[:6]))
    if not tasks:
        raise Skip("the task list could not be read")
    counts = ", ".join(f"{n} {st}" for st, n in states.most_common())
    summary = f"{len(tasks)} tasks ({counts})" + (f"; {unreadable} unreadable" if unreadable else "") + "."
    ev.insert(
        0, f"states: {counts} (R running/runnable, S sleeping, D uninterruptible, I idle kthread, Z zombie, T stopped)"
    )
    data = {
        "count": len(tasks),
        "states": dict(states),
        "unreadable": unreadable,
        "tasks": tasks,
        "stacks_for": with_stacks,
    }
    return [Finding("vmcore.tasks", summary, tuple(ev), "certain", "vmcore.tasks", data)]
