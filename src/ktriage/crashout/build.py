"""From the blocks of a `crash` session (sys header, bt, log, dis) to Crash records."""

from __future__ import annotations

import re
from collections.abc import Sequence

from ktriage.crashout.reader import BtTask, ExcBlock, Piece, Session, SysHeader
from ktriage.kernel_info import guess_distro
from ktriage.logs.frames import normalize
from ktriage.logs.guilty import first_guilty
from ktriage.model import Crash, Event, Frame, Kernel, Location, SourceSpan, Task

FORMAT = "crash-output"

# Frames of the panic path itself: a bt that holds them is the panicking task's.
_PANIC_PATH = re.compile(
    r"^(?:__)?crash_kexec$|^machine_kexec$|^panic$|^vpanic$|^oops_end$|^die$|^__die$|"
    r"^crash_setup_regs$|^die_kernel_fault$"
)
# Other CPUs stopped by the panicking one (`bt -a`): never the crash itself.
_STOPPED = re.compile(
    r"^crash_nmi_callback$|^ipi_cpu_crash_stop$|^ipi_cpu_stop$|^crash_save_cpu$|"
    r"^machine_crash_nonpanic_core$|^nmi_shootdown_cpus$"
)
# The oops/kexec machinery at the top of a bt with no exception frame (panic() called directly).
_MACHINERY = re.compile(
    r"^(?:__)?crash_kexec$|^machine_kexec$|^panic$|^vpanic$|^oops_end$|^die$|^__die|"
    r"^crash_setup_regs$|^(?:__)?show_stack|^dump_stack|^__warn$|^warn_slowpath|^report_bug$"
)

# What the frames above the exception frame say the crash was, as an oops header the
# formats table knows: [(frame pattern, header)], first match wins.
_INFER: tuple[tuple[re.Pattern[str], str], ...] = tuple(
    (re.compile(p), h)
    for p, h in (
        (r"^(?:asm_)?exc_general_protection$|^(?:do_)?general_protection$", "general protection fault"),
        (r"^(?:asm_)?exc_invalid_op$|^(?:do_)?invalid_op$|^handle_bug$|^report_bug$|^fixup_bug$", "kernel BUG at "),
        (r"^(?:asm_)?exc_divide_error$|^(?:do_)?divide_error$", "divide error: "),
        (r"^(?:asm_)?exc_double_fault$|^(?:do_)?double_fault$", "PANIC: double fault"),
        (r"^(?:asm_)?exc_stack_segment$|^(?:do_)?stack_segment$", "stack segment: "),
        (
            r"^(?:asm_)?exc_page_fault$|^(?:__)?do_page_fault$|^(?:async_)?page_fault$|^no_context$|bad_area|"
            r"^page_fault_oops$|^do_(?:user|kern)_addr_fault$|^handle_page_fault$",
            "BUG: unable to handle kernel paging request",
        ),
        (
            r"^do_mem_abort$|^el1_da$|^el1_abort$|^__do_kernel_fault$|^do_translation_fault$|^do_page_fault$",
            "Unable to handle kernel paging request",
        ),
        (r"^watchdog_overflow_callback$|^watchdog_hardlockup_check$", "Watchdog detected hard LOCKUP"),
        (r"^watchdog_timer_fn$", "BUG: soft lockup"),
        (r"^sysrq_handle_crash$", "Kernel panic - not syncing: sysrq triggered crash"),
    )
)

_SOFTIRQ = re.compile(
    r"^(?:__do_softirq|handle_softirqs|do_softirq|call_softirq|run_ksoftirqd|net_rx_action|"
    r"run_timer_softirq|tasklet_action|tasklet_action_common|__run_timers|blk_done_softirq|"
    r"irq_exit|irq_exit_rcu)$"
)
_HARDIRQ = re.compile(
    r"^(?:do_IRQ|common_interrupt|handle_irq|handle_irq_event|__handle_irq_event_percpu|"
    r"handle_edge_irq|handle_fasteoi_irq|generic_handle_irq|gic_handle_irq|el1_irq|"
    r"__sysvec_\w+|sysvec_\w+|smp_apic_timer_interrupt|apic_timer_interrupt)$"
)

_FAULT_AT = re.compile(
    r"(?:dereference|paging request|page fault for address|access to user memory)"
    r"(?: at)?:? (?:virtual address )?(?:\(null\)|(?:0x)?([0-9a-f]{1,16})\b)"
)
_DEBUG_PATH = re.compile(r"/usr/src/debug/kernel-[^/\s]+/linux-(\d+\.\d+[^/\s]*)/")
_MODULE_PATH = re.compile(r"/lib/modules/(\d+\.\d+[^/\s]*)/")
_PROSE_RELEASE = re.compile(r"内核版本|内核版本号|kernel version|kernel release|uname -r|Linux version", re.I)
_RELEASE = re.compile(r"\b(\d+\.\d+\.\d+-[\w.+~\-]*[\w])")


# --- frames -------------------------------------------------------------------------------------


def _switch_section(name: str) -> str:
    n = name.lower()
    if "nmi" in n:
        return "nmi"
    if "irq" in n or "interrupt" in n:
        return "irq"
    return "exception"


def bt_frames(bt: BtTask) -> tuple[list[Frame], ExcBlock | None, int]:
    """The bt's frames with sections, the panicking exception block, and how many frames lie above it.

    crash prints the innermost stack first: the frames before the first `[exception RIP:` are the
    oops/kexec machinery ("exception"); the frames of a stack that a `--- <X stack> ---` line ends
    belong to that stack ("irq", "nmi", "exception"); the last stack is the task's.
    """
    segments: list[list[tuple[int, Frame]]] = [[]]
    seg_names: list[str] = []
    exc: ExcBlock | None = None
    above = 0
    idx = 0
    for kind, item in bt.items:
        if kind == "frame":
            _num, _sp, sym, off, addr, mod = item
            segments[-1].append((idx, Frame(symbol=sym, offset=off, module=mod, address=addr)))
            idx += 1
        elif kind == "exc" and exc is None:
            exc = item
            above = idx
        elif kind == "switch":
            seg_names.append(str(item))
            segments.append([])
    if exc is None:  # panic() called directly: the frames up to panic(), else the leading machinery
        first = [normalize(f.symbol or "") for _k, f in segments[0]]
        pan = [i for i, n in enumerate(first) if n in ("panic", "vpanic")]
        if pan:
            above = pan[-1] + 1
        else:
            for i, n in enumerate(first):
                if not _MACHINERY.match(n):
                    break
                above = i + 1
    out: list[Frame] = []
    for s, seg in enumerate(segments):
        section = _switch_section(seg_names[s]) if s < len(seg_names) else "task"
        for i, f in seg:
            sect = "exception" if i < above else section
            out.append(Frame(symbol=f.symbol, offset=f.offset, module=f.module, address=f.address, section=sect))
    return out, exc, above


def _has(bt: BtTask, rx: re.Pattern[str]) -> bool:
    return any(k == "frame" and rx.match(normalize(v[2])) for k, v in bt.items)


def _has_exc(bt: BtTask) -> bool:
    return any(k == "exc" for k, _ in bt.items)


def panicking(session: Session) -> list[BtTask]:
    """The bt blocks of the panicking task(s): the one `sys` names, else those on the panic path."""
    best: dict[int, BtTask] = {}
    for b in session.bts:  # the same task printed twice (`bt`, then `bt -a`): keep the fuller one
        if b.task not in best or b.frame_count > best[b.task].frame_count:
            best[b.task] = b
    bts = sorted(best.values(), key=lambda b: b.first)
    sysf = session.sys.fields if session.sys else {}
    if sysf:
        task = re.match(r"([0-9a-f]+)", sysf.get("TASK", ""))
        if task:
            hit = [b for b in bts if b.task == int(task.group(1), 16)]
            if hit:
                return hit[:1]
        pid, cpu = sysf.get("PID", ""), sysf.get("CPU", "")
        if pid.isdigit() and cpu.isdigit():
            hit = [b for b in bts if b.pid == int(pid) and b.cpu == int(cpu)]
            if hit:
                return hit[:1]
    cands = [b for b in bts if not _has(b, _STOPPED)]
    on_path = [b for b in cands if _has(b, _PANIC_PATH)]
    if on_path:
        return on_path
    return [b for b in cands if _has_exc(b)]


# --- kind, title, guilty ------------------------------------------------------------------------


def _panic_string(sysf: dict[str, str]) -> str | None:
    p = sysf.get("PANIC")
    if p is None:
        return None
    m = re.match(r'^"(.*)"', p)
    p = (m.group(1) if m else p).strip()
    return p or None


def _infer_header(machinery: Sequence[str], all_names: Sequence[str], has_exc: bool) -> str | None:
    """An oops header for a bt without a usable PANIC string: from the trap handler above the
    exception frame, else a watchdog/sysrq frame anywhere, else a generic Oops or panic."""
    for rx, header in _INFER:
        if any(rx.search(n) for n in machinery):
            return header
    for rx, header in _INFER[-3:]:
        if any(rx.search(n) for n in all_names):
            return header
    if has_exc:
        return "Oops: "
    if any(n in ("panic", "vpanic") for n in all_names):
        return "Kernel panic - not syncing"
    return None


def _match(text: str):
    from ktriage.logs.scanner import match_header

    return match_header(text)


def _weak(fmt) -> bool:
    return not fmt.kind or fmt.kind == "unknown" or not getattr(fmt, "starts_report", True)


def _title(fmt, m: re.Match[str], func: str | None) -> tuple[str, bool]:
    title = fmt.title
    for i, g in enumerate(m.groups(), 1):
        title = title.replace("{h%d}" % i, normalize(g) if g and re.fullmatch(r"[\w.$]+", g) else (g or ""))
    missing = False
    if "{func}" in title:
        title = title.replace("{func}", func or "corrupted")
        missing = func is None
    if re.search(r"\{[hr]\d\}", title):
        title = re.sub(r"\{[hr]\d\}", "corrupted", title)
        missing = True
    return title, missing


# --- kernel facts -------------------------------------------------------------------------------


def _arch(machine: str | None, regs: dict[str, int], release: str | None) -> str | None:
    word = (machine or "").split()[0] if machine else ""
    table = {
        "x86_64": "x86_64",
        "aarch64": "arm64",
        "arm64": "arm64",
        "ppc64le": "ppc64",
        "ppc64": "ppc64",
        "s390x": "s390x",
        "i686": "i386",
        "i386": "i386",
        "riscv64": "riscv64",
    }
    if word in table:
        return table[word]
    if "RAX" in regs or "RIP" in regs:
        return "x86_64"
    if "PSTATE" in regs or "X29" in regs:
        return "arm64"
    for key, a in (("x86_64", "x86_64"), ("aarch64", "arm64"), ("ppc64", "ppc64"), ("s390x", "s390x")):
        if release and key in release:
            return a
    return None


def release_from_text(lines: Sequence[Piece], near: int) -> str | None:
    """A release the crash output itself shows (debuginfo paths of `dis -l`, `mod -s`), else one the
    prose next to it states (`内核版本号为4.18.0-305.3.1.el8.x86_64`), nearest the bt first."""
    for rx in (_DEBUG_PATH, _MODULE_PATH):
        for _n, t in lines:
            m = rx.search(t)
            if m:
                return m.group(1)
    best: tuple[int, str] | None = None
    for n, t in lines:
        if _PROSE_RELEASE.search(t):
            m = _RELEASE.search(t[_PROSE_RELEASE.search(t).start() :])  # type: ignore[union-attr]
            if m:
                d = abs(near - n) + (0 if n <= near else 1000)  # prefer the statement before the output
                if best is None or d < best[0]:
                    best = (d, m.group(1).rstrip("."))
    return best[1] if best else None


# --- one crash ----------------------------------------------------------------------------------


def crash_from_bt(bt: BtTask | None, session: Session, path: str, doc: Sequence[Piece]) -> Crash:
    from ktriage.logs.report import _bucket, _context

    sysh: SysHeader | None = session.sys
    sysf = sysh.fields if sysh else {}
    frames, exc, above = bt_frames(bt) if bt else ([], None, 0)
    after = frames[above:]
    names_after = [normalize(f.symbol) for f in after if f.symbol]
    machinery = [normalize(f.symbol) for f in frames[:above] if f.symbol]

    panic = _panic_string(sysf)
    hit = _match(panic) if panic else None
    if hit is None or _weak(hit[0]):
        inferred = _infer_header(machinery, [normalize(f.symbol) for f in frames if f.symbol], exc is not None)
        hit2 = _match(inferred) if inferred else None
        if hit2 is not None and (hit is None or not _weak(hit2[0]) or hit2[0].kind != "unknown"):
            hit = hit2
    exc_sym = normalize(exc.symbol) if exc and exc.symbol else None
    skip = tuple(hit[0].skip) if hit else ()
    if exc is not None:
        guilty = first_guilty(([exc_sym] if exc_sym else []) + names_after, skip)
    elif above:
        guilty = first_guilty([n for n in names_after if not _MACHINERY.match(n)], skip)
    else:  # the bt never reaches the crash site (it failed, or the paste is cut): no function to blame
        guilty = None
    if hit:
        fmt, m = hit
        kind = fmt.kind or "unknown"
        title, missing = _title(fmt, m, guilty)
    else:
        kind = "unknown"
        title, missing = (f"crash in {guilty}", False) if guilty else (panic or "crash", guilty is None)

    ip = None
    regs: dict[str, int] = {}
    if exc is not None:
        regs = dict(exc.registers)
        addr = regs.get("RIP", regs.get("PC"))
        ip = Location(symbol=exc.symbol, offset=exc.offset, module=exc.module, address=addr)

    fault = None
    if panic:
        fm = _FAULT_AT.search(panic)
        if fm:
            fault = int(fm.group(1), 16) if fm.group(1) else 0

    comm = bt.comm if bt else (sysf.get("COMMAND", "").strip('"') or None)
    pid = bt.pid if bt else (int(sysf["PID"]) if sysf.get("PID", "").isdigit() else None)
    cpu = bt.cpu if bt else (int(sysf["CPU"]) if sysf.get("CPU", "").isdigit() else None)

    release = sysf.get("RELEASE") or None
    build = sysf.get("VERSION") or None
    machine = re.sub(r"\s+", " ", sysf["MACHINE"]).strip() if sysf.get("MACHINE") else None
    first = min([x for x in (sysh.first if sysh else None, bt.first if bt else None) if x is not None])
    last = max([x for x in (sysh.last if sysh else None, bt.last if bt else None) if x is not None])
    if release is None:
        release = release_from_text(doc, first)

    events = [Event("crash-sys", "\n".join(sysh.lines), sysh.first)] if sysh else []
    events += [Event("crash-dis", "\n".join(t for _n, t in d), d[0][0]) for d in session.dis]
    corrupted, reason = False, None
    if bt is None:
        corrupted, reason = True, "no bt of the panicking task in the crash output"
    elif not frames:
        corrupted, reason = True, "the bt has no frames"
    elif exc is None and not any(f.section == "exception" for f in frames):
        corrupted, reason = True, "the bt shows neither an exception frame nor the panic path"
    elif missing:
        corrupted, reason = True, "no function could be read for the title"

    lines = tuple((sysh.lines if sysh else []) + (bt.lines if bt else []))
    return Crash(
        kind=kind,
        title=title,
        source=SourceSpan(path, first, last, FORMAT),
        guilty_frame=guilty,
        fault_address=fault,
        ip=ip,
        kernel=Kernel(release, build, guess_distro(release, build), machine),
        arch=_arch(machine, regs, release),
        task=Task(comm, pid, cpu),
        context=_context(after, comm, pid),
        registers=regs,
        frames=tuple(frames),
        panic=panic,
        related_events=tuple(events),
        corrupted=corrupted,
        corrupted_reason=reason,
        bucket=_bucket(kind, title, guilty, after),
        lines=lines,
    )


def merge(log: Crash, bt: Crash) -> Crash:
    """The log reader's Crash (from a `log` section) with what sys/bt add."""
    ip = log.ip
    if ip is not None and bt.ip is not None and ip.address is None and ip.symbol == bt.ip.symbol:
        ip = Location(ip.symbol, ip.offset, ip.size, ip.module, bt.ip.address)
    k, b = log.kernel, bt.kernel
    kernel = Kernel(k.release or b.release, k.build or b.build, k.distro or b.distro, k.hardware or b.hardware)
    if kernel.distro is None:
        kernel = Kernel(kernel.release, kernel.build, guess_distro(kernel.release, kernel.build), kernel.hardware)
    t, u = log.task, bt.task
    return log.replace(
        source=SourceSpan(
            log.source.path,
            min(log.source.first_line, bt.source.first_line),
            max(log.source.last_line, bt.source.last_line),
            FORMAT,
        ),
        ip=ip or bt.ip,
        kernel=kernel,
        arch=log.arch or bt.arch,
        task=Task(t.comm or u.comm, t.pid if t.pid is not None else u.pid, t.cpu if t.cpu is not None else u.cpu),
        context=log.context if log.context != "unknown" else bt.context,
        registers=log.registers or bt.registers,
        frames=log.frames or bt.frames,
        fault_address=log.fault_address if log.fault_address is not None else bt.fault_address,
        panic=log.panic or bt.panic,
        related_events=tuple(log.related_events) + tuple(bt.related_events),
        lines=tuple(log.lines) + tuple(bt.lines),
    )


def log_crashes(session: Session, path: str) -> list[Crash]:
    from ktriage.logs import scan_records
    from ktriage.logs.records import records

    out: list[Crash] = []
    for sec in session.logs:
        out += scan_records(records(sec), path, FORMAT)
    return out


def session_crashes(session: Session, path: str, doc: Sequence[Piece]) -> list[Crash]:
    logs = log_crashes(session, path)
    chosen = panicking(session)
    out: list[Crash] = []
    used: set[int] = set()
    for bt in chosen:
        c = crash_from_bt(bt, session, path, doc)
        match = None
        for i, lc in enumerate(logs):
            same_ip = (
                lc.ip and c.ip and lc.ip.symbol and c.ip.symbol and normalize(lc.ip.symbol) == normalize(c.ip.symbol)
            )
            same_task = lc.task.pid is not None and lc.task.pid == c.task.pid and lc.task.comm == c.task.comm
            if i not in used and (same_ip or same_task):
                match = i
                break
        if match is not None:
            used.add(match)
            c = merge(logs[match], c)
        out.append(c)
    if not chosen and session.sys is not None:
        base = crash_from_bt(None, session, path, doc)
        if logs:
            out += [merge(lc, base) for lc in logs]
        elif base.panic:
            out.append(base)
    return out
